#pragma once

// Effective-dated, append-only price books (SEMANTICS §5.1).

#include "pricing/price_model.hpp"
#include "pricing/time.hpp"

#include <map>
#include <optional>
#include <string>
#include <vector>

namespace meterflow::pricing {

struct price_book_version {
  std::string version;
  timestamp effective_from = 0;
  std::optional<timestamp> effective_until; // empty = open-ended
  rounding_mode rounding = rounding_mode::half_even;
  std::map<std::string, price_model> prices; // by metric

  bool contains(timestamp t) const {
    return t >= effective_from && (!effective_until || t < *effective_until);
  }
};

struct price_book {
  std::string id;
  std::string currency;
  std::vector<price_book_version> versions; // publication order

  // The last-published version whose interval contains `window_start`, or nullptr.
  const price_book_version* version_at(timestamp window_start) const;
};

// ISO 4217 minor units: 0 for JPY, KRW, ...; 3 for BHD, KWD, ...; 2 otherwise.
int currency_minor_units(std::string_view currency);
bool is_currency_code(std::string_view currency);

// Checks the book against the window size: currency code, unique version names, bounds on
// window boundaries, from < until, each model valid. Messages name the field relative to the
// book ("versions[1].effective_from: not on a 1h window boundary").
result<void> validate(const price_book& book, duration window_size);

} // namespace meterflow::pricing
