#include "actors/invoice_actor.hpp"

namespace meterflow::actors {

invoice_actor::behavior_type invoice(invoice_actor::stateful_pointer<invoice_actor_state> self,
                                     const config::configuration* cfg, std::string customer_id,
                                     pricing::period period) {
  self->state.state = std::make_unique<invoice_state>(*cfg, std::move(customer_id), period);
  return {[self](lines_atom, line_updates& in) { self->state.state->update(std::move(in.lines)); },
          [self](issue_atom, const invoice_request& in) {
            return run_stage(*self->state.state, [&](invoice_state& st) {
              if (in.settle)
                st.settle(in.step, in.watermark);
              else
                st.issue(in.step);
            });
          }};
}

} // namespace meterflow::actors
