#include "persistence/ids.hpp"

#include <catch2/catch.hpp>
#include <set>
#include <thread>
#include <unordered_set>

namespace p = meterflow::persistence;

TEST_CASE("content_id is the hex SHA-256 of the parts joined by 0x1F", "[ids]") {
  // Reference digests computed independently (Python hashlib).
  CHECK(p::content_id({"charge", "c1", "api_calls", "2024-01-01T00:00:00Z", ""}) ==
        "361390d77de81291ea61f93769576a43ced9f4dfe5f9a63eb56568b82d3384dc");
  CHECK(p::content_id({}) == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  CHECK(p::content_id({"abc"}) ==
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  // One context per thread, reused: ids made on several threads at once are the same.
  std::vector<std::thread> threads;
  std::vector<std::string> got(4);
  for (std::size_t t = 0; t < got.size(); ++t)
    threads.emplace_back([&, t] {
      for (int i = 0; i < 1000; ++i)
        got[t] = p::content_id({"abc"});
    });
  for (auto& t : threads)
    t.join();
  for (const auto& g : got)
    CHECK(g == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

TEST_CASE("packed_id gives back the id it was made from", "[ids]") {
  const std::string hex = p::content_id({"charge", "c1", "api_calls", "2024-01-01T00:00:00Z", ""});
  REQUIRE(hex.size() == 64);
  CHECK(p::packed_id(hex).str() == hex);
  // Not content ids: upper case, wrong length, a non-hex character, empty. Kept as text.
  for (std::string other : {std::string(64, 'A'), hex.substr(1), hex + "0",
                            std::string(63, 'f') + "g", std::string(), std::string("chg-1")})
    CHECK(p::packed_id(other).str() == other);
  CHECK(p::packed_id(std::string(64, '0')).str() == std::string(64, '0'));
  CHECK(p::packed_id(std::string(64, 'f')).str() == std::string(64, 'f'));
}

TEST_CASE("packed_id compares and hashes as its id does", "[ids]") {
  std::vector<std::string> ids;
  for (int i = 0; i < 200; ++i)
    ids.push_back(p::content_id({"x", std::to_string(i)}));
  ids.push_back("chg-1");
  ids.push_back("chg-2");
  ids.push_back(std::string(64, 'A')); // 64 characters, not hex
  std::set<p::packed_id> ordered;
  std::unordered_set<p::packed_id, p::packed_id::hasher> hashed;
  for (const auto& id : ids) {
    CHECK(ordered.insert(p::packed_id(id)).second);
    CHECK(hashed.insert(p::packed_id(id)).second);
  }
  for (const auto& id : ids) {
    CHECK_FALSE(ordered.insert(p::packed_id(id)).second);
    CHECK(hashed.count(p::packed_id(id)) == 1);
  }
  CHECK(ordered.size() == ids.size());
  CHECK(p::packed_id(ids[0]) == p::packed_id(ids[0]));
  CHECK_FALSE(p::packed_id(ids[0]) == p::packed_id(ids[1]));
  CHECK_FALSE(p::packed_id("chg-1") == p::packed_id("chg-2"));
  // Hex ids order as their text does.
  std::vector<std::string> hex_only(ids.begin(), ids.begin() + 200);
  std::sort(hex_only.begin(), hex_only.end());
  std::vector<std::string> by_packed;
  for (const auto& id : ordered)
    if (id.str().size() == 64 && id.str() != std::string(64, 'A'))
      by_packed.push_back(id.str());
  CHECK(by_packed == hex_only);
}

TEST_CASE("packed_id keeps 32 bytes and tells text ids from content ids", "[ids]") {
  STATIC_REQUIRE(sizeof(p::packed_id) == 32);
  // A content id whose first 192 bits spell the text marker is kept as text: exact all the same.
  const std::string marked =
      "6d65746572666c6f772d746578742d69642d6d61726b6572" + std::string("0000000000000001");
  const std::string near =
      "6d65746572666c6f772d746578742d69642d6d61726b6572" + std::string("0000000000000002");
  CHECK(p::packed_id(marked).str() == marked);
  CHECK(p::packed_id(near).str() == near);
  CHECK(p::packed_id(marked) == p::packed_id(marked));
  CHECK_FALSE(p::packed_id(marked) == p::packed_id(near));
  // Text ids made apart are equal, hash alike and order as their text.
  const p::packed_id a(std::string("inv-") + "7");
  const p::packed_id b(std::string("inv-7"));
  CHECK(a == b);
  CHECK(a.hash() == b.hash());
  CHECK(p::packed_id("inv-10") < p::packed_id("inv-7"));
  CHECK(p::packed_id(std::string(64, '0')) < p::packed_id("inv-10")); // content ids first
}
