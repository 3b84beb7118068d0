#include "persistence/json_format.hpp"

#include <catch2/catch.hpp>

namespace p = meterflow::persistence;
using meterflow::pricing::decimal;

namespace {

decimal d(const char* text) {
  return decimal::parse(text).value();
}

p::charge_record sample_charge(bool superseding) {
  p::charge_record c;
  c.charge_id = "c\"1\\x";
  c.customer_id = "cust \"quoted\"";
  c.metric = "api_calls";
  c.window_start = 1705312800000000;
  c.window_end = 1705316400000000;
  c.aggregation_id = "agg";
  c.quantity = d("234");
  c.trigger = p::charge_trigger::window_final;
  if (superseding)
    c.supersedes_charge_id = "older";
  c.calculation.price_book_id = "pb";
  c.calculation.currency = "USD";
  c.calculation.version = "v2";
  c.calculation.effective_from = 1705276800000000;
  if (superseding)
    c.calculation.effective_until = 1706745600000000;
  c.calculation.model = meterflow::pricing::model_kind::tiered;
  c.calculation.cumulative_before = d("1000");
  c.calculation.cumulative_after = d("1234");
  c.calculation.price_before = d("100");
  c.calculation.price_after = d("118.72");
  c.calculation.amount = d("18.72");
  c.calculation.tiers = {{2, d("234"), d("0.08"), d("0"), d("18.72")}};
  c.calculation.formula = "tiered pb/v2: P(1234) - P(1000) = 118.72 - 100 = 18.72";
  c.source_event_ids = {"e-1", "e\"2"};
  c.source_event_count = 2;
  return c;
}

} // namespace

TEST_CASE("fast NDJSON writers give exactly the JSON of the record", "[persistence][json]") {
  for (bool superseding : {false, true}) {
    const p::charge_record c = sample_charge(superseding);
    std::string fast;
    p::append_line(fast, c);
    CHECK(fast == p::to_line(p::to_json(c)) + "\n");
  }
  p::aggregate_record a;
  a.aggregation_id = "a";
  a.customer_id = "c\\1";
  a.metric = "gb";
  a.window_start = 0;
  a.window_end = 3600000000;
  a.revision = 2;
  a.kind = p::aggregate_kind::reaggregated;
  a.is_final = true;
  a.value = d("150.5");
  a.event_count = 2;
  a.event_ids = {"x", "y"};
  std::string fast;
  p::append_line(fast, a);
  CHECK(fast == p::to_line(p::to_json(a)) + "\n");
}

TEST_CASE("fast NDJSON writers escape at any position of long and short strings",
          "[persistence][json]") {
  // Strings are checked 16 characters at a time: a '"' or '\\' at each position of strings of
  // 1 to 40 characters, in the first block, a later block and the tail.
  p::aggregate_record a;
  a.aggregation_id = std::string(37, 'a');
  a.customer_id = "c";
  a.metric = "m";
  std::vector<std::string> ids;
  for (std::size_t length = 1; length <= 40; ++length)
    for (std::size_t at = 0; at < length; ++at)
      for (char special : {'"', '\\'}) {
        std::string id(length, 'x');
        id[at] = special;
        ids.push_back(id);
      }
  a.event_ids = ids;
  a.event_count = ids.size();
  std::string fast;
  p::append_line(fast, a);
  CHECK(fast == p::to_line(p::to_json(a)) + "\n");
  // Control characters (never in validated ids) are escaped too, and read back exactly.
  a.event_ids = {std::string("0123456789abcdef\x01tail"), std::string(20, '\x1f'),
                 "\t\n" + std::string(30, 'z') + "\r"};
  fast.clear();
  p::append_line(fast, a);
  CHECK(nlohmann::json::parse(fast)["event_ids"].get<std::vector<std::string>>() == a.event_ids);
}

TEST_CASE("charge JSON carries the explanation with exact amounts", "[persistence][json]") {
  const auto j = p::to_json(sample_charge(true));
  CHECK(j["amount"] == "18.720000000000");
  CHECK(j["quantity"] == "234");
  CHECK(j["window_start"] == "2024-01-15T10:00:00Z");
  CHECK(j["supersedes_charge_id"] == "older");
  CHECK(j["calculation"]["tiers"][0]["unit_price"] == "0.08");
  CHECK(j["source_event_ids"].size() == 2);
}

TEST_CASE("invoice JSON puts money at the currency's minor unit, never -0.00",
          "[persistence][json]") {
  p::invoice_record inv;
  inv.invoice_id = "inv_c1_2024-01";
  inv.customer_id = "c1";
  inv.period = meterflow::pricing::parse_period("2024-01").value();
  inv.currency = "USD";
  inv.line_items.push_back(
      {"l1", "api_calls", d("1234"), d("98.72"), {meterflow::persistence::packed_id("c")}});
  inv.subtotal = d("98.72");
  inv.credits_applied = d("0");
  inv.total = d("98.72");
  auto j = p::to_json(inv);
  CHECK(j["period"]["start"] == "2024-01-01T00:00:00Z");
  CHECK(j["period"]["end"] == "2024-02-01T00:00:00Z");
  CHECK(j["line_items"][0]["amount"] == "98.72");
  CHECK(j["credits_applied"] == "0.00");
  CHECK(j["corrects_invoice_id"].is_null());
  inv.currency = "JPY";
  inv.total = d("-0.4");
  CHECK(p::to_json(inv)["total"] == "0");
}

TEST_CASE("rejected lines keep invalid UTF-8 exactly, in base64", "[persistence][json]") {
  p::rejected_line r{7, "bad_json", "json: invalid UTF-8", std::string("{\"a\":\"\xff\xfe\"}")};
  const auto j = p::to_json(r);
  CHECK(j["line"] == 7);
  CHECK(j["raw_base64"] == "eyJhIjoi//4ifQ==");
  p::rejected_line ok{8, "bad_json", "x", "{not json"};
  CHECK(p::to_json(ok)["raw"] == "{not json");
  CHECK_FALSE(p::to_json(ok).contains("raw_base64"));
}

TEST_CASE("charges and invoices read back from their JSON as written", "[persistence][json]") {
  auto reread = [](const auto& j) { return nlohmann::json::parse(p::to_line(j)); };
  for (bool superseding : {false, true}) {
    const auto j = p::to_json(sample_charge(superseding));
    CHECK(p::to_json(p::charge_from_json(reread(j))) == j);
  }
  p::invoice_record inv;
  inv.invoice_id = "inv_c1_2024-01_c1";
  inv.type = p::invoice_type::correction;
  inv.corrects_invoice_id = "inv_c1_2024-01";
  inv.customer_id = "c1";
  inv.period = meterflow::pricing::parse_period("2024-01").value();
  inv.currency = "USD";
  inv.line_items.push_back({"l1", "api_calls", d("-3"), d("-0.24"), p::pack_ids({"c", "d"})});
  inv.subtotal = d("-0.24");
  inv.credits_applied = d("0.5");
  inv.total = d("-0.74");
  const auto j = p::to_json(inv);
  const p::invoice_record back = p::invoice_from_json(reread(j));
  CHECK(p::to_json(back) == j);
  CHECK(back.period == inv.period);

  auto broken = reread(j);
  broken["total"] = "1,5";
  CHECK_THROWS_WITH(p::invoice_from_json(broken), Catch::StartsWith("field \"total\": "));
  broken.erase("line_items");
  CHECK_THROWS_WITH(p::invoice_from_json(broken), "field \"line_items\": missing");
  auto charge = reread(p::to_json(sample_charge(false)));
  charge["calculation"]["model"] = "linear";
  CHECK_THROWS_WITH(p::charge_from_json(charge), Catch::StartsWith("field \"model\": "));
}
