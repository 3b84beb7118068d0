#pragma once

// The invoice accumulator: one per customer x period. It keeps the current charges the rating
// actors report (through the partition), and issues the standard invoice when the period is
// final and correction invoices after re-rates (invoice_state).

#include "actors/interfaces.hpp"
#include "actors/invoice_state.hpp"

#include <caf/typed_event_based_actor.hpp>

namespace meterflow::actors {

struct invoice_actor_state {
  static inline const char* name = "invoice";
  std::unique_ptr<invoice_state> state;
};

invoice_actor::behavior_type invoice(invoice_actor::stateful_pointer<invoice_actor_state> self,
                                     const config::configuration* cfg, std::string customer_id,
                                     pricing::period period);

} // namespace meterflow::actors
