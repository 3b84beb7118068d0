#pragma once

// The in-memory raw event store of one partition (the embedded default): exact deduplication
// over the whole history on (customer_id, event_id), append-only, scanned by customer for
// re-aggregation.
//
// Packed for memory (docs/architecture.md, "The raw event store"): an event is a 40-byte
// record. Customers and (event type, metadata) pairs are interned, since a customer sends many
// events and most events of a type carry one of a few metadata objects; event ids are copied
// into an arena of large blocks. Nothing stored ever moves, so the views at() hands out stay
// valid for the store's life.

#include "persistence/store.hpp"

#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <string_view>
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
  append_outcome append(const event& e, std::uint64_t source_position);
  // What appending `e` from `source_position` would be when its key is stored already
  // (duplicate, conflict or replayed), or nothing for a new key: a lookup that stores nothing,
  // the rule append() applies.
  std::optional<append_outcome> outcome_if_stored(const event& e,
                                                  std::uint64_t source_position) const;

  std::size_t size() const override { return records_.size(); }
  event_view at(std::uint32_t index) const override;
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
  // One stored event. The decimal is kept as its bytes, so the record needs no 16-byte
  // alignment.
  struct record {
    unsigned char value[sizeof(pricing::decimal)];
    pricing::timestamp time;
    const char* event_id;   // NUL-terminated, in ids_
    std::uint32_t customer; // into customers_
    std::uint32_t kind;     // into kinds_
  };
  struct customer_events {
    std::vector<std::uint32_t> indexes;
    std::vector<pricing::timestamp> times; // of indexes[i]
  };
  struct customer {
    std::string id;
    std::uint64_t hash = 0; // of id: the seed of its events' key hashes
    customer_events events;
  };
  // An event type and a canonical metadata object, joined by 0x1F (which neither can hold
  // raw): type = text[0, split), metadata = text[split + 1, end).
  struct kind {
    std::string text;
    std::size_t split = 0;
  };
  // Append-only blocks of NUL-terminated strings: what it returns never moves.
  class text_arena {
  public:
    const char* add(std::string_view text);

  private:
    std::vector<std::unique_ptr<char[]>> blocks_;
    std::size_t used_ = 0;
    std::size_t capacity_ = 0;
  };
  // Open-addressing index of key hashes (linear probing, load <= 1/2): the event index + 1
  // (0 = empty) and the hash's high half, which settles most mismatches without reading the
  // event. Collisions are resolved by comparing the stored keys.
  struct slot {
    std::uint32_t index_plus_one = 0;
    std::uint32_t tag = 0;
  };

  std::deque<record> records_;
  std::vector<std::uint64_t> positions_;
  text_arena ids_;
  std::deque<customer> customers_;
  std::unordered_map<std::string_view, std::uint32_t> customer_index_; // views of customers_
  std::deque<kind> kinds_;
  std::unordered_map<std::string_view, std::uint32_t> kind_index_; // views of kinds_
  std::string kind_key_;                                           // scratch for a lookup
  std::vector<slot> slots_;

  std::optional<std::uint32_t> customer_of(std::string_view customer_id) const;
  std::uint32_t intern_customer(const std::string& customer_id);
  std::uint32_t intern_kind(const event& e);
  std::uint64_t key_hash(const customer& c, std::string_view event_id) const;
  void grow();
  // The slot holding the key, or the empty slot where it would go (slots_ must not be empty).
  std::size_t probe(std::uint32_t customer, std::string_view event_id, std::uint64_t hash) const;
  // Duplicate, conflict or replayed: `e` against the stored event at `index` with its key.
  append_outcome outcome_of_stored(std::uint32_t index, const event& e,
                                   std::uint64_t source_position) const;
  const customer_events& of(const std::string& customer_id) const; // empty for a stranger
};

} // namespace meterflow::persistence
