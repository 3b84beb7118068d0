#pragma once

// Price models (SEMANTICS §5.2): the price function P(q) of a period quantity q.

#include "pricing/decimal.hpp"

#include <optional>
#include <string>
#include <vector>

namespace meterflow::pricing {

enum class model_kind { flat, tiered, volume, package };

const char* to_string(model_kind kind);
result<model_kind> parse_model_kind(std::string_view text);

struct tier {
  std::optional<decimal> up_to; // inclusive; empty = open-ended (last tier only)
  decimal unit_price;
  decimal flat_fee;
  friend bool operator==(const tier&, const tier&) = default;
};

struct price_model {
  model_kind kind = model_kind::flat;
  decimal unit_price;      // flat
  std::vector<tier> tiers; // tiered, volume
  decimal package_size;    // package
  decimal package_price;   // package
  decimal free_units;      // all models: subtracted from q before pricing
  friend bool operator==(const price_model&, const price_model&) = default;
};

// One tier's contribution to a price: `units` in tier `tier` (1-based) at `unit_price`, plus the
// tier's `flat_fee` when it applies, totalling `amount`.
struct tier_line {
  int tier = 0;
  decimal units;
  decimal unit_price;
  decimal flat_fee;
  decimal amount;
  friend bool operator==(const tier_line&, const tier_line&) = default;
};

struct price_breakdown {
  decimal quantity;             // q as given
  decimal billable;             // q - free_units, floored at 0 for non-flat models
  decimal amount;               // P(q), 12 fractional digits
  std::vector<tier_line> tiers; // tiered/volume: tiers used; package: one line of packages
  decimal packages;             // package: ceil(billable / package_size)
};

// Checks a model's shape: prices and fees non-negative, tiers strictly increasing with only the
// last one open-ended, package size positive. The message names the offending field relative
// to the model ("tiers[1].up_to: must be greater than tiers[0].up_to (1000)").
result<void> validate(const price_model& model);

// P(q). Each product is computed exactly and rounded to 12 digits with `mode`.
// tiered/volume/package give 0 for q <= 0; flat is q x unit_price for any sign.
result<price_breakdown> price(const price_model& model, decimal quantity, rounding_mode mode);

} // namespace meterflow::pricing
