#pragma once

// The in-memory raw event store of one partition (the embedded default): exact deduplication
// over the whole history on (customer_id, event_id), append-only, scanned by customer for
// re-aggregation.

#include "persistence/store.hpp"

#include <cstdint>
#include <deque>
#include <string>
#include <unordered_map>
#include <vector>

namespace meterflow::persistence {

class memory_store final : public event_store {
public:
  std::vector<append_outcome> append_batch(std::vector<event>&& events,
                                           const std::vector<std::uint64_t>& positions) override;

  // Stores the event unless its key is already present: the same payload is a duplicate, a
  // different one a conflict (the first accepted version stands).
  // `source_position` is where the event came from (its input line), kept for replay.
  append_outcome append(event&& e, std::uint64_t source_position);
  // What appending `e` from `source_position` would be when its key is stored already
  // (duplicate, conflict or replayed), or nothing for a new key: a lookup that stores nothing,
  // the rule append() applies.
  std::optional<append_outcome> outcome_if_stored(const event& e,
                                                  std::uint64_t source_position) const;

  std::size_t size() const override { return events_.size(); }
  const event& at(std::uint32_t index) const override { return events_[index]; }
  std::uint64_t source_position(std::uint32_t index) const override { return positions_[index]; }
  const std::vector<std::uint32_t>& events_of(const std::string& customer_id) const override {
    return of(customer_id).indexes;
  }
  const std::vector<pricing::timestamp>&
  event_times_of(const std::string& customer_id) const override {
    return of(customer_id).times;
  }
  std::optional<std::uint32_t> index_at(std::uint64_t source_position) const override;

private:
  std::deque<event> events_;
  std::vector<std::uint64_t> positions_;
  // Open-addressing index of key hashes (linear probing, load <= 1/2): slot = event index + 1,
  // 0 = empty. Hash collisions are resolved by comparing the stored keys.
  std::vector<std::uint32_t> slots_;
  std::vector<std::uint64_t> slot_hashes_;
  void grow();
  // The slot holding the key, or the empty slot where it would go (slots_ must not be empty).
  std::size_t probe(const std::string& customer_id, const std::string& event_id,
                    std::uint64_t hash) const;
  // Duplicate, conflict or replayed: `e` against the stored event at `index` with its key.
  append_outcome outcome_of_stored(std::uint32_t index, const event& e,
                                   std::uint64_t source_position) const;
  struct customer_events {
    std::vector<std::uint32_t> indexes;
    std::vector<pricing::timestamp> times; // of indexes[i]
  };
  std::unordered_map<std::string, customer_events> by_customer_;
  const customer_events& of(const std::string& customer_id) const; // empty for a stranger
};

} // namespace meterflow::persistence
