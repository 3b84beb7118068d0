#include "pricing/price_model.hpp"

#include <catch2/catch.hpp>

namespace p = meterflow::pricing;
using p::decimal;

namespace {

decimal d(const char* text) {
  return decimal::parse(text).value();
}

p::price_model flat(const char* unit_price) {
  p::price_model m;
  m.kind = p::model_kind::flat;
  m.unit_price = d(unit_price);
  return m;
}

p::price_model tiers(p::model_kind kind,
                     std::vector<std::tuple<const char*, const char*, const char*>> rows) {
  p::price_model m;
  m.kind = kind;
  for (auto& [up_to, price, fee] : rows)
    m.tiers.push_back(
        p::tier{up_to ? std::optional<decimal>(d(up_to)) : std::nullopt, d(price), d(fee)});
  return m;
}

std::string amount(const p::price_model& m, const char* q,
                   p::rounding_mode mode = p::rounding_mode::half_even) {
  return p::price(m, d(q), mode).value().amount.to_fixed(2, mode);
}

// Stripe's documented example tiers: 1-5 @ 7, 6-10 @ 6.5, 11+ @ 6.
p::price_model stripe(p::model_kind kind) {
  return tiers(kind, {{"5", "7", "0"}, {"10", "6.5", "0"}, {nullptr, "6", "0"}});
}

// The seed's v2 tiers: first 1,000 @ 0.10, the rest @ 0.08.
p::price_model seed(p::model_kind kind) {
  return tiers(kind, {{"1000", "0.10", "0"}, {nullptr, "0.08", "0"}});
}

} // namespace

TEST_CASE("seed worked example: 1,234 calls", "[pricing][price_model]") {
  CHECK(amount(flat("0.08"), "1234") == "98.72");
  CHECK(amount(seed(p::model_kind::tiered), "1234") == "118.72");
  CHECK(amount(seed(p::model_kind::volume), "1234") == "98.72");
  CHECK(amount(flat("0.02"), "10234") == "204.68");
}

TEST_CASE("tiered breakdown names each tier used", "[pricing][price_model]") {
  auto r = p::price(seed(p::model_kind::tiered), d("1234"), p::rounding_mode::half_even).value();
  REQUIRE(r.tiers.size() == 2);
  CHECK(r.tiers[0].tier == 1);
  CHECK(r.tiers[0].units == d("1000"));
  CHECK(r.tiers[0].amount == d("100"));
  CHECK(r.tiers[1].tier == 2);
  CHECK(r.tiers[1].units == d("234"));
  CHECK(r.tiers[1].amount == d("18.72"));
}

TEST_CASE("Stripe's documented volume and graduated tiers", "[pricing][price_model]") {
  struct row {
    const char* q;
    const char* expected;
  };
  const row volume[] = {
      {"1", "7.00"}, {"5", "35.00"}, {"6", "39.00"}, {"20", "120.00"}, {"25", "150.00"}};
  for (const auto& r : volume) {
    INFO("volume " << r.q);
    CHECK(amount(stripe(p::model_kind::volume), r.q) == r.expected);
  }
  const row graduated[] = {
      {"6", "41.50"}, {"20", "127.50"}, {"25", "157.50"}, {"5", "35.00"}, {"10", "67.50"}};
  for (const auto& r : graduated) {
    INFO("graduated " << r.q);
    CHECK(amount(stripe(p::model_kind::tiered), r.q) == r.expected);
  }
}

TEST_CASE("flat fees, free units and zero quantities", "[pricing][price_model]") {
  // Graduated with a flat fee on tier 2: charged once q exceeds 1000.
  auto m = tiers(p::model_kind::tiered, {{"1000", "0.10", "5"}, {nullptr, "0.08", "20"}});
  CHECK(amount(m, "0") == "0.00");
  CHECK(amount(m, "1") == "5.10");
  CHECK(amount(m, "1000") == "105.00");
  CHECK(amount(m, "1001") == "125.08");
  // Volume: the fee of the tier containing q.
  auto v = tiers(p::model_kind::volume, {{"1000", "0.10", "5"}, {nullptr, "0.08", "20"}});
  CHECK(amount(v, "0") == "0.00");
  CHECK(amount(v, "1000") == "105.00");
  CHECK(amount(v, "1001") == "100.08");
  CHECK(amount(v, "-3") == "0.00");
  // Free units come off first.
  auto f = flat("0.10");
  f.free_units = d("100");
  CHECK(amount(f, "50") == "0.00");
  CHECK(amount(f, "150") == "5.00");
  // A flat meter over negative values prices the negative quantity.
  CHECK(amount(flat("0.10"), "-20") == "-2.00");
}

TEST_CASE("package pricing rounds packages up", "[pricing][price_model]") {
  p::price_model m;
  m.kind = p::model_kind::package;
  m.package_size = d("100");
  m.package_price = d("5.00");
  CHECK(amount(m, "0") == "0.00");
  CHECK(amount(m, "1") == "5.00");
  CHECK(amount(m, "100") == "5.00");
  CHECK(amount(m, "101") == "10.00");
  CHECK(amount(m, "250") == "15.00");
  m.free_units = d("50");
  CHECK(amount(m, "50") == "0.00");
  CHECK(amount(m, "150") == "5.00");
  CHECK(amount(m, "151") == "10.00");
  auto r = p::price(m, d("151"), p::rounding_mode::half_even).value();
  CHECK(r.packages == d("2"));
  CHECK(r.billable == d("101"));
}

TEST_CASE("products round to 12 digits with the version's mode", "[pricing][price_model]") {
  // 0.5 units at 0.000000000001 = 5e-13 exactly: the half.
  auto m = flat("0.000000000001");
  CHECK(p::price(m, d("0.5"), p::rounding_mode::half_even).value().amount.is_zero());
  CHECK(p::price(m, d("0.5"), p::rounding_mode::half_up).value().amount == d("0.000000000001"));
}

TEST_CASE("model validation names the field", "[pricing][price_model]") {
  auto message = [](const p::price_model& m) { return p::validate(m).error_value().message; };
  CHECK(p::validate(seed(p::model_kind::tiered)));
  CHECK(message(flat("-0.01")) == "unit_price: must not be negative");
  CHECK(message(tiers(p::model_kind::tiered,
                      {{"100", "1", "0"}, {"50", "1", "0"}, {nullptr, "1", "0"}})) ==
        "tiers[1].up_to: must be greater than tiers[0].up_to (100)");
  CHECK(message(tiers(p::model_kind::volume, {{nullptr, "1", "0"}, {nullptr, "1", "0"}})) ==
        "tiers[0].up_to: only the last tier may be open-ended (null)");
  CHECK(message(tiers(p::model_kind::volume, {{"10", "1", "0"}})) ==
        "tiers[0].up_to: the last tier must be open-ended (null)");
  CHECK(message(tiers(p::model_kind::tiered, {{"10", "1", "-1"}, {nullptr, "1", "0"}})) ==
        "tiers[0].flat_fee: must not be negative");
  CHECK(message(tiers(p::model_kind::tiered, {})) == "tiers: at least one tier is required");
  p::price_model pkg;
  pkg.kind = p::model_kind::package;
  CHECK(message(pkg) == "package_size: must be positive");
  auto free = flat("1");
  free.free_units = d("-1");
  CHECK(message(free) == "free_units: must not be negative");
}
