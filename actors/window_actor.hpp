#pragma once

// The window actor: one per open customer x metric x window. It aggregates the events the
// partition sends it, reports a provisional aggregate when told the window closed (and again
// when stragglers changed it), and the final one when the allowed lateness has passed. Then its
// window is done and the partition gives it the next window that opens (`open`): actors are
// reused rather than ended and spawned again, which in CAF costs a trip through the clock
// thread per actor.

#include "actors/interfaces.hpp"

#include <caf/typed_event_based_actor.hpp>

namespace meterflow::actors {

// A constructor, so CAF does not take the state for an aggregate built from the actor.
struct window_actor_state {
  window_actor_state() = default;
  static inline const char* name = "window";
  partition_actor partition;
  std::string customer_id;
  const config::meter* meter = nullptr;
  timestamp start = 0;
  timestamp end = 0;
  window_aggregate aggregate{config::aggregation::count};
  std::uint32_t revisions = 0; // aggregate revisions emitted so far
};

window_actor::behavior_type window(window_actor::stateful_pointer<window_actor_state> self,
                                   partition_actor partition);

} // namespace meterflow::actors
