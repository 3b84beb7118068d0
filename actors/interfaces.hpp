#pragma once

// Every typed actor interface of the engine, so the graph reads in one place.
//
//   source ──admit(batch)──► partition ──admit_result──► source
//   source ──apply(steps)──► partition ──partition_report──► source (sink)
//
//   partition ──add(events of one window)──► window            (one per customer×metric×window)
//   partition ──close / finalize(step)─────► window ──aggregate (+ final window)──► partition
//   partition ──rate(final windows, in window order)──► rating   (one per customer×metric×period)
//   partition ──rerate(changed windows)────────────────► rating ──charges + line updates──►
//   partition ──lines(line updates)──► invoice                   (one per customer×period)
//   partition ──issue / settle(step)──► invoice ──invoices──► partition
//
// The source advances the single batch watermark in input order from the partitions' dedup
// outcomes, then broadcasts the steps; each partition applies its events between them and,
// at every step, drives its stages through close, finalize, rating, re-rating and invoicing,
// waiting for each stage's replies before the next so that every record's order key is made
// from the input alone.

#include "actors/fwd.hpp"

#include <caf/typed_actor.hpp>

namespace meterflow::actors {

using partition_actor =
    caf::typed_actor<caf::replies_to<admit_atom, event_batch>::with<admit_result>,
                     caf::replies_to<apply_atom, watermark_steps>::with<partition_report>,
                     caf::replies_to<restore_atom, restore_request>::with<partition_report>>;

using window_actor =
    caf::typed_actor<caf::reacts_to<add_atom, window_inputs>,
                     caf::replies_to<close_atom, std::uint64_t>::with<stage_output>,
                     caf::replies_to<finalize_atom, std::uint64_t>::with<finalized_window>>;

using rating_actor =
    caf::typed_actor<caf::replies_to<rate_atom, rating_input>::with<stage_output>,
                     caf::replies_to<rerate_atom, rerate_request>::with<stage_output>>;

using invoice_actor =
    caf::typed_actor<caf::reacts_to<lines_atom, line_updates>,
                     caf::replies_to<issue_atom, invoice_request>::with<stage_output>>;

} // namespace meterflow::actors
