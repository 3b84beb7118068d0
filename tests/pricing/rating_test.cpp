#include "pricing/rating.hpp"

#include <algorithm>
#include <catch2/catch.hpp>
#include <random>

namespace p = meterflow::pricing;
using p::decimal;

namespace {

decimal d(const char* text) {
  return decimal::parse(text).value();
}
p::timestamp t(const char* text) {
  return p::parse_rfc3339(text).value();
}

decimal random_decimal(std::mt19937_64& rng, int max_int, int frac_digits) {
  decimal::rep units = static_cast<decimal::rep>(rng() % static_cast<std::uint64_t>(max_int));
  for (int i = 0; i < 12; ++i)
    units *= 10;
  decimal::rep frac = 0;
  for (int i = 0; i < 12; ++i)
    frac = frac * 10 + (i < frac_digits ? static_cast<decimal::rep>(rng() % 10) : 0);
  return decimal::from_units(units + frac).value();
}

p::price_model random_model(std::mt19937_64& rng) {
  p::price_model m;
  m.kind = static_cast<p::model_kind>(rng() % 4);
  m.unit_price = random_decimal(rng, 10, 6);
  m.package_size = random_decimal(rng, 500, 2) + d("0.01");
  m.package_price = random_decimal(rng, 50, 2);
  if (rng() % 3 == 0)
    m.free_units = random_decimal(rng, 200, 0);
  const int n = 1 + static_cast<int>(rng() % 5);
  decimal bound;
  for (int i = 0; i < n; ++i) {
    p::tier tr;
    tr.unit_price = random_decimal(rng, 3, 7);
    tr.flat_fee = rng() % 2 ? random_decimal(rng, 20, 2) : decimal();
    if (i + 1 < n) {
      bound = bound + random_decimal(rng, 1000, 3) + d("1");
      tr.up_to = bound;
    }
    m.tiers.push_back(tr);
  }
  REQUIRE(p::validate(m));
  return m;
}

p::price_book book_with(const p::price_model& m, p::rounding_mode mode) {
  p::price_book b;
  b.id = "pb";
  b.currency = "USD";
  p::price_book_version v;
  v.version = "v1";
  v.effective_from = 0;
  v.rounding = mode;
  v.prices["m"] = m;
  b.versions.push_back(v);
  return b;
}

} // namespace

TEST_CASE("incremental charge explains the seed's tiered window", "[pricing][rating]") {
  p::price_model m;
  m.kind = p::model_kind::tiered;
  m.tiers = {{d("1000"), d("0.10"), d("0")}, {std::nullopt, d("0.08"), d("0")}};
  p::price_book b = book_with(m, p::rounding_mode::half_even);
  b.versions[0].version = "v2";
  b.versions[0].effective_from = t("2024-01-15T00:00:00Z");
  const auto c = p::rate_increment(b, b.versions[0], m, d("900"), d("1234")).value();
  CHECK(c.amount == d("28.72")); // 100 x 0.10 + 234 x 0.08
  CHECK(c.price_before == d("90"));
  CHECK(c.price_after == d("118.72"));
  CHECK(c.version == "v2");
  CHECK(c.effective_from == t("2024-01-15T00:00:00Z"));
  REQUIRE(c.tiers.size() == 2);
  CHECK(c.tiers[0].tier == 1);
  CHECK(c.tiers[0].units == d("100"));
  CHECK(c.tiers[0].amount == d("10"));
  CHECK(c.tiers[1].tier == 2);
  CHECK(c.tiers[1].units == d("234"));
  CHECK(c.tiers[1].amount == d("18.72"));
  CHECK(c.formula == "tiered pb/v2: P(1234) - P(900) = 118.72 - 90 = 28.72");
}

TEST_CASE("a volume increment can be negative when crossing into a cheaper tier",
          "[pricing][rating]") {
  p::price_model m;
  m.kind = p::model_kind::volume;
  m.tiers = {{d("1000"), d("0.10"), d("0")}, {std::nullopt, d("0.08"), d("0")}};
  p::price_book b = book_with(m, p::rounding_mode::half_even);
  const auto c = p::rate_increment(b, b.versions[0], m, d("1000"), d("1001")).value();
  CHECK(c.amount == d("-19.92")); // 80.08 - 100
}

TEST_CASE("price lookup reports why a window is unpriced", "[pricing][rating]") {
  p::price_model m;
  p::price_book b = book_with(m, p::rounding_mode::half_even);
  b.versions[0].effective_from = t("2024-01-01T00:00:00Z");
  CHECK(p::lookup_price(nullptr, "m", t("2024-01-02T00:00:00Z")).reason ==
        p::unpriced_reason::no_price_book);
  CHECK(p::lookup_price(&b, "m", t("2023-12-31T00:00:00Z")).reason ==
        p::unpriced_reason::no_version);
  CHECK(p::lookup_price(&b, "other", t("2024-01-02T00:00:00Z")).reason ==
        p::unpriced_reason::no_price);
  const auto ok = p::lookup_price(&b, "m", t("2024-01-02T00:00:00Z"));
  CHECK(ok.reason == p::unpriced_reason::none);
  CHECK(ok.model == &b.versions[0].prices.at("m"));
}

TEST_CASE("property: incremental charges over any split sum to the period price",
          "[pricing][rating][property]") {
  std::mt19937_64 rng(20240115);
  for (int trial = 0; trial < 2000; ++trial) {
    const p::price_model m = random_model(rng);
    const auto mode = rng() % 2 ? p::rounding_mode::half_up : p::rounding_mode::half_even;
    const p::price_book b = book_with(m, mode);
    // A random period quantity split into random windows (some of them empty).
    const int windows = 1 + static_cast<int>(rng() % 40);
    std::vector<decimal> quantities;
    decimal total;
    for (int w = 0; w < windows; ++w) {
      quantities.push_back(rng() % 5 == 0 ? decimal() : random_decimal(rng, 300, rng() % 4));
      total += quantities.back();
    }
    decimal cumulative, charged;
    for (const decimal& q : quantities) {
      const auto c = p::rate_increment(b, b.versions[0], m, cumulative, cumulative + q).value();
      charged += c.amount;
      cumulative += q;
    }
    const decimal expected = p::price(m, total, mode).value().amount;
    INFO("trial " << trial << " model " << p::to_string(m.kind) << " Q=" << total.to_string());
    REQUIRE(charged == expected);
    // The same windows in another order still sum to P(Q).
    std::shuffle(quantities.begin(), quantities.end(), rng);
    cumulative = charged = decimal();
    for (const decimal& q : quantities) {
      charged += p::rate_increment(b, b.versions[0], m, cumulative, cumulative + q)->amount;
      cumulative += q;
    }
    REQUIRE(charged == expected);
  }
}

TEST_CASE("property: graduated price is monotone and tier lines add up",
          "[pricing][rating][property]") {
  std::mt19937_64 rng(99);
  for (int trial = 0; trial < 1000; ++trial) {
    p::price_model m = random_model(rng);
    m.kind = p::model_kind::tiered;
    const decimal a = random_decimal(rng, 5000, 2);
    const decimal b = a + random_decimal(rng, 5000, 2);
    const auto pa = p::price(m, a, p::rounding_mode::half_even).value();
    const auto pb = p::price(m, b, p::rounding_mode::half_even).value();
    REQUIRE(pa.amount <= pb.amount);
    decimal units, amount;
    for (const auto& l : pb.tiers) {
      units += l.units;
      amount += l.amount;
    }
    REQUIRE(units == pb.billable);
    REQUIRE(amount == pb.amount);
  }
}

TEST_CASE("money is formatted at the currency's minor unit", "[pricing][rating]") {
  CHECK(p::format_money(d("118.72"), "USD", p::rounding_mode::half_even) == "118.72");
  CHECK(p::format_money(d("98.725"), "USD", p::rounding_mode::half_even) == "98.72");
  CHECK(p::format_money(d("98.725"), "USD", p::rounding_mode::half_up) == "98.73");
  CHECK(p::format_money(d("1234.5"), "JPY", p::rounding_mode::half_even) == "1234");
  CHECK(p::format_money(d("1.0005"), "KWD", p::rounding_mode::half_up) == "1.001");
  CHECK(p::format_money(d("-0.001"), "USD", p::rounding_mode::half_even) == "0.00");
}
