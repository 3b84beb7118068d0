#include "actors/rating_actor.hpp"

#include "actors/faults.hpp"

namespace meterflow::actors {

rating_actor::behavior_type rating(rating_actor::stateful_pointer<rating_actor_state> self,
                                   partition_actor partition, invoice_actor invoice,
                                   const config::configuration* cfg,
                                   const persistence::event_store* store, std::string customer_id,
                                   const config::meter* meter, pricing::period period) {
  self->state.state =
      std::make_unique<rating_state>(*cfg, *store, std::move(customer_id), *meter, period);
  self->state.partition = std::move(partition);
  self->state.invoice = std::move(invoice);
  auto reply = [self](stage_output&& out) {
    if (!out.lines.empty())
      self->send(self->state.invoice, lines_atom::value, line_updates{std::move(out.lines)});
    self->send(self->state.partition, done_atom::value, std::move(out));
  };
  return {[self, reply](rate_atom, rating_input& in) {
            stage_fault_point(stage_kind::rating, "rating");
            reply(run_stage(*self->state.state, [&](rating_state& st) {
              for (window_final& w : in.finals)
                st.add_final(in.step, std::move(w));
              if (in.close_period)
                st.close_period(in.step);
            }));
          },
          [self, reply](adopt_atom, const stored_charges& in) {
            reply(run_stage(*self->state.state, [&](rating_state& st) { st.adopt(in.by_window); }));
          },
          [self, reply](rerate_atom, const rerate_request& in) {
            reply(run_stage(*self->state.state, [&](rating_state& st) {
              st.rerate(in.step, in.stage, in.changed, in.watermark);
            }));
          }};
}

} // namespace meterflow::actors
