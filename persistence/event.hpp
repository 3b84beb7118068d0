#pragma once

// A validated telemetry event (SEMANTICS §2), as the store keeps it.

#include "pricing/decimal.hpp"
#include "pricing/time.hpp"

#include <string>
#include <string_view>

namespace meterflow::persistence {

struct event {
  std::string customer_id;
  std::string event_id;
  std::string event_type;
  pricing::timestamp event_time = 0;
  pricing::decimal value = pricing::decimal::from_int(1); // absent -> 1
  // Canonical compact JSON of the metadata object (keys sorted, numbers by value), "" if absent.
  std::string metadata;

  // Equality of the canonical payload (SEMANTICS §11): event_view::same_payload.
  bool same_payload(const event& other) const;
};

// An event read in place: from a store (which packs what it keeps, so it hands out views) or
// from an `event`. It is valid as long as what it reads: a store never moves or drops what it
// holds, and every id string is NUL-terminated (`event_id.data()` is a C string; ids are
// printable ASCII, SEMANTICS §2, so none holds a NUL), so a window can keep a pointer to an
// event id alone.
struct event_view {
  std::string_view customer_id;
  std::string_view event_id;
  std::string_view event_type;
  pricing::timestamp event_time = 0;
  pricing::decimal value;
  std::string_view metadata;

  event_view() = default;
  event_view(const event& e) // NOLINT(google-explicit-constructor): a view of any event
      : customer_id(e.customer_id), event_id(e.event_id), event_type(e.event_type),
        event_time(e.event_time), value(e.value), metadata(e.metadata) {}
  event_view(std::string_view customer_id, std::string_view event_id, std::string_view event_type,
             pricing::timestamp event_time, pricing::decimal value, std::string_view metadata)
      : customer_id(customer_id), event_id(event_id), event_type(event_type),
        event_time(event_time), value(value), metadata(metadata) {}

  // Equality of the canonical payload (SEMANTICS §11): same instant, type, value and metadata.
  bool same_payload(const event_view& other) const {
    return event_time == other.event_time && event_type == other.event_type &&
           value == other.value && metadata == other.metadata;
  }
};

inline bool event::same_payload(const event& other) const {
  return event_view(*this).same_payload(other);
}

} // namespace meterflow::persistence
