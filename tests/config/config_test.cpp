#include "config/config.hpp"

#include <catch2/catch.hpp>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

namespace config = meterflow::config;
namespace pricing = meterflow::pricing;
using Catch::Matchers::StartsWith;
using nlohmann::json;

namespace {

// SEMANTICS §9 with the price book of §5.1.
json seed() {
  return json::parse(R"({
    "window": {"size": "1h", "allowed_lateness": "1h"},
    "corrections": {"interval": "1d"},
    "watermark": {"max_out_of_orderness": "1m", "idle_timeout": "30s"},
    "meters": [
      {"metric": "api_calls", "event_type": "api_call", "aggregation": "count"},
      {"metric": "gb_stored", "event_type": "storage", "aggregation": "sum"}
    ],
    "price_books": [
      {"id": "pb_std", "currency": "USD", "versions": [
        {"version": "v1", "effective_from": "2024-01-01T00:00:00Z",
         "effective_until": "2024-01-15T00:00:00Z", "rounding": "half_even",
         "prices": {"api_calls": {"model": "flat", "unit_price": "0.10"}}},
        {"version": "v2", "effective_from": "2024-01-15T00:00:00Z",
         "effective_until": "2024-02-01T00:00:00Z",
         "prices": {"api_calls": {"model": "tiered", "tiers": [
           {"up_to": "1000", "unit_price": "0.10"},
           {"up_to": null, "unit_price": "0.08", "flat_fee": "0"}]}}}
      ]}
    ],
    "default_price_book": "pb_std",
    "customers": [
      {"customer_id": "c1", "price_book": "pb_std",
       "credits": [{"period": "2024-01", "amount": "10.00", "reason": "goodwill"}]}
    ]
  })");
}

config::configuration parse(const json& j) {
  return config::parse(j.dump());
}

pricing::decimal dec(const char* text) {
  return pricing::decimal::parse(text).value();
}

constexpr pricing::timestamp jan_1 = 1'704'067'200'000'000;  // 2024-01-01T00:00:00Z
constexpr pricing::timestamp jan_15 = 1'705'276'800'000'000; // 2024-01-15T00:00:00Z
constexpr pricing::timestamp feb_1 = 1'706'745'600'000'000;  // 2024-02-01T00:00:00Z

} // namespace

TEST_CASE("the seed configuration parses into typed values", "[config]") {
  auto c = parse(seed());

  CHECK(c.window_size == 3'600'000'000);
  CHECK(c.allowed_lateness == 3'600'000'000);
  CHECK(c.correction_interval == 86'400'000'000);
  CHECK(c.max_out_of_orderness == 60'000'000);
  CHECK(c.idle_timeout == 30'000'000);

  REQUIRE(c.meters.size() == 2);
  CHECK(c.meters[0].metric == "api_calls");
  CHECK(c.meters[0].event_type == "api_call");
  CHECK(c.meters[0].kind == config::aggregation::count);
  CHECK_FALSE(c.meters[0].field);
  CHECK(c.meters[1].metric == "gb_stored");
  CHECK(c.meters[1].kind == config::aggregation::sum);

  REQUIRE(c.price_books.size() == 1);
  const auto& book = c.price_books[0];
  CHECK(book.id == "pb_std");
  CHECK(book.currency == "USD");
  REQUIRE(book.versions.size() == 2);

  const auto& v1 = book.versions[0];
  CHECK(v1.version == "v1");
  CHECK(v1.effective_from == jan_1);
  CHECK(v1.effective_until == jan_15);
  CHECK(v1.rounding == pricing::rounding_mode::half_even);
  REQUIRE(v1.prices.size() == 1);
  const auto& flat = v1.prices.at("api_calls");
  CHECK(flat.kind == pricing::model_kind::flat);
  CHECK(flat.unit_price == dec("0.10"));
  CHECK(flat.free_units.is_zero());

  const auto& v2 = book.versions[1];
  CHECK(v2.version == "v2");
  CHECK(v2.effective_from == jan_15);
  CHECK(v2.effective_until == feb_1);
  CHECK(v2.rounding == pricing::rounding_mode::half_even); // the default
  const auto& tiered = v2.prices.at("api_calls");
  CHECK(tiered.kind == pricing::model_kind::tiered);
  REQUIRE(tiered.tiers.size() == 2);
  CHECK(tiered.tiers[0].up_to == dec("1000"));
  CHECK(tiered.tiers[0].unit_price == dec("0.10"));
  CHECK(tiered.tiers[0].flat_fee.is_zero());
  CHECK_FALSE(tiered.tiers[1].up_to); // open-ended last tier
  CHECK(tiered.tiers[1].unit_price == dec("0.08"));
  CHECK(tiered.tiers[1].flat_fee.is_zero());

  CHECK(c.default_price_book == "pb_std");
  REQUIRE(c.customers.size() == 1);
  const auto& c1 = c.customers[0];
  CHECK(c1.customer_id == "c1");
  CHECK(c1.price_book == "pb_std");
  REQUIRE(c1.credits.size() == 1);
  CHECK(c1.credits[0].period.year == 2024);
  CHECK(c1.credits[0].period.month == 1);
  CHECK(c1.credits[0].period.start == jan_1);
  CHECK(c1.credits[0].period.end == feb_1);
  CHECK(c1.credits[0].amount == dec("10.00"));
  CHECK(c1.credits[0].reason == "goodwill");
}

TEST_CASE("absent optional sections take their defaults", "[config]") {
  auto c = config::parse(R"({"meters":[{"metric":"api_calls","event_type":"api_call",
                                        "aggregation":"count"}],
                             "price_books":[]})");
  CHECK(c.window_size == 3'600'000'000);
  CHECK(c.allowed_lateness == 3'600'000'000);
  CHECK(c.correction_interval == 86'400'000'000);
  CHECK(c.max_out_of_orderness == 60'000'000);
  CHECK(c.idle_timeout == 30'000'000);
  CHECK(c.price_books.empty());
  CHECK_FALSE(c.default_price_book);
  CHECK(c.customers.empty());
  CHECK(c.price_book_for("c1") == nullptr);
}

TEST_CASE("null means absent for optional fields", "[config]") {
  auto j = seed();
  j["default_price_book"] = nullptr;
  j["customers"][0]["price_book"] = nullptr;
  j["price_books"][0]["versions"][0]["rounding"] = nullptr;
  j["price_books"][0]["versions"][1]["effective_until"] = nullptr;
  auto c = parse(j);
  CHECK_FALSE(c.default_price_book);
  CHECK_FALSE(c.customers[0].price_book);
  CHECK(c.price_books[0].versions[0].rounding == pricing::rounding_mode::half_even);
  CHECK_FALSE(c.price_books[0].versions[1].effective_until); // open-ended
}

TEST_CASE("every meter and model kind parses", "[config]") {
  auto j = seed();
  j["window"] = {{"size", "15m"}, {"allowed_lateness", "0s"}};
  j["watermark"] = {{"max_out_of_orderness", "0s"}, {"idle_timeout", "0s"}};
  j["corrections"] = {{"interval", "90s"}};
  j["meters"].push_back(
      {{"metric", "seats"}, {"event_type", "seat"}, {"aggregation", "max"}, {"field", "n"}});
  j["meters"].push_back({{"metric", "users"},
                         {"event_type", "login"},
                         {"aggregation", "unique_count"},
                         {"field", "user_id"}});
  j["meters"].push_back({{"metric", "plan"}, {"event_type", "plan"}, {"aggregation", "latest"}});
  j["price_books"].push_back(json::parse(R"(
    {"id": "pb_eur", "currency": "EUR", "versions": [
      {"version": "2024", "effective_from": "2024-01-01T00:15:00Z", "rounding": "half_up",
       "prices": {
         "api_calls": {"model": "volume", "free_units": "100", "tiers": [
           {"up_to": 1000, "unit_price": "0.10", "flat_fee": "5"},
           {"unit_price": "0.08"}]},
         "gb_stored": {"model": "package", "package_size": 100, "package_price": "5.00"},
         "seats": {"model": "flat", "unit_price": 3},
         "users": {"model": "flat", "unit_price": "0.000000000001"}}}]})"));
  j["customers"].push_back({{"customer_id", "c2"}});

  auto c = parse(j);
  CHECK(c.window_size == 900'000'000);
  CHECK(c.allowed_lateness == 0);
  CHECK(c.max_out_of_orderness == 0);
  CHECK(c.idle_timeout == 0);
  CHECK(c.correction_interval == 90'000'000);

  REQUIRE(c.meters.size() == 5);
  CHECK(c.meters[2].kind == config::aggregation::max);
  CHECK(c.meters[2].field == "n");
  CHECK(c.meters[3].kind == config::aggregation::unique_count);
  CHECK(c.meters[3].field == "user_id");
  CHECK(c.meters[4].kind == config::aggregation::latest);
  CHECK_FALSE(c.meters[4].field);

  const auto& v = c.price_books[1].versions[0];
  CHECK(v.effective_from == jan_1 + 900'000'000);
  CHECK_FALSE(v.effective_until);
  CHECK(v.rounding == pricing::rounding_mode::half_up);
  const auto& volume = v.prices.at("api_calls");
  CHECK(volume.kind == pricing::model_kind::volume);
  CHECK(volume.free_units == dec("100"));
  REQUIRE(volume.tiers.size() == 2);
  CHECK(volume.tiers[0].up_to == dec("1000"));
  CHECK(volume.tiers[0].flat_fee == dec("5"));
  CHECK_FALSE(volume.tiers[1].up_to);
  const auto& package = v.prices.at("gb_stored");
  CHECK(package.kind == pricing::model_kind::package);
  CHECK(package.package_size == dec("100"));
  CHECK(package.package_price == dec("5.00"));
  CHECK(v.prices.at("seats").unit_price == dec("3"));
  CHECK(v.prices.at("users").unit_price == dec("0.000000000001"));

  CHECK(c.customers[1].customer_id == "c2");
  CHECK_FALSE(c.customers[1].price_book);
  CHECK(c.customers[1].credits.empty());
}

TEST_CASE("lookups find meters, books and customers", "[config]") {
  auto j = seed();
  j["price_books"].push_back(json::parse(R"(
    {"id": "pb_eur", "currency": "EUR", "versions": [
      {"version": "v1", "effective_from": "2024-01-01T00:00:00Z", "prices": {}}]})"));
  j["default_price_book"] = "pb_eur";
  j["customers"].push_back({{"customer_id", "c2"}});
  auto c = parse(j);

  REQUIRE(c.find_meter("gb_stored") != nullptr);
  CHECK(c.find_meter("gb_stored")->event_type == "storage");
  CHECK(c.find_meter("cpu_hours") == nullptr);
  REQUIRE(c.find_price_book("pb_eur") != nullptr);
  CHECK(c.find_price_book("pb_eur")->currency == "EUR");
  CHECK(c.find_price_book("pb_x") == nullptr);
  REQUIRE(c.find_customer("c1") != nullptr);
  CHECK(c.find_customer("c1")->credits.size() == 1);
  CHECK(c.find_customer("c9") == nullptr);

  CHECK(c.price_book_for("c1")->id == "pb_std"); // its own book
  CHECK(c.price_book_for("c2")->id == "pb_eur"); // configured, no book: the default
  CHECK(c.price_book_for("c9")->id == "pb_eur"); // not configured: the default
  j["default_price_book"] = nullptr;
  auto without_default = parse(j);
  CHECK(without_default.price_book_for("c1")->id == "pb_std");
  CHECK(without_default.price_book_for("c2") == nullptr);
  CHECK(without_default.price_book_for("c9") == nullptr);
}

TEST_CASE("aggregation names and additivity", "[config]") {
  using config::aggregation;
  CHECK(std::string(config::to_string(aggregation::count)) == "count");
  CHECK(std::string(config::to_string(aggregation::sum)) == "sum");
  CHECK(std::string(config::to_string(aggregation::max)) == "max");
  CHECK(std::string(config::to_string(aggregation::unique_count)) == "unique_count");
  CHECK(std::string(config::to_string(aggregation::latest)) == "latest");
  CHECK(config::is_additive(aggregation::count));
  CHECK(config::is_additive(aggregation::sum));
  CHECK_FALSE(config::is_additive(aggregation::max));
  CHECK_FALSE(config::is_additive(aggregation::unique_count));
  CHECK_FALSE(config::is_additive(aggregation::latest));
}

TEST_CASE("malformed JSON is reported with its byte offset", "[config]") {
  REQUIRE_THROWS_WITH(config::parse(R"({"meters": [})"),
                      StartsWith("config: invalid JSON at byte 13: syntax error"));
  REQUIRE_THROWS_WITH(config::parse(""), StartsWith("config: invalid JSON at byte 1: "));
  REQUIRE_THROWS_WITH(config::parse("{} x"), StartsWith("config: invalid JSON at byte 4: "));
  REQUIRE_THROWS_WITH(config::parse("{\"x\": \"\xff\"}"),
                      "config: invalid JSON at byte 8: syntax error while parsing value - invalid "
                      "string: ill-formed UTF-8 byte; last read: '\"?'");
  REQUIRE_THROWS_WITH(config::parse("[]"), "config: expected a JSON object at the top level");
  REQUIRE_THROWS_WITH(config::parse(R"({"window": {"size": "1h", "size": "2h"}})"),
                      "window.size: duplicate key");
  REQUIRE_THROWS_WITH(
      config::parse(R"({"meters": [{"metric": "a"}, {"metric": "b", "metric": "c"}]})"),
      "meters[1].metric: duplicate key");
}

TEST_CASE("load_file reads a file and names an unreadable one", "[config]") {
  auto path = std::filesystem::temp_directory_path() / "meterflow_config_test.json";
  {
    std::ofstream out(path);
    out << seed().dump(2);
  }
  auto c = config::load_file(path.string());
  std::filesystem::remove(path);
  CHECK(c.meters.size() == 2);
  CHECK(c.customers.size() == 1);

  REQUIRE_THROWS_WITH(config::load_file("/nonexistent/meterflow.json"),
                      "config: cannot read /nonexistent/meterflow.json: No such file or directory");
}

TEST_CASE("configuration errors name the field and the problem", "[config]") {
  auto j = seed();
  auto& meters = j["meters"];
  auto& book = j["price_books"][0];
  auto& v1 = book["versions"][0];
  auto& v2 = book["versions"][1];
  auto& customer = j["customers"][0];
  auto& credit = customer["credits"][0];

  SECTION("unknown keys") {
    j["window"]["sise"] = "1h";
    REQUIRE_THROWS_WITH(parse(j), "window.sise: unknown key");
  }
  SECTION("unknown top-level key") {
    j["meter"] = json::array();
    REQUIRE_THROWS_WITH(parse(j), "meter: unknown key");
  }
  SECTION("unknown key in a model") {
    v1["prices"]["api_calls"]["unit_prise"] = "0.10";
    REQUIRE_THROWS_WITH(parse(j), "price_books[0].versions[0].prices.api_calls.unit_prise: "
                                  "unknown key");
  }
  SECTION("unknown key with a non-identifier name is bracketed") {
    customer["credit s"] = json::array();
    REQUIRE_THROWS_WITH(parse(j), R"(customers[0]["credit s"]: unknown key)");
  }
  SECTION("a section of the wrong type") {
    j["window"] = "1h";
    REQUIRE_THROWS_WITH(parse(j), "window: expected an object");
  }
  SECTION("window size not a duration") {
    j["window"]["size"] = "1x";
    REQUIRE_THROWS_WITH(parse(j), R"(window.size: unknown duration unit "x" (expected us, ms, s, )"
                                  R"(m, h or d))");
  }
  SECTION("window size as a number") {
    j["window"]["size"] = 3600;
    REQUIRE_THROWS_WITH(parse(j), "window.size: expected a string");
  }
  SECTION("zero window size") {
    j["window"]["size"] = "0s";
    REQUIRE_THROWS_WITH(parse(j), "window.size: must be positive");
  }
  SECTION("window size that does not divide a day") {
    j["window"]["size"] = "7m";
    REQUIRE_THROWS_WITH(parse(j), "window.size: must divide one day exactly (7m does not)");
  }
  SECTION("window size over a day") {
    j["window"]["size"] = "2d";
    REQUIRE_THROWS_WITH(parse(j), "window.size: must divide one day exactly (2d does not)");
  }
  SECTION("bad lateness") {
    j["window"]["allowed_lateness"] = "-1h";
    REQUIRE_THROWS_WITH(parse(j), R"(window.allowed_lateness: not a duration (expected e.g. )"
                                  R"("90s", "5m", "1h", "1d"): "-1h")");
  }
  SECTION("zero correction interval") {
    j["corrections"]["interval"] = "0s";
    REQUIRE_THROWS_WITH(parse(j), "corrections.interval: must be positive");
  }
  SECTION("bad idle timeout") {
    j["watermark"]["idle_timeout"] = "soon";
    REQUIRE_THROWS_WITH(parse(j), R"(watermark.idle_timeout: not a duration (expected e.g. )"
                                  R"("90s", "5m", "1h", "1d"): "soon")");
  }
  SECTION("meters missing") {
    j.erase("meters");
    REQUIRE_THROWS_WITH(parse(j), "meters: missing");
  }
  SECTION("meters empty") {
    meters = json::array();
    REQUIRE_THROWS_WITH(parse(j), "meters: expected at least one meter");
  }
  SECTION("meters not an array") {
    meters = json::object();
    REQUIRE_THROWS_WITH(parse(j), "meters: expected an array");
  }
  SECTION("meter not an object") {
    meters[0] = "api_calls";
    REQUIRE_THROWS_WITH(parse(j), "meters[0]: expected an object");
  }
  SECTION("metric of the wrong type") {
    meters[0]["metric"] = 5;
    REQUIRE_THROWS_WITH(parse(j), "meters[0].metric: expected a string");
  }
  SECTION("missing event type") {
    meters[1].erase("event_type");
    REQUIRE_THROWS_WITH(parse(j), "meters[1].event_type: missing");
  }
  SECTION("null required field") {
    meters[1]["event_type"] = nullptr;
    REQUIRE_THROWS_WITH(parse(j), "meters[1].event_type: missing");
  }
  SECTION("empty metric") {
    meters[0]["metric"] = "";
    REQUIRE_THROWS_WITH(parse(j), "meters[0].metric: must not be empty");
  }
  SECTION("metric with a control character") {
    meters[0]["metric"] = "api\tcalls";
    REQUIRE_THROWS_WITH(parse(j), "meters[0].metric: must be printable ASCII");
  }
  SECTION("duplicate metric") {
    meters[1]["metric"] = "api_calls";
    REQUIRE_THROWS_WITH(parse(j), R"(meters[1].metric: duplicate metric "api_calls")");
  }
  SECTION("aggregation of the wrong type") {
    meters[0]["aggregation"] = json::array({"count"});
    REQUIRE_THROWS_WITH(parse(j), "meters[0].aggregation: expected a string");
  }
  SECTION("unknown aggregation") {
    meters[0]["aggregation"] = "avg";
    REQUIRE_THROWS_WITH(parse(j), R"(meters[0].aggregation: unknown aggregation "avg" )"
                                  "(expected count, sum, max, unique_count, latest)");
  }
  SECTION("field on a count meter") {
    meters[0]["field"] = "n";
    REQUIRE_THROWS_WITH(parse(j), "meters[0].field: not allowed on a count meter (it counts "
                                  "events)");
  }
  SECTION("unique_count without a field") {
    meters[1]["aggregation"] = "unique_count";
    REQUIRE_THROWS_WITH(parse(j), "meters[1].field: required for a unique_count meter");
  }
  SECTION("empty field") {
    meters[1]["field"] = "";
    REQUIRE_THROWS_WITH(parse(j), "meters[1].field: must not be empty");
  }
  SECTION("price books missing") {
    j.erase("price_books");
    REQUIRE_THROWS_WITH(parse(j), "price_books: missing");
  }
  SECTION("duplicate price book id") {
    json copy = book;
    j["price_books"].push_back(copy);
    REQUIRE_THROWS_WITH(parse(j), R"(price_books[1].id: duplicate price book id "pb_std")");
  }
  SECTION("bad currency") {
    book["currency"] = "usd";
    REQUIRE_THROWS_WITH(parse(j),
                        R"(price_books[0].currency: "usd" is not an ISO 4217 code (e.g. "USD"))");
  }
  SECTION("no versions") {
    book["versions"] = json::array();
    REQUIRE_THROWS_WITH(parse(j), "price_books[0].versions: at least one version is required");
  }
  SECTION("missing version name") {
    v2.erase("version");
    REQUIRE_THROWS_WITH(parse(j), "price_books[0].versions[1].version: missing");
  }
  SECTION("bad timestamp") {
    v1["effective_from"] = "2024-01-01";
    REQUIRE_THROWS_WITH(parse(j), R"(price_books[0].versions[0].effective_from: not an RFC 3339 )"
                                  R"(date-time: "2024-01-01")");
  }
  SECTION("timestamp before 1970") {
    v1["effective_from"] = "1969-12-31T00:00:00Z";
    REQUIRE_THROWS_WITH(parse(j), R"(price_books[0].versions[0].effective_from: outside )"
                                  R"(1970-9999 UTC: "1969-12-31T00:00:00Z")");
  }
  SECTION("until of the wrong type") {
    v1["effective_until"] = 5;
    REQUIRE_THROWS_WITH(parse(j), "price_books[0].versions[0].effective_until: expected a string");
  }
  SECTION("bound off a window boundary") {
    v2["effective_from"] = "2024-01-15T00:30:00Z";
    REQUIRE_THROWS_WITH(parse(j),
                        "price_books[0].versions[1].effective_from: not on a 1h window boundary");
  }
  SECTION("until off a window boundary") {
    v2["effective_until"] = "2024-02-01T00:00:01Z";
    REQUIRE_THROWS_WITH(parse(j),
                        "price_books[0].versions[1].effective_until: not on a 1h window boundary");
  }
  SECTION("until not after from") {
    v1["effective_until"] = "2024-01-01T00:00:00Z";
    REQUIRE_THROWS_WITH(parse(j),
                        "price_books[0].versions[0].effective_until: must be after effective_from");
  }
  SECTION("duplicate version name") {
    v2["version"] = "v1";
    REQUIRE_THROWS_WITH(parse(j), R"(price_books[0].versions[1].version: "v1" is already )"
                                  R"(published in this book)");
  }
  SECTION("open tier before the last") {
    v2["prices"]["api_calls"]["tiers"][0].erase("up_to");
    REQUIRE_THROWS_WITH(parse(j), "price_books[0].versions[1].prices.api_calls.tiers[0].up_to: "
                                  "only the last tier may be open-ended (null)");
  }
  SECTION("zero package size") {
    v1["prices"]["api_calls"] = {
        {"model", "package"}, {"package_size", "0"}, {"package_price", "5.00"}};
    REQUIRE_THROWS_WITH(parse(j), "price_books[0].versions[0].prices.api_calls.package_size: must "
                                  "be positive");
  }
  SECTION("unknown rounding mode") {
    v1["rounding"] = "half_down";
    REQUIRE_THROWS_WITH(parse(j), R"(price_books[0].versions[0].rounding: unknown rounding mode )"
                                  R"("half_down" (expected half_even or half_up))");
  }
  SECTION("prices missing") {
    v1.erase("prices");
    REQUIRE_THROWS_WITH(parse(j), "price_books[0].versions[0].prices: missing");
  }
  SECTION("price for a metric no meter defines") {
    v1["prices"]["cpu_hours"] = {{"model", "flat"}, {"unit_price", "1"}};
    REQUIRE_THROWS_WITH(parse(j), "price_books[0].versions[0].prices.cpu_hours: no meter defines "
                                  "this metric");
  }
  SECTION("unknown model") {
    v1["prices"]["api_calls"]["model"] = "linear";
    REQUIRE_THROWS_WITH(parse(j), R"(price_books[0].versions[0].prices.api_calls.model: unknown )"
                                  R"(price model "linear" (expected flat, tiered, volume or )"
                                  R"(package))");
  }
  SECTION("missing model") {
    v1["prices"]["api_calls"].erase("model");
    REQUIRE_THROWS_WITH(parse(j), "price_books[0].versions[0].prices.api_calls.model: missing");
  }
  SECTION("a field of another model") {
    v1["prices"]["api_calls"]["tiers"] = json::array();
    REQUIRE_THROWS_WITH(parse(j), "price_books[0].versions[0].prices.api_calls.tiers: not a field "
                                  "of a flat model");
  }
  SECTION("missing unit price") {
    v1["prices"]["api_calls"].erase("unit_price");
    REQUIRE_THROWS_WITH(parse(j),
                        "price_books[0].versions[0].prices.api_calls.unit_price: missing");
  }
  SECTION("decimal as a JSON float") {
    v1["prices"]["api_calls"]["unit_price"] = 0.1;
    REQUIRE_THROWS_WITH(parse(j), R"(price_books[0].versions[0].prices.api_calls.unit_price: )"
                                  R"(give decimals as strings ("0.10") to keep them exact)");
  }
  SECTION("decimal of the wrong type") {
    v1["prices"]["api_calls"]["unit_price"] = true;
    REQUIRE_THROWS_WITH(parse(j), "price_books[0].versions[0].prices.api_calls.unit_price: "
                                  "expected a decimal string");
  }
  SECTION("not a decimal") {
    v1["prices"]["api_calls"]["unit_price"] = "0,10";
    REQUIRE_THROWS_WITH(parse(j), R"(price_books[0].versions[0].prices.api_calls.unit_price: )"
                                  R"(not a decimal number: "0,10")");
  }
  SECTION("too many fractional digits") {
    v1["prices"]["api_calls"]["unit_price"] = "0.0000000000001";
    REQUIRE_THROWS_WITH(parse(j), R"(price_books[0].versions[0].prices.api_calls.unit_price: )"
                                  R"(more than 12 fractional digits: "0.0000000000001")");
  }
  SECTION("decimal of 10^26 or more") {
    v1["prices"]["api_calls"]["unit_price"] = "1e26";
    REQUIRE_THROWS_WITH(parse(j), R"(price_books[0].versions[0].prices.api_calls.unit_price: )"
                                  R"(magnitude reaches 10^26: "1e26")");
  }
  SECTION("negative price") {
    v1["prices"]["api_calls"]["unit_price"] = "-0.10";
    REQUIRE_THROWS_WITH(parse(j), "price_books[0].versions[0].prices.api_calls.unit_price: must "
                                  "not be negative");
  }
  SECTION("negative flat fee") {
    v2["prices"]["api_calls"]["tiers"][1]["flat_fee"] = "-1";
    REQUIRE_THROWS_WITH(parse(j), "price_books[0].versions[1].prices.api_calls.tiers[1].flat_fee: "
                                  "must not be negative");
  }
  SECTION("tiers out of order") {
    v2["prices"]["api_calls"]["tiers"] = json::parse(R"([{"up_to": "1000", "unit_price": "0.10"},
                        {"up_to": "500", "unit_price": "0.09"},
                        {"up_to": null, "unit_price": "0.08"}])");
    REQUIRE_THROWS_WITH(parse(j), "price_books[0].versions[1].prices.api_calls.tiers[1].up_to: "
                                  "must be greater than tiers[0].up_to (1000)");
  }
  SECTION("no tiers") {
    v2["prices"]["api_calls"]["tiers"] = json::array();
    REQUIRE_THROWS_WITH(parse(j), "price_books[0].versions[1].prices.api_calls.tiers: at least "
                                  "one tier is required");
  }
  SECTION("negative free units") {
    v1["prices"]["api_calls"]["free_units"] = "-5";
    REQUIRE_THROWS_WITH(parse(j), "price_books[0].versions[0].prices.api_calls.free_units: must "
                                  "not be negative");
  }
  SECTION("unknown default price book") {
    j["default_price_book"] = "pb_x";
    REQUIRE_THROWS_WITH(parse(j), R"(default_price_book: unknown price book "pb_x")");
  }
  SECTION("unknown customer price book") {
    customer["price_book"] = "pb_x";
    REQUIRE_THROWS_WITH(parse(j), R"(customers[0].price_book: unknown price book "pb_x")");
  }
  SECTION("duplicate customer") {
    j["customers"].push_back({{"customer_id", "c1"}});
    REQUIRE_THROWS_WITH(parse(j), R"(customers[1].customer_id: duplicate customer "c1")");
  }
  SECTION("customer id over 128 bytes") {
    customer["customer_id"] = std::string(129, 'c');
    REQUIRE_THROWS_WITH(parse(j), "customers[0].customer_id: longer than 128 bytes");
  }
  SECTION("negative credit") {
    credit["amount"] = "-10.00";
    REQUIRE_THROWS_WITH(parse(j), "customers[0].credits[0].amount: must not be negative");
  }
  SECTION("credit amount not a decimal") {
    credit["amount"] = "ten";
    REQUIRE_THROWS_WITH(parse(j), R"(customers[0].credits[0].amount: not a decimal number: )"
                                  R"("ten")");
  }
  SECTION("credit finer than the currency's minor unit") {
    credit["amount"] = "10.005";
    REQUIRE_THROWS_WITH(parse(j), "customers[0].credits[0].amount: more fractional digits than "
                                  "USD has (2)");
  }
  SECTION("credit period not YYYY-MM") {
    credit["period"] = "2024-1";
    REQUIRE_THROWS_WITH(parse(j), R"(customers[0].credits[0].period: not a billing period )"
                                  R"((expected YYYY-MM): "2024-1")");
  }
  SECTION("credit period with a bad month") {
    credit["period"] = "2024-13";
    REQUIRE_THROWS_WITH(parse(j), R"(customers[0].credits[0].period: not a billing period )"
                                  R"((expected YYYY-MM): "2024-13")");
  }
  SECTION("missing credit reason") {
    credit.erase("reason");
    REQUIRE_THROWS_WITH(parse(j), "customers[0].credits[0].reason: missing");
  }
  SECTION("empty credit reason") {
    credit["reason"] = "";
    REQUIRE_THROWS_WITH(parse(j), "customers[0].credits[0].reason: must not be empty");
  }
  SECTION("the first error in schema order wins") {
    j["window"]["size"] = "0s";
    meters[0]["aggregation"] = "avg";
    credit["reason"] = "";
    REQUIRE_THROWS_WITH(parse(j), "window.size: must be positive");
  }
}

TEST_CASE("a price book version published later parses against the configuration and its book",
          "[config]") {
  const config::configuration cfg = config::parse(seed().dump());
  const pricing::price_book& book = *cfg.find_price_book("pb_std");
  json v3 = {{"version", "v3"},
             {"effective_from", "2024-01-15T00:00:00Z"},
             {"rounding", "half_up"},
             {"prices", {{"api_calls", {{"model", "flat"}, {"unit_price", "0.07"}}}}}};
  const pricing::price_book_version parsed = config::parse_price_book_version(v3.dump(), cfg, book);
  CHECK(parsed.version == "v3");
  CHECK(parsed.effective_from == pricing::parse_rfc3339("2024-01-15T00:00:00Z").value());
  CHECK(!parsed.effective_until);
  CHECK(parsed.rounding == pricing::rounding_mode::half_up);
  CHECK(parsed.prices.count("api_calls") == 1);

  auto refused = [&](json version) {
    try {
      config::parse_price_book_version(version.dump(), cfg, book);
    } catch (const config::config_error& e) {
      return std::string(e.what());
    }
    return std::string("accepted");
  };
  json other = v3;
  other["prices"] = {{"calls", {{"model", "flat"}, {"unit_price", "0.07"}}}};
  CHECK_THAT(refused(other), StartsWith("version.prices.calls: no meter defines this metric"));
  other = v3;
  other["effective_from"] = "2024-01-15T00:30:00Z";
  CHECK_THAT(refused(other), StartsWith("versions[2].effective_from: not on a 1h window boundary"));
  other = v3;
  other["version"] = "v2";
  CHECK(refused(other) == "versions[2].version: \"v2\" is already published in this book");
  other = v3;
  other["unit"] = "x";
  CHECK_THAT(refused(other), StartsWith("version.unit"));
}

TEST_CASE("the http section: API keys and request limits", "[config]") {
  auto j = seed();
  CHECK(parse(j).http.api_keys.empty());
  CHECK(parse(j).http.max_body_bytes == 16 * 1024 * 1024);
  j["http"] = json::parse(R"({"api_keys":[{"name":"ingest","key":"0123456789abcdef"},
                                          {"name":"ops","key":"fedcba9876543210"}],
                              "max_body_bytes":1048576,"max_events_per_request":500,
                              "max_json_depth":8,"max_in_flight_events":5000,
                              "read_timeout":"2s"})");
  const auto http = parse(j).http;
  REQUIRE(http.api_keys.size() == 2);
  CHECK(http.api_keys[1].name == "ops");
  CHECK(http.api_keys[1].key == "fedcba9876543210");
  CHECK(http.max_body_bytes == 1'048'576);
  CHECK(http.max_events_per_request == 500);
  CHECK(http.max_json_depth == 8);
  CHECK(http.max_in_flight_events == 5000);
  CHECK(http.read_timeout == 2'000'000);

  SECTION("a short key") {
    j["http"]["api_keys"][0]["key"] = "short";
    REQUIRE_THROWS_WITH(parse(j), "http.api_keys[0].key: shorter than 16 bytes");
  }
  SECTION("a key with a space") {
    j["http"]["api_keys"][0]["key"] = "0123456789 abcdef";
    REQUIRE_THROWS_WITH(parse(j), "http.api_keys[0].key: must be printable ASCII without spaces");
  }
  SECTION("the same key twice, named without showing it") {
    j["http"]["api_keys"][1]["key"] = "0123456789abcdef";
    REQUIRE_THROWS_WITH(parse(j), R"(http.api_keys[1].key: the same key as "ingest")");
  }
  SECTION("a duplicate name") {
    j["http"]["api_keys"][1]["name"] = "ingest";
    REQUIRE_THROWS_WITH(parse(j), R"(http.api_keys[1].name: duplicate key name "ingest")");
  }
  SECTION("a limit that is not a positive integer") {
    j["http"]["max_body_bytes"] = 0;
    REQUIRE_THROWS_WITH(parse(j), "http.max_body_bytes: expected a positive integer");
    j["http"]["max_body_bytes"] = "1MB";
    REQUIRE_THROWS_WITH(parse(j), "http.max_body_bytes: expected a positive integer");
  }
  SECTION("a budget smaller than one request") {
    j["http"]["max_in_flight_events"] = 100;
    REQUIRE_THROWS_WITH(parse(j), StartsWith("http.max_in_flight_events: smaller than "
                                             "http.max_events_per_request"));
  }
  SECTION("depth below an array of objects") {
    j["http"]["max_json_depth"] = 1;
    REQUIRE_THROWS_WITH(parse(j), StartsWith("http.max_json_depth: must be at least 2"));
  }
  SECTION("unknown key") {
    j["http"]["api_key"] = "x";
    REQUIRE_THROWS_WITH(parse(j), "http.api_key: unknown key");
  }
}
