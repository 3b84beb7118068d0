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

// The checks of a report, in order. A failed check keeps its `detail` (what differs) and its
// `action` (what to do about it: re-process, void, investigate).
class check_list {
public:
  // A check that holds when the two sides are equal.
  void add(std::string name, const std::string& expected, const std::string& actual,
           std::string detail = {}, std::string action = {}) {
    const bool ok = expected == actual;
    add_bool(std::move(name), ok, expected, actual, std::move(detail), std::move(action));
  }
  void add_bool(std::string name, bool ok, std::string expected, std::string actual,
                std::string detail = {}, std::string action = {});
  bool ok() const { return ok_; }
  std::size_t size() const { return checks_.size(); }
  nlohmann::ordered_json take() { return std::move(checks_); }

private:
  bool ok_ = true;
  nlohmann::ordered_json checks_ = nlohmann::ordered_json::array();
};

// One minor unit of the currency (0.01 USD, 1 JPY): Σ current charges and their rounded
// invoice lines may differ by less than this, by rounding alone.
pricing::decimal minor_unit(const std::string& currency);

reconciliation_report reconcile(const run_sink& sink, const config::configuration& cfg);

} // namespace meterflow::runtime
