#pragma once

// The rating actor: one per customer x metric x period. It rates the final windows the
// partition hands it in window order, incrementally (rating_state), and re-rates its scope when
// very late events changed it. It sends the current charges to the period's invoice actor, then
// its records to the partition.

#include "actors/interfaces.hpp"
#include "actors/rating_state.hpp"

#include <caf/typed_event_based_actor.hpp>

namespace meterflow::actors {

// A constructor, so CAF does not take the state for an aggregate built from the actor.
struct rating_actor_state {
  rating_actor_state() = default;
  static inline const char* name = "rating";
  std::unique_ptr<rating_state> state;
  partition_actor partition;
  invoice_actor invoice;
};

rating_actor::behavior_type rating(rating_actor::stateful_pointer<rating_actor_state> self,
                                   partition_actor partition, invoice_actor invoice,
                                   const config::configuration* cfg,
                                   const persistence::event_store* store, std::string customer_id,
                                   const config::meter* meter, pricing::period period);

} // namespace meterflow::actors
