#include "persistence/memory_store.hpp"

#include <xxhash.h>

namespace meterflow::persistence {

namespace {

std::uint64_t key_hash(const std::string& customer_id, const std::string& event_id) {
  const std::uint64_t h = XXH3_64bits(customer_id.data(), customer_id.size());
  return XXH3_64bits_withSeed(event_id.data(), event_id.size(), h);
}

} // namespace

append_outcome memory_store::append(event&& e, std::uint64_t source_position) {
  const std::uint64_t h = key_hash(e.customer_id, e.event_id);
  auto [first, last] = by_key_.equal_range(h);
  for (auto it = first; it != last; ++it) {
    const event& existing = events_[it->second];
    if (existing.customer_id == e.customer_id && existing.event_id == e.event_id)
      return existing.same_payload(e) ? append_outcome::duplicate : append_outcome::conflict;
  }
  const auto index = static_cast<std::uint32_t>(events_.size());
  by_key_.emplace(h, index);
  by_customer_[e.customer_id].push_back(index);
  events_.push_back(std::move(e));
  positions_.push_back(source_position);
  return append_outcome::accepted;
}

const std::vector<std::uint32_t>& memory_store::events_of(const std::string& customer_id) const {
  static const std::vector<std::uint32_t> none;
  auto it = by_customer_.find(customer_id);
  return it == by_customer_.end() ? none : it->second;
}

} // namespace meterflow::persistence
