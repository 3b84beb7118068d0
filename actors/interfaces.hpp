#pragma once

// Every typed actor interface of the engine, so the graph reads in one place.
//
//   source ──admit(batch)──► partition ──admit_result──► source
//   source ──apply(steps)──► partition ──partition_report──► source (sink)
//
//   partition ──open(window), add(events of one window)──► window
//                                                  (one per open customer × metric × window)
//   partition ──close(step)────► window ──done(provisional aggregate)──► partition
//   partition ──finalize(step)─► window ──final(aggregate + final window)──► partition
//   partition ──rate(final windows, in window order)──► rating (one per customer × metric × period)
//   partition ──rerate(changed windows)────────────────► rating
//                rating ──lines(current charges)──► invoice   (one per customer × period)
//                rating ──done(charges)──► partition
//   partition ──issue / settle(step)──► invoice ──done(invoices)──► partition
//
// The source advances the single batch watermark in input order from the partitions' dedup
// outcomes, then broadcasts the steps; each partition applies its events between them and,
// at every step, drives its stages through close, finalize, rating, re-rating and invoicing,
// counting the replies of each stage before it starts the next, so every record's order key
// is made from the input alone. A rating actor sends its line updates to the invoice actor
// before it reports done, so the invoice actor has them before the partition asks it to
// issue (messages of one process are delivered in the order they were sent, causally).

#include "actors/fwd.hpp"

#include <caf/typed_actor.hpp>

namespace meterflow::actors {

using partition_actor =
    caf::typed_actor<caf::replies_to<admit_atom, event_batch>::with<admit_result>,
                     caf::replies_to<apply_atom, watermark_steps>::with<partition_report>,
                     caf::replies_to<restore_atom, restore_request>::with<partition_report>,
                     caf::replies_to<adopt_atom, stored_state>::with<partition_report>,
                     caf::reacts_to<done_atom, stage_output>,
                     caf::reacts_to<final_atom, finalized_window>>;

using window_actor = caf::typed_actor<caf::reacts_to<add_atom, window_inputs>,
                                      caf::reacts_to<close_atom, std::uint64_t>,
                                      caf::reacts_to<finalize_atom, std::uint64_t>>;

using invoice_actor = caf::typed_actor<caf::reacts_to<lines_atom, line_updates>,
                                       caf::reacts_to<adopt_atom, stored_invoices>,
                                       caf::reacts_to<issue_atom, invoice_request>>;

using rating_actor = caf::typed_actor<caf::reacts_to<rate_atom, rating_input>,
                                      caf::reacts_to<adopt_atom, stored_charges>,
                                      caf::reacts_to<rerate_atom, rerate_request>>;

} // namespace meterflow::actors
