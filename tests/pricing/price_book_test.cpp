#include "pricing/price_book.hpp"

#include <catch2/catch.hpp>

namespace p = meterflow::pricing;

namespace {

p::timestamp t(const char* text) {
  return p::parse_rfc3339(text).value();
}
constexpr p::duration hour = 3600 * p::microseconds_per_second;

p::price_book_version version(const char* name, const char* from, const char* until,
                              const char* unit_price) {
  p::price_book_version v;
  v.version = name;
  v.effective_from = t(from);
  if (until)
    v.effective_until = t(until);
  p::price_model m;
  m.unit_price = p::decimal::parse(unit_price).value();
  v.prices["api_calls"] = m;
  return v;
}

// The seed's book: v1 $0.10 from Jan 1, v2 $0.08 from Jan 15, v3 $0.12 from Feb 1.
p::price_book seed_book() {
  p::price_book b;
  b.id = "pb_std";
  b.currency = "USD";
  b.versions = {version("v1", "2024-01-01T00:00:00Z", "2024-01-15T00:00:00Z", "0.10"),
                version("v2", "2024-01-15T00:00:00Z", "2024-02-01T00:00:00Z", "0.08"),
                version("v3", "2024-02-01T00:00:00Z", nullptr, "0.12")};
  return b;
}

} // namespace

TEST_CASE("seed version selection on 01-01, 01-15 and 02-01", "[pricing][price_book]") {
  const p::price_book b = seed_book();
  CHECK(b.version_at(t("2024-01-01T00:00:00Z"))->version == "v1");
  CHECK(b.version_at(t("2024-01-14T23:00:00Z"))->version == "v1");
  CHECK(b.version_at(t("2024-01-15T00:00:00Z"))->version == "v2");
  CHECK(b.version_at(t("2024-01-31T23:00:00Z"))->version == "v2");
  CHECK(b.version_at(t("2024-02-01T00:00:00Z"))->version == "v3");
  CHECK(b.version_at(t("2030-06-01T00:00:00Z"))->version == "v3");
  CHECK(b.version_at(t("2023-12-31T23:00:00Z")) == nullptr);
}

TEST_CASE("the last-published version covering the window wins", "[pricing][price_book]") {
  p::price_book b = seed_book();
  // A correction of January 15-31 published after v3.
  b.versions.push_back(version("v2-fix", "2024-01-15T00:00:00Z", "2024-02-01T00:00:00Z", "0.07"));
  CHECK(b.version_at(t("2024-01-20T00:00:00Z"))->version == "v2-fix");
  CHECK(b.version_at(t("2024-01-10T00:00:00Z"))->version == "v1");
  CHECK(b.version_at(t("2024-02-10T00:00:00Z"))->version == "v3");
  // An open-ended version published last shadows everything after its start.
  b.versions.push_back(version("v4", "2024-01-20T00:00:00Z", nullptr, "0.05"));
  CHECK(b.version_at(t("2024-01-19T23:00:00Z"))->version == "v2-fix");
  CHECK(b.version_at(t("2024-01-20T00:00:00Z"))->version == "v4");
  CHECK(b.version_at(t("2024-03-01T00:00:00Z"))->version == "v4");
}

TEST_CASE("price book validation", "[pricing][price_book]") {
  auto message = [](const p::price_book& b, p::duration window) {
    auto r = p::validate(b, window);
    return r ? std::string("ok") : r.error_value().message;
  };
  CHECK(message(seed_book(), hour) == "ok");
  p::price_book b = seed_book();
  b.versions[1].effective_from = t("2024-01-15T00:30:00Z");
  CHECK(message(b, hour) == "versions[1].effective_from: not on a 1h window boundary");
  CHECK(message(seed_book(), 15 * 60 * p::microseconds_per_second) == "ok");
  b = seed_book();
  b.versions[0].effective_until = t("2024-01-15T00:00:01Z");
  CHECK(message(b, hour) == "versions[0].effective_until: not on a 1h window boundary");
  b = seed_book();
  b.versions[0].effective_until = t("2024-01-01T00:00:00Z");
  CHECK(message(b, hour) == "versions[0].effective_until: must be after effective_from");
  b = seed_book();
  b.versions[2].version = "v1";
  CHECK(message(b, hour) == "versions[2].version: \"v1\" is already published in this book");
  b = seed_book();
  b.currency = "usd";
  CHECK(message(b, hour) == "currency: \"usd\" is not an ISO 4217 code (e.g. \"USD\")");
  b = seed_book();
  b.versions[1].prices["api_calls"].unit_price = p::decimal::parse("-1").value();
  CHECK(message(b, hour) == "versions[1].prices.api_calls.unit_price: must not be negative");
  b.versions.clear();
  CHECK(message(b, hour) == "versions: at least one version is required");
}

TEST_CASE("currency minor units", "[pricing][price_book]") {
  CHECK(p::currency_minor_units("USD") == 2);
  CHECK(p::currency_minor_units("EUR") == 2);
  CHECK(p::currency_minor_units("JPY") == 0);
  CHECK(p::currency_minor_units("KRW") == 0);
  CHECK(p::currency_minor_units("BHD") == 3);
  CHECK(p::currency_minor_units("KWD") == 3);
}
