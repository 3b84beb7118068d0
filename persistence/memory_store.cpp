#include "persistence/memory_store.hpp"

#include <algorithm>
#include <xxhash.h>

namespace meterflow::persistence {

namespace {

std::uint64_t key_hash(const std::string& customer_id, const std::string& event_id) {
  const std::uint64_t h = XXH3_64bits(customer_id.data(), customer_id.size());
  return XXH3_64bits_withSeed(event_id.data(), event_id.size(), h);
}

} // namespace

void memory_store::grow() {
  const std::size_t capacity = slots_.empty() ? 1024 : slots_.size() * 2;
  std::vector<std::uint32_t> slots(capacity, 0);
  std::vector<std::uint64_t> hashes(capacity, 0);
  const std::size_t mask = capacity - 1;
  for (std::size_t i = 0; i < slots_.size(); ++i) {
    if (slots_[i] == 0)
      continue;
    std::size_t at = slot_hashes_[i] & mask;
    while (slots[at] != 0)
      at = (at + 1) & mask;
    slots[at] = slots_[i];
    hashes[at] = slot_hashes_[i];
  }
  slots_ = std::move(slots);
  slot_hashes_ = std::move(hashes);
}

std::size_t memory_store::probe(const std::string& customer_id, const std::string& event_id,
                                std::uint64_t hash) const {
  const std::size_t mask = slots_.size() - 1;
  std::size_t at = hash & mask;
  for (; slots_[at] != 0; at = (at + 1) & mask) {
    if (slot_hashes_[at] != hash)
      continue;
    const event& existing = events_[slots_[at] - 1];
    if (existing.customer_id == customer_id && existing.event_id == event_id)
      break;
  }
  return at;
}

append_outcome memory_store::outcome_of_stored(std::uint32_t index, const event& e,
                                               std::uint64_t source_position) const {
  if (positions_[index] == source_position)
    return append_outcome::replayed;
  return events_[index].same_payload(e) ? append_outcome::duplicate : append_outcome::conflict;
}

std::optional<append_outcome> memory_store::outcome_if_stored(const event& e,
                                                              std::uint64_t source_position) const {
  if (slots_.empty())
    return std::nullopt;
  const std::size_t at = probe(e.customer_id, e.event_id, key_hash(e.customer_id, e.event_id));
  if (slots_[at] == 0)
    return std::nullopt;
  return outcome_of_stored(slots_[at] - 1, e, source_position);
}

append_outcome memory_store::append(event&& e, std::uint64_t source_position) {
  if ((events_.size() + 1) * 2 > slots_.size())
    grow();
  const std::uint64_t h = key_hash(e.customer_id, e.event_id);
  const std::size_t at = probe(e.customer_id, e.event_id, h); // one probe per append
  if (slots_[at] != 0)
    return outcome_of_stored(slots_[at] - 1, e, source_position);
  const auto index = static_cast<std::uint32_t>(events_.size());
  slots_[at] = index + 1;
  slot_hashes_[at] = h;
  customer_events& of = by_customer_[e.customer_id];
  of.indexes.push_back(index);
  of.times.push_back(e.event_time);
  events_.push_back(std::move(e));
  positions_.push_back(source_position);
  return append_outcome::accepted;
}

std::vector<append_outcome>
memory_store::append_batch(std::vector<event>&& events,
                           const std::vector<std::uint64_t>& positions) {
  std::vector<append_outcome> outcomes;
  outcomes.reserve(events.size());
  for (std::size_t i = 0; i < events.size(); ++i)
    outcomes.push_back(append(std::move(events[i]), positions[i]));
  return outcomes;
}

std::optional<std::uint32_t> memory_store::index_at(std::uint64_t source_position) const {
  // Events are appended in input order, so their positions ascend.
  auto it = std::lower_bound(positions_.begin(), positions_.end(), source_position);
  if (it == positions_.end() || *it != source_position)
    return std::nullopt;
  return static_cast<std::uint32_t>(it - positions_.begin());
}

const memory_store::customer_events& memory_store::of(const std::string& customer_id) const {
  static const customer_events none;
  auto it = by_customer_.find(customer_id);
  return it == by_customer_.end() ? none : it->second;
}

} // namespace meterflow::persistence
