#pragma once

// Every typed actor interface of the engine, so the graph reads in one place.
//
//   source ──admit(batch)──► partition ──admit_result──► source
//   source ──apply(steps)──► partition ──partition_report──► source (sink)
//
// The source advances the single batch watermark in input order from the partitions' dedup
// outcomes, then broadcasts the steps; each partition applies its events between them.

#include "actors/fwd.hpp"

#include <caf/typed_actor.hpp>

namespace meterflow::actors {

using partition_actor =
    caf::typed_actor<caf::replies_to<admit_atom, event_batch>::with<admit_result>,
                     caf::replies_to<apply_atom, watermark_steps>::with<partition_report>>;

} // namespace meterflow::actors
