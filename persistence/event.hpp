#pragma once

// A validated telemetry event (SEMANTICS §2), as the store keeps it.

#include "pricing/decimal.hpp"
#include "pricing/time.hpp"

#include <string>

namespace meterflow::persistence {

struct event {
  std::string customer_id;
  std::string event_id;
  std::string event_type;
  pricing::timestamp event_time = 0;
  pricing::decimal value = pricing::decimal::from_int(1); // absent -> 1
  // Canonical compact JSON of the metadata object (keys sorted, numbers by value), "" if absent.
  std::string metadata;

  // Equality of the canonical payload (SEMANTICS §11): same instant, type, value and metadata.
  bool same_payload(const event& other) const {
    return event_time == other.event_time && event_type == other.event_type &&
           value == other.value && metadata == other.metadata;
  }
};

} // namespace meterflow::persistence
