#pragma once

// Incremental rating (SEMANTICS §5.3): charge(w_k) = P_v(C_k) - P_v(C_{k-1}), with the
// explanation a finance team needs to audit it.

#include "pricing/price_book.hpp"

#include <string>
#include <vector>

namespace meterflow::pricing {

enum class unpriced_reason { none, no_price_book, no_version, no_price };
const char* to_string(unpriced_reason reason);

struct charge_explanation {
  std::string price_book_id;
  std::string currency;
  std::string version;
  timestamp effective_from = 0;
  std::optional<timestamp> effective_until;
  rounding_mode rounding = rounding_mode::half_even;
  model_kind model = model_kind::flat;
  decimal cumulative_before;
  decimal cumulative_after;
  decimal price_before;         // P_v(C_{k-1})
  decimal price_after;          // P_v(C_k)
  decimal amount;               // price_after - price_before
  std::vector<tier_line> tiers; // per tier: after minus before, rows that changed
  std::string formula;          // human-readable derivation
};

// Finds the version and the metric's price that apply to a window starting at `window_start`.
struct price_lookup {
  const price_book_version* version = nullptr;
  const price_model* model = nullptr;
  unpriced_reason reason = unpriced_reason::none;
};
price_lookup lookup_price(const price_book* book, const std::string& metric,
                          timestamp window_start);

// The incremental charge of moving the cumulative quantity from `before` to `after` under one
// version's model for `metric`.
result<charge_explanation> rate_increment(const price_book& book, const price_book_version& version,
                                          const price_model& model, decimal before, decimal after);

// Rounds an amount to the currency's minor unit ("98.72").
std::string format_money(decimal amount, const std::string& currency, rounding_mode mode);

} // namespace meterflow::pricing
