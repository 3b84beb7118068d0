#include "pricing/rating.hpp"

#include <algorithm>
#include <vector>

namespace meterflow::pricing {

const char* to_string(unpriced_reason reason) {
  switch (reason) {
  case unpriced_reason::none:
    return "none";
  case unpriced_reason::no_price_book:
    return "no_price_book";
  case unpriced_reason::no_version:
    return "no_version";
  case unpriced_reason::no_price:
    return "no_price";
  }
  return "unknown";
}

price_lookup lookup_price(const price_book* book, const std::string& metric,
                          timestamp window_start) {
  price_lookup out;
  if (!book) {
    out.reason = unpriced_reason::no_price_book;
    return out;
  }
  out.version = book->version_at(window_start);
  if (!out.version) {
    out.reason = unpriced_reason::no_version;
    return out;
  }
  auto it = out.version->prices.find(metric);
  if (it == out.version->prices.end()) {
    out.reason = unpriced_reason::no_price;
    return out;
  }
  out.model = &it->second;
  return out;
}

result<charge_explanation> rate_increment(const price_book& book, const price_book_version& version,
                                          const price_model& model, decimal before, decimal after) {
  auto p_before = price(model, before, version.rounding);
  if (!p_before)
    return p_before.error_value();
  auto p_after = price(model, after, version.rounding);
  if (!p_after)
    return p_after.error_value();
  auto amount = decimal::sub(p_after->amount, p_before->amount);
  if (!amount)
    return amount.error_value();

  charge_explanation out;
  out.price_book_id = book.id;
  out.currency = book.currency;
  out.version = version.version;
  out.effective_from = version.effective_from;
  out.effective_until = version.effective_until;
  out.rounding = version.rounding;
  out.model = model.kind;
  out.cumulative_before = before;
  out.cumulative_after = after;
  out.price_before = p_before->amount;
  out.price_after = p_after->amount;
  out.amount = *amount;

  // Per tier, what this increment added: the tier's line after minus its line before. Models
  // have a few tiers, so a vector in tier order (this runs once per rated window).
  std::vector<tier_line> delta;
  const auto line_of = [&](const tier_line& l) -> tier_line& {
    auto it = std::lower_bound(delta.begin(), delta.end(), l.tier,
                               [](const tier_line& d, int tier) { return d.tier < tier; });
    if (it == delta.end() || it->tier != l.tier)
      it = delta.insert(it, tier_line{l.tier, {}, l.unit_price, {}, {}});
    return *it;
  };
  for (const tier_line& l : p_after->tiers)
    line_of(l) = l;
  for (const tier_line& l : p_before->tiers) {
    tier_line& d = line_of(l);
    d.units -= l.units;
    d.flat_fee -= l.flat_fee;
    d.amount -= l.amount;
  }
  for (tier_line& l : delta)
    if (!l.units.is_zero() || !l.amount.is_zero())
      out.tiers.push_back(std::move(l));

  std::string& f = out.formula;
  f.reserve(96);
  f += to_string(model.kind);
  f += ' ';
  f += book.id;
  f += '/';
  f += version.version;
  f += ": P(";
  f += after.to_string();
  f += ") - P(";
  f += before.to_string();
  f += ") = ";
  f += out.price_after.to_string();
  f += " - ";
  f += out.price_before.to_string();
  f += " = ";
  f += out.amount.to_string();
  return out;
}

std::string format_money(decimal amount, const std::string& currency, rounding_mode mode) {
  return amount.to_fixed(currency_minor_units(currency), mode);
}

} // namespace meterflow::pricing
