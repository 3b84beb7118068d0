#include "pricing/price_model.hpp"

namespace meterflow::pricing {

namespace {

error invalid(std::string message) {
  return error{errc::invalid, std::move(message)};
}

std::string tier_path(size_t i) {
  return "tiers[" + std::to_string(i) + "]";
}

result<void> non_negative(decimal value, const std::string& path) {
  if (value.is_negative())
    return invalid(path + ": must not be negative");
  return {};
}

} // namespace

const char* to_string(model_kind kind) {
  switch (kind) {
  case model_kind::flat:
    return "flat";
  case model_kind::tiered:
    return "tiered";
  case model_kind::volume:
    return "volume";
  case model_kind::package:
    return "package";
  }
  return "unknown";
}

result<model_kind> parse_model_kind(std::string_view text) {
  if (text == "flat")
    return model_kind::flat;
  if (text == "tiered")
    return model_kind::tiered;
  if (text == "volume")
    return model_kind::volume;
  if (text == "package")
    return model_kind::package;
  return error{errc::bad_syntax, "unknown price model \"" + std::string(text) +
                                     "\" (expected flat, tiered, volume or package)"};
}

result<void> validate(const price_model& model) {
  if (auto r = non_negative(model.free_units, "free_units"); !r)
    return r;
  switch (model.kind) {
  case model_kind::flat:
    return non_negative(model.unit_price, "unit_price");
  case model_kind::package:
    if (model.package_size <= decimal())
      return invalid("package_size: must be positive");
    return non_negative(model.package_price, "package_price");
  case model_kind::tiered:
  case model_kind::volume:
    break;
  }
  if (model.tiers.empty())
    return invalid("tiers: at least one tier is required");
  for (size_t i = 0; i < model.tiers.size(); ++i) {
    const tier& t = model.tiers[i];
    const bool last = i + 1 == model.tiers.size();
    if (auto r = non_negative(t.unit_price, tier_path(i) + ".unit_price"); !r)
      return r;
    if (auto r = non_negative(t.flat_fee, tier_path(i) + ".flat_fee"); !r)
      return r;
    if (!t.up_to && !last)
      return invalid(tier_path(i) + ".up_to: only the last tier may be open-ended (null)");
    if (t.up_to && last)
      return invalid(tier_path(i) + ".up_to: the last tier must be open-ended (null)");
    if (t.up_to && i == 0 && *t.up_to <= decimal())
      return invalid(tier_path(i) + ".up_to: must be positive");
    if (t.up_to && i > 0 && *t.up_to <= *model.tiers[i - 1].up_to)
      return invalid(tier_path(i) + ".up_to: must be greater than " + tier_path(i - 1) +
                     ".up_to (" + model.tiers[i - 1].up_to->to_string() + ")");
  }
  return {};
}

result<price_breakdown> price(const price_model& model, decimal quantity, rounding_mode mode) {
  price_breakdown out;
  out.quantity = quantity;
  // Free units come off the top of a positive quantity; a negative quantity (a flat meter over
  // negative values) is priced as it is.
  if (quantity > model.free_units) {
    auto b = decimal::sub(quantity, model.free_units);
    if (!b)
      return b.error_value();
    out.billable = *b;
  } else if (quantity.is_negative() && model.kind == model_kind::flat) {
    out.billable = quantity;
  }
  auto line = [&](int tier_no, decimal units, decimal unit_price,
                  decimal flat_fee) -> result<tier_line> {
    auto product = decimal::mul(units, unit_price, mode);
    if (!product)
      return product.error_value();
    auto amount = decimal::add(*product, flat_fee);
    if (!amount)
      return amount.error_value();
    return tier_line{tier_no, units, unit_price, flat_fee, *amount};
  };
  auto add_line = [&](result<tier_line> l) -> result<void> {
    if (!l)
      return l.error_value();
    auto total = decimal::add(out.amount, l->amount);
    if (!total)
      return total.error_value();
    out.amount = *total;
    out.tiers.push_back(*l);
    return {};
  };

  switch (model.kind) {
  case model_kind::flat: {
    if (auto r = add_line(line(1, out.billable, model.unit_price, decimal())); !r)
      return r.error_value();
    break;
  }
  case model_kind::tiered: {
    decimal lower;
    for (size_t i = 0; i < model.tiers.size() && out.billable > lower; ++i) {
      const tier& t = model.tiers[i];
      const decimal upper = t.up_to && *t.up_to < out.billable ? *t.up_to : out.billable;
      if (auto r = add_line(line(static_cast<int>(i + 1), upper - lower, t.unit_price, t.flat_fee));
          !r)
        return r.error_value();
      if (!t.up_to)
        break;
      lower = *t.up_to;
    }
    break;
  }
  case model_kind::volume: {
    if (out.billable <= decimal())
      break;
    size_t i = 0;
    while (i + 1 < model.tiers.size() && model.tiers[i].up_to &&
           out.billable > *model.tiers[i].up_to)
      ++i;
    const tier& t = model.tiers[i];
    if (auto r = add_line(line(static_cast<int>(i + 1), out.billable, t.unit_price, t.flat_fee));
        !r)
      return r.error_value();
    break;
  }
  case model_kind::package: {
    if (out.billable <= decimal())
      break;
    auto packages = decimal::packages(out.billable, model.package_size);
    if (!packages)
      return packages.error_value();
    out.packages = *packages;
    if (auto r = add_line(line(1, *packages, model.package_price, decimal())); !r)
      return r.error_value();
    break;
  }
  }
  return out;
}

} // namespace meterflow::pricing
