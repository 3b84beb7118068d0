#pragma once

// Message types and atoms of the actor graph. CAF 0.17 has no type ID blocks: message types
// that stay inside one process are marked as such here, in one place.

#include "actors/partition_state.hpp"

#include <caf/allowed_unsafe_message_type.hpp>
#include <caf/atom.hpp>

namespace meterflow::actors {

// A batch of validated events for one partition, in input order.
struct event_batch {
  std::uint64_t batch = 0;
  std::vector<sequenced_event> events;
};

// One outcome per event of an event_batch.
struct admit_result {
  std::uint32_t partition = 0;
  std::vector<persistence::append_outcome> outcomes;
};

// The watermark steps of a whole batch, broadcast to every partition.
struct watermark_steps {
  std::uint64_t batch = 0;
  std::vector<watermark_step> steps;
  bool end_of_input = false;
};

// What a partition emitted while applying a batch, with its counters so far.
struct partition_report {
  std::uint32_t partition = 0;
  partition_output output;
  partition_counters counters;
  std::size_t open_windows = 0;
  std::string fatal; // set when an amount overflowed: the run stops with exit status 3
};

using admit_atom = caf::atom_constant<caf::atom("admit")>;
using apply_atom = caf::atom_constant<caf::atom("apply")>;

} // namespace meterflow::actors

CAF_ALLOW_UNSAFE_MESSAGE_TYPE(meterflow::actors::event_batch)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(meterflow::actors::admit_result)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(meterflow::actors::watermark_steps)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(meterflow::actors::partition_report)
