// End-to-end tests of `meterflow quote`: every worked number of the foundation issue, from the
// command line.

#include "support/process.hpp"

#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

using meterflow::test::run_meterflow;
using meterflow::test::shell_quote;

namespace {

const std::string example_config = std::string(METERFLOW_SOURCE_DIR) + "/examples/config.json";

nlohmann::json quote(const std::string& config, const std::string& customer,
                     const std::string& quantity, const std::string& at) {
  auto r = run_meterflow("quote --config " + shell_quote(config) + " --customer " + customer +
                         " --metric api_calls --quantity " + quantity + " --at " + at);
  REQUIRE(r.status == 0);
  return nlohmann::json::parse(r.out);
}

std::string write_stripe_config() {
  const auto path = std::filesystem::temp_directory_path() / "meterflow_quote_stripe.json";
  std::ofstream(path) << R"({
    "meters": [{"metric": "api_calls", "event_type": "api_call", "aggregation": "count"}],
    "price_books": [{"id": "stripe", "currency": "USD", "versions": [
      {"version": "graduated", "effective_from": "2024-01-01T00:00:00Z",
       "effective_until": "2024-02-01T00:00:00Z",
       "prices": {"api_calls": {"model": "tiered", "tiers": [
         {"up_to": "5", "unit_price": "7"}, {"up_to": "10", "unit_price": "6.5"},
         {"up_to": null, "unit_price": "6"}]}}},
      {"version": "volume", "effective_from": "2024-02-01T00:00:00Z", "effective_until": null,
       "prices": {"api_calls": {"model": "volume", "tiers": [
         {"up_to": "5", "unit_price": "7"}, {"up_to": "10", "unit_price": "6.5"},
         {"up_to": null, "unit_price": "6"}]}}}]}],
    "default_price_book": "stripe"})";
  return path.string();
}

} // namespace

TEST_CASE("quote: the seed's worked example from the command line", "[cli][quote]") {
  CHECK(quote(example_config, "c_flat", "1234", "2024-01-20T00:00:00Z")["amount"] == "98.72");
  CHECK(quote(example_config, "c_tiered", "1234", "2024-01-20T00:00:00Z")["amount"] == "118.72");
  CHECK(quote(example_config, "c_volume", "1234", "2024-01-20T00:00:00Z")["amount"] == "98.72");
  CHECK(quote(example_config, "c_recon", "10234", "2024-01-20T00:00:00Z")["amount"] == "204.68");
  // v1 / v2 / v3 selection on 2024-01-01 / 01-15 / 02-01.
  CHECK(quote(example_config, "c_flat", "1", "2024-01-01T00:00:00Z")["version"] == "v1");
  CHECK(quote(example_config, "c_flat", "1", "2024-01-15T00:00:00Z")["version"] == "v2");
  CHECK(quote(example_config, "c_flat", "1", "2024-02-01T00:00:00Z")["version"] == "v3");
  CHECK(quote(example_config, "c_flat", "1", "2024-02-01T00:00:00Z")["amount"] == "0.12");
}

TEST_CASE("quote: explanation of a tiered price", "[cli][quote]") {
  const auto q = quote(example_config, "c_tiered", "1234", "2024-01-20T10:30:00Z");
  CHECK(q["window_start"] == "2024-01-20T10:00:00Z");
  CHECK(q["price_book_id"] == "pb_tiered");
  CHECK(q["effective_from"] == "2024-01-15T00:00:00Z");
  CHECK(q["model"] == "tiered");
  CHECK(q["amount_exact"] == "118.720000000000");
  REQUIRE(q["tiers"].size() == 2);
  CHECK(q["tiers"][0]["units"] == "1000");
  CHECK(q["tiers"][0]["amount"] == "100");
  CHECK(q["tiers"][1]["units"] == "234");
  CHECK(q["tiers"][1]["unit_price"] == "0.08");
  CHECK(q["tiers"][1]["amount"] == "18.72");
}

TEST_CASE("quote: Stripe's documented tiers from the command line", "[cli][quote]") {
  const std::string cfg = write_stripe_config();
  const std::pair<const char*, const char*> graduated[] = {
      {"6", "41.50"}, {"20", "127.50"}, {"25", "157.50"}};
  for (auto [q, amount] : graduated)
    CHECK(quote(cfg, "anyone", q, "2024-01-10T00:00:00Z")["amount"] == amount);
  const std::pair<const char*, const char*> volume[] = {
      {"1", "7.00"}, {"5", "35.00"}, {"6", "39.00"}, {"20", "120.00"}, {"25", "150.00"}};
  for (auto [q, amount] : volume)
    CHECK(quote(cfg, "anyone", q, "2024-02-10T00:00:00Z")["amount"] == amount);
}

TEST_CASE("quote: errors and exit statuses", "[cli][quote]") {
  const std::string base = "quote --config " + shell_quote(example_config) + " --customer c_flat ";
  CHECK(
      run_meterflow(base + "--metric api_calls --quantity 1 --at 2023-06-01T00:00:00Z 2>/dev/null")
          .status == 1); // no version applies
  CHECK(run_meterflow(base + "--metric nope --quantity 1 --at 2024-01-02T00:00:00Z 2>/dev/null")
            .status == 2);
  CHECK(run_meterflow(base + "--metric api_calls --quantity 1.0000000000001 "
                             "--at 2024-01-02T00:00:00Z 2>/dev/null")
            .status == 2);
  CHECK(run_meterflow(base + "--metric api_calls --quantity 1 --at yesterday 2>/dev/null").status ==
        2);
  CHECK(run_meterflow(base + "--metric api_calls 2>&1")
            .out.find("missing required option --quantity") != std::string::npos);
  CHECK(run_meterflow("quote --config /nonexistent.json --customer c --metric m --quantity 1 "
                      "--at 2024-01-01T00:00:00Z 2>/dev/null")
            .status == 2);
  const auto help = run_meterflow("quote --help");
  CHECK(help.status == 0);
  CHECK(help.out.find("Usage: meterflow quote") != std::string::npos);
  CHECK(run_meterflow("frobnicate 2>/dev/null").status == 2);
}
