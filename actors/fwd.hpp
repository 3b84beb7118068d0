#pragma once

// Message types and atoms of the actor graph. CAF 0.17 has no type ID blocks: message types
// that stay inside one process are marked as such here, in one place.

#include "actors/dataflow.hpp"

#include <caf/allowed_unsafe_message_type.hpp>
#include <caf/atom.hpp>
#include <optional>

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

// What a partition and its stages emitted while applying a batch, with its counters so far.
struct partition_report {
  std::uint32_t partition = 0;
  partition_output output;
  partition_counters counters;
  std::size_t open_windows = 0;
  timestamp watermark = watermark_min;
  std::string fatal; // set when an amount overflowed: the run stops with exit status 3
};

// Where a restarted partition resumes: the watermark steps already applied, and the last
// input position they covered. With `queue_later_events` the later stored events wait for the
// next apply (a partition restarted within a run); without, they come back from the source as
// `replayed` (a restarted service reading its input again).
struct restore_request {
  std::vector<watermark_step> history;
  std::uint64_t applied_upto = 0;
  bool queue_later_events = true;
};

// The window a window actor aggregates from now on (a window actor serves one window at a time;
// after its final aggregate the partition gives it the next one).
struct window_identity {
  std::string customer_id;
  const config::meter* meter = nullptr;
  timestamp start = 0;
  timestamp end = 0;
};

// One batch segment's events of one window: one message per window, never one per event. A
// window's first segment also says which window the actor aggregates from now on (one message
// less per window than a separate "open").
struct window_inputs {
  std::vector<window_input> inputs;
  std::optional<window_identity> opens;
};

// A window's final aggregate record, and the aggregate itself for the rating stage.
struct finalized_window {
  stage_output output;
  window_final final;
};

// The final windows of one rating scope in a watermark step, in window order, and whether the
// period became final (period-level meters are rated then).
struct rating_input {
  std::uint64_t step = 0;
  std::vector<window_final> finals;
  bool close_period = false;
};

// Re-rate a scope's windows that very late events changed (SEMANTICS §7).
struct rerate_request {
  std::uint64_t step = 0;
  phase stage = phase::rerate;
  std::set<timestamp> changed;
  timestamp watermark = watermark_min;
};

struct line_updates {
  std::vector<line_update> lines;
};

// Issue the period's invoice (`settle` false), or settle it after a re-rate (`settle` true).
struct invoice_request {
  std::uint64_t step = 0;
  timestamp watermark = watermark_min;
  bool settle = false;
};

// What the store holds of a partition's charges and invoices, for a resumed service to adopt
// after its replay: current charges by (customer, metric, period start) and window start;
// invoices (standard and corrections, in issue order) by (customer, period start).
struct stored_charges {
  std::map<timestamp, current_charge> by_window;
};
struct stored_invoices {
  std::vector<persistence::invoice_record> invoices;
};
struct stored_state {
  std::map<std::tuple<std::string, std::string, timestamp>, stored_charges> charges;
  std::map<std::pair<std::string, timestamp>, stored_invoices> invoices;
};

using admit_atom = caf::atom_constant<caf::atom("admit")>;
using adopt_atom = caf::atom_constant<caf::atom("adopt")>;
using apply_atom = caf::atom_constant<caf::atom("apply")>;
using restore_atom = caf::atom_constant<caf::atom("restore")>;
using add_atom = caf::atom_constant<caf::atom("add")>;
using close_atom = caf::atom_constant<caf::atom("close")>;
using finalize_atom = caf::atom_constant<caf::atom("finalize")>;
using rate_atom = caf::atom_constant<caf::atom("rate")>;
using rerate_atom = caf::atom_constant<caf::atom("rerate")>;
using lines_atom = caf::atom_constant<caf::atom("lines")>;
using issue_atom = caf::atom_constant<caf::atom("issue")>;
using done_atom = caf::atom_constant<caf::atom("done")>;
using final_atom = caf::atom_constant<caf::atom("final")>;

} // namespace meterflow::actors

CAF_ALLOW_UNSAFE_MESSAGE_TYPE(meterflow::actors::event_batch)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(meterflow::actors::admit_result)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(meterflow::actors::watermark_steps)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(meterflow::actors::partition_report)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(meterflow::actors::restore_request)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(meterflow::actors::stored_charges)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(meterflow::actors::stored_invoices)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(meterflow::actors::stored_state)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(meterflow::actors::window_identity)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(meterflow::actors::window_inputs)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(meterflow::actors::finalized_window)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(meterflow::actors::stage_output)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(meterflow::actors::rating_input)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(meterflow::actors::rerate_request)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(meterflow::actors::line_updates)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(meterflow::actors::invoice_request)
