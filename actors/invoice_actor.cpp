#include "actors/invoice_actor.hpp"

#include "actors/faults.hpp"

namespace meterflow::actors {

invoice_actor::behavior_type invoice(invoice_actor::stateful_pointer<invoice_actor_state> self,
                                     partition_actor partition, const config::configuration* cfg,
                                     std::string customer_id, pricing::period period) {
  self->state.state = std::make_unique<invoice_state>(*cfg, std::move(customer_id), period);
  self->state.partition = std::move(partition);
  return {[self](lines_atom, line_updates& in) { self->state.state->update(std::move(in.lines)); },
          [self](adopt_atom, const stored_invoices& in) {
            self->send(
                self->state.partition, done_atom::value,
                run_stage(*self->state.state, [&](invoice_state& st) { st.adopt(in.invoices); }));
          },
          [self](issue_atom, const invoice_request& in) {
            stage_fault_point(stage_kind::invoice, "invoice");
            self->send(self->state.partition, done_atom::value,
                       run_stage(*self->state.state, [&](invoice_state& st) {
                         if (in.settle)
                           st.settle(in.step, in.watermark);
                         else
                           st.issue(in.step);
                       }));
          }};
}

} // namespace meterflow::actors
