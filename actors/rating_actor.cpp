#include "actors/rating_actor.hpp"

namespace meterflow::actors {

rating_actor::behavior_type rating(rating_actor::stateful_pointer<rating_actor_state> self,
                                   const config::configuration* cfg,
                                   const persistence::event_store* store, std::string customer_id,
                                   const config::meter* meter, pricing::period period) {
  self->state.state =
      std::make_unique<rating_state>(*cfg, *store, std::move(customer_id), *meter, period);
  return {[self](rate_atom, rating_input& in) {
            return run_stage(*self->state.state, [&](rating_state& st) {
              for (window_final& w : in.finals)
                st.add_final(in.step, std::move(w));
              if (in.close_period)
                st.close_period(in.step);
            });
          },
          [self](rerate_atom, const rerate_request& in) {
            return run_stage(*self->state.state, [&](rating_state& st) {
              st.rerate(in.step, in.stage, in.changed, in.watermark);
            });
          }};
}

} // namespace meterflow::actors
