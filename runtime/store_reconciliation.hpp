#pragma once

// The reconciliation chain of SEMANTICS §8 over the PostgreSQL system of record (events →
// aggregates → charges → invoice lines → ledger), computed in SQL in one snapshot, for the
// whole store, one billing period or one day's windows. docs/cli.md (`meterflow reconcile`)
// defines every check. The report has the shape of a batch run's reconciliation.json, plus
// the scope and how far the store's input was processed.

#include "config/config.hpp"
#include "runtime/reconciliation.hpp"

#include <optional>
#include <string>

namespace meterflow::runtime {

// Event times and windows in [from, to); invoices and ledger entries of the billing periods
// that overlap it. No bounds: the whole store.
struct reconcile_scope {
  std::optional<pricing::timestamp> from, to;
  std::string name; // "store", "2024-01", "2024-01-15"
};

// Throws persistence::store_error when the store cannot be reached, its schema is not
// current, or it holds an amount that is not a meterflow decimal. Without a configuration
// the checks that need the meters and the windowing are skipped (listed in "skipped").
reconciliation_report reconcile_store(const std::string& conninfo, const config::configuration* cfg,
                                      const reconcile_scope& scope);

} // namespace meterflow::runtime
