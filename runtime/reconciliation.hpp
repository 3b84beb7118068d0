#pragma once

// The reconciliation chain of SEMANTICS §8 over a run's records: events = aggregates =
// charges = invoice lines = ledger. Each check reports expected, actual and ok.

#include "config/config.hpp"
#include "runtime/run_sink.hpp"

#include <nlohmann/json.hpp>

namespace meterflow::runtime {

struct reconciliation_report {
  bool ok = true;
  nlohmann::ordered_json json;
};

reconciliation_report reconcile(const run_sink& sink, const config::configuration& cfg);

} // namespace meterflow::runtime
