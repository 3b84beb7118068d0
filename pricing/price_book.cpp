#include "pricing/price_book.hpp"

#include <set>

namespace meterflow::pricing {

const price_book_version* price_book::version_at(timestamp window_start) const {
  for (auto it = versions.rbegin(); it != versions.rend(); ++it)
    if (it->contains(window_start))
      return &*it;
  return nullptr;
}

bool is_currency_code(std::string_view currency) {
  if (currency.size() != 3)
    return false;
  for (char c : currency)
    if (c < 'A' || c > 'Z')
      return false;
  return true;
}

int currency_minor_units(std::string_view currency) {
  // ISO 4217 currencies whose minor unit is not 2 digits.
  static const std::set<std::string_view> zero = {"BIF", "CLP", "DJF", "GNF", "ISK", "JPY",
                                                  "KMF", "KRW", "PYG", "RWF", "UGX", "UYI",
                                                  "VND", "VUV", "XAF", "XOF", "XPF"};
  static const std::set<std::string_view> three = {"BHD", "IQD", "JOD", "KWD", "LYD", "OMR", "TND"};
  static const std::set<std::string_view> four = {"CLF", "UYW"};
  if (zero.count(currency))
    return 0;
  if (three.count(currency))
    return 3;
  if (four.count(currency))
    return 4;
  return 2;
}

result<void> validate(const price_book& book, duration window_size) {
  auto invalid = [](std::string message) { return error{errc::invalid, std::move(message)}; };
  if (!is_currency_code(book.currency))
    return invalid("currency: \"" + book.currency + "\" is not an ISO 4217 code (e.g. \"USD\")");
  if (book.versions.empty())
    return invalid("versions: at least one version is required");
  std::set<std::string> names;
  for (size_t i = 0; i < book.versions.size(); ++i) {
    const price_book_version& v = book.versions[i];
    const std::string path = "versions[" + std::to_string(i) + "]";
    if (!names.insert(v.version).second)
      return invalid(path + ".version: \"" + v.version + "\" is already published in this book");
    if (!is_window_aligned(v.effective_from, window_size))
      return invalid(path + ".effective_from: not on a " + format_duration(window_size) +
                     " window boundary");
    if (v.effective_until) {
      if (!is_window_aligned(*v.effective_until, window_size))
        return invalid(path + ".effective_until: not on a " + format_duration(window_size) +
                       " window boundary");
      if (*v.effective_until <= v.effective_from)
        return invalid(path + ".effective_until: must be after effective_from");
    }
    for (const auto& [metric, model] : v.prices)
      if (auto r = validate(model); !r)
        return invalid(path + ".prices." + metric + "." + r.error_value().message);
  }
  return {};
}

} // namespace meterflow::pricing
