#pragma once

// The rating actor: one per customer x metric x period. It rates the final windows the
// partition hands it in window order, incrementally (rating_state), and re-rates its scope when
// very late events changed it. Its replies carry the charges and the line updates for the
// period's invoice accumulator.

#include "actors/interfaces.hpp"
#include "actors/rating_state.hpp"

#include <caf/typed_event_based_actor.hpp>

namespace meterflow::actors {

struct rating_actor_state {
  static inline const char* name = "rating";
  std::unique_ptr<rating_state> state;
};

rating_actor::behavior_type rating(rating_actor::stateful_pointer<rating_actor_state> self,
                                   const config::configuration* cfg,
                                   const persistence::event_store* store, std::string customer_id,
                                   const config::meter* meter, pricing::period period);

} // namespace meterflow::actors
