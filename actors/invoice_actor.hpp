#pragma once

// The invoice accumulator: one per customer x period. It keeps the current charges its rating
// actors send, and issues the standard invoice when the period is
// final and correction invoices after re-rates (invoice_state).

#include "actors/interfaces.hpp"
#include "actors/invoice_state.hpp"

#include <caf/typed_event_based_actor.hpp>

namespace meterflow::actors {

// A constructor, so CAF does not take the state for an aggregate built from the actor.
struct invoice_actor_state {
  invoice_actor_state() = default;
  static inline const char* name = "invoice";
  std::unique_ptr<invoice_state> state;
  partition_actor partition;
};

invoice_actor::behavior_type invoice(invoice_actor::stateful_pointer<invoice_actor_state> self,
                                     partition_actor partition, const config::configuration* cfg,
                                     std::string customer_id, pricing::period period);

} // namespace meterflow::actors
