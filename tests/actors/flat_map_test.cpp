// actors::flat_map against std::map: the same entries in the same order, whatever the order
// of the keys (in order, as window starts mostly are, reversed, or shuffled), with repeats.

#include "actors/flat_map.hpp"

#include <catch2/catch.hpp>
#include <map>
#include <random>
#include <string>
#include <vector>

namespace {

using meterflow::actors::flat_map;

void check_same(flat_map<long, std::string>& flat, const std::map<long, std::string>& tree) {
  REQUIRE(flat.size() == tree.size());
  auto it = tree.begin();
  for (const auto& [key, value] : flat) {
    CHECK(key == it->first);
    CHECK(value == it->second);
    ++it;
  }
  for (const auto& [key, value] : tree) {
    const auto found = flat.find(key);
    REQUIRE(found != flat.end());
    CHECK(found->second == value);
  }
}

} // namespace

TEST_CASE("flat_map keeps keys in order and finds, adds and replaces like std::map", "[engine]") {
  std::vector<long> keys;
  for (long k = 0; k < 300; ++k)
    keys.push_back(k * 3600);
  std::vector<std::vector<long>> orders = {keys, {keys.rbegin(), keys.rend()}, keys};
  std::shuffle(orders[2].begin(), orders[2].end(), std::mt19937(7));
  for (const auto& order : orders) {
    flat_map<long, std::string> flat;
    std::map<long, std::string> tree;
    for (std::size_t i = 0; i < order.size(); ++i) {
      const long key = order[i];
      const std::string value = "v" + std::to_string(i);
      CHECK(flat.insert_or_assign(key, value).second == tree.insert_or_assign(key, value).second);
      // Every third key again: replaced by insert_or_assign, kept by try_emplace.
      if (i % 3 == 0) {
        CHECK_FALSE(flat.insert_or_assign(key, value + "'").second);
        tree[key] = value + "'";
        const auto [at, added] = flat.try_emplace(key, "ignored");
        CHECK_FALSE(added);
        CHECK(at->second == value + "'");
      }
    }
    check_same(flat, tree);
    CHECK(flat.find(-1) == flat.end());
    CHECK(flat.find(1) == flat.end());
    CHECK(flat.find(300 * 3600) == flat.end());
  }
}
