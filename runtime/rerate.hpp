#pragma once

// A manual re-rate of a scope of the PostgreSQL system of record (SEMANTICS §7), as one call:
// `meterflow rerate` and `POST /v1/rerate` share it. It rebuilds each customer x metric x
// period's final windows and current charges from the store, re-aggregates them from the raw
// events, re-rates them with the engine's own rating and invoice stages (rating_state,
// invoice_state) under the price books of the configuration it is given, and, unless it is a
// dry run, appends the superseding charges, the correction invoices and the run in one
// transaction. It takes no service lock: the caller owns the store while it runs (the command
// holds the service lock, `meterflow serve` runs it between two batches).

#include "config/config.hpp"
#include "persistence/records.hpp"

#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace meterflow::runtime {

struct rerate_spec {
  std::string store_url;
  pricing::period from, to;           // billing periods, inclusive
  std::vector<std::string> customers; // empty: every customer with stored events
  std::vector<std::string> metrics;   // empty: every meter
  std::string reason;
  bool dry_run = false;
  std::uint32_t partitions = 4; // the partition count the store was written with
};

// One customer x metric x period of the scope: the exact sums of the charges in force.
struct rerate_comparison {
  std::string customer_id, metric, period, currency;
  pricing::decimal before, after;
  std::size_t windows_changed = 0;
};

// customer_id, metric, period, before, after, delta, windows_changed (decimals as strings).
nlohmann::json to_json(const rerate_comparison& c);

struct rerate_outcome {
  std::vector<rerate_comparison> comparisons;
  // Per currency, the sums of `before` and `after` over the comparisons.
  std::map<std::string, std::pair<pricing::decimal, pricing::decimal>> totals;
  std::vector<persistence::charge_record> superseding_charges;
  std::vector<persistence::invoice_record> correction_invoices;
  std::string rerate_run_id; // the run's id, also for a dry run (what it would be recorded as)
  bool recorded = false;     // appended to the store (not a dry run, not refused)
  std::string refused;       // why the store refused the records, when it did
};

// Throws std::invalid_argument for a bad spec (a metric no meter defines, `to` before `from`,
// an empty reason) and persistence::store_error when the store cannot be read.
rerate_outcome rerate(const config::configuration& cfg, const rerate_spec& spec);

} // namespace meterflow::runtime
