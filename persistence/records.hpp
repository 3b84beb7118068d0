#pragma once

// The append-only records of the system of record (SEMANTICS §3-§8): aggregate revisions,
// rated charges, invoices and unpriced windows. Records are never changed once emitted; a
// correction is a new record that points at what it supersedes.

#include "persistence/ids.hpp"
#include "pricing/rating.hpp"

#include <cstdint>
#include <initializer_list>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace meterflow::persistence {

using pricing::decimal;
using pricing::timestamp;

// A record's list of source event ids: immutable once made, and shared by copies. A window's
// final aggregate and the charge rated from it list the same events: one list, not a second
// sort and copy of every id. Reads like a const std::vector<std::string>.
class id_list {
public:
  using value_type = std::string;
  using const_iterator = std::vector<std::string>::const_iterator;

  id_list() = default;
  id_list(std::vector<std::string> ids)
      : ids_(ids.empty() ? nullptr
                         : std::make_shared<const std::vector<std::string>>(std::move(ids))) {}
  id_list(std::initializer_list<std::string> ids) : id_list(std::vector<std::string>(ids)) {}

  const std::vector<std::string>& vec() const { return ids_ ? *ids_ : none(); }
  operator const std::vector<std::string>&() const { return vec(); }
  std::size_t size() const { return vec().size(); }
  bool empty() const { return vec().empty(); }
  const_iterator begin() const { return vec().begin(); }
  const_iterator end() const { return vec().end(); }
  const std::string& operator[](std::size_t i) const { return vec()[i]; }

  friend bool operator==(const id_list& a, const id_list& b) { return a.vec() == b.vec(); }
  friend bool operator==(const id_list& a, const std::vector<std::string>& b) {
    return a.vec() == b;
  }

private:
  static const std::vector<std::string>& none() {
    static const std::vector<std::string> empty;
    return empty;
  }
  std::shared_ptr<const std::vector<std::string>> ids_;
};

template <class BasicJson>
void to_json(BasicJson& j, const id_list& ids) {
  j = ids.vec();
}

enum class aggregate_kind { provisional, final, reaggregated };
const char* to_string(aggregate_kind kind);

struct aggregate_record {
  std::string aggregation_id; // sha256 of (customer, metric, window_start, revision)
  std::string customer_id;
  std::string metric;
  timestamp window_start = 0;
  timestamp window_end = 0;
  std::uint32_t revision = 0; // 0, 1, ... per customer x metric x window
  aggregate_kind kind = aggregate_kind::provisional;
  bool is_final = false;
  decimal value;
  std::uint64_t event_count = 0;
  id_list event_ids; // the source events, in event_time, event_id order
};

enum class charge_trigger { window_final, period_close, rerate };
const char* to_string(charge_trigger trigger);

struct charge_record {
  std::string charge_id; // sha256 of (customer, metric, window_start, supersedes_charge_id)
  std::string customer_id;
  std::string metric;
  timestamp window_start = 0;
  timestamp window_end = 0;
  std::string aggregation_id;
  decimal quantity;
  charge_trigger trigger = charge_trigger::window_final;
  std::optional<std::string> supersedes_charge_id;
  pricing::charge_explanation calculation; // version, model, cumulative, tiers, formula, amount
  std::uint64_t source_event_count = 0;
  id_list source_event_ids; // the final aggregate's, shared

  const decimal& amount() const { return calculation.amount; }
};

struct unpriced_window {
  std::string customer_id;
  std::string metric;
  timestamp window_start = 0;
  timestamp window_end = 0;
  decimal quantity;
  pricing::unpriced_reason reason = pricing::unpriced_reason::none;
  std::string price_book_id; // "" when the customer has none
};

struct invoice_line {
  std::string line_item_id; // sha256 of (invoice_id, metric)
  std::string metric;
  decimal quantity;
  decimal amount; // rounded to the currency's minor unit
  // Packed (32 bytes, no allocation): an issued invoice lists every current charge of its
  // period, and a run issues most of its invoices at once, at the end of its input.
  std::vector<packed_id> charge_ids;
};

enum class invoice_type { standard, correction };
const char* to_string(invoice_type type);

struct invoice_record {
  std::string invoice_id;
  invoice_type type = invoice_type::standard;
  std::optional<std::string> corrects_invoice_id;
  std::string customer_id;
  pricing::period period;
  std::string currency;
  std::string status = "issued";
  std::vector<invoice_line> line_items;
  decimal subtotal;
  decimal credits_applied;
  decimal total;
  std::vector<std::string> credit_reasons;
};

// One re-rate (SEMANTICS §7): what started it, why, its scope and what it changed. The scope
// and the result are JSON objects (the comparison per customer, metric and period).
struct rerate_run {
  std::string rerate_run_id;
  std::string trigger; // manual
  std::string reason;
  std::string scope_json;
  std::string result_json;
  std::vector<std::string> superseding_charge_ids;
  std::vector<std::string> correction_invoice_ids;
};

struct rejected_line {
  std::uint64_t line = 0;
  std::string reason; // machine-readable (bad_json, missing_field, ..., event_id_conflict)
  std::string detail;
  std::string raw;
};

} // namespace meterflow::persistence
