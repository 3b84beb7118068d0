#pragma once

// The partition actor: owns a hash range of customers, deduplicates and stores their events,
// and runs their windows, rating, invoices and re-rates (partition_state). A restarted
// partition rebuilds its state from the store before it takes new work.

#include "actors/interfaces.hpp"

#include <caf/typed_event_based_actor.hpp>

namespace meterflow::actors {

// Where a restarted partition resumes: the watermark steps already applied, and the last
// input position they covered.
struct restore_point {
  const std::vector<watermark_step>* history = nullptr;
  std::uint64_t applied_upto = 0;
  bool queue_later_events = true; // see partition_state::restore
};

struct partition_actor_state {
  static inline const char* name = "partition";
  std::uint32_t partition = 0;
  std::unique_ptr<partition_state> state;
  // Test-only fault hook: throw while applying this batch number (0 = never).
  std::uint64_t crash_at_batch = 0;
};

partition_actor::behavior_type
partition(partition_actor::stateful_pointer<partition_actor_state> self, std::uint32_t index,
          const config::configuration* cfg, persistence::event_store* store,
          std::uint64_t crash_at_batch, restore_point restore);

} // namespace meterflow::actors
