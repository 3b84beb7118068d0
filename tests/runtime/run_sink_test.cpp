// run_sink's running reconciliation totals: charge ids seen twice and broken supersede links.

#include "runtime/run_sink.hpp"

#include <catch2/catch.hpp>

namespace {

using namespace meterflow;

actors::keyed<persistence::charge_record> charge(std::uint64_t seq, std::string id,
                                                 std::optional<std::string> supersedes = {}) {
  actors::keyed<persistence::charge_record> k;
  k.key.step = seq;
  k.key.customer_id = "c1";
  k.key.metric = "api_calls";
  k.key.seq = seq;
  k.record.charge_id = std::move(id);
  k.record.supersedes_charge_id = std::move(supersedes);
  k.record.customer_id = "c1";
  k.record.metric = "api_calls";
  k.record.window_start = pricing::parse_rfc3339("2024-01-01T00:00:00Z").value();
  k.record.calculation.currency = "USD";
  return k;
}

} // namespace

TEST_CASE("run_sink counts a charge id seen twice, current or superseded", "[run][sink]") {
  const std::string a(64, 'a'), b(64, 'b'), c(64, 'c');
  actors::partition_output out;
  out.charges.push_back(charge(1, a));
  out.charges.push_back(charge(2, b, a)); // supersedes a: b current, a superseded
  out.charges.push_back(charge(3, "text-id"));
  runtime::run_sink sink(std::nullopt, false);
  sink.add(std::move(out));
  sink.flush(0);
  CHECK(sink.totals().charges == 3);
  CHECK(sink.totals().duplicate_charge_ids == 0);
  CHECK(sink.totals().broken_links.empty());
  CHECK(sink.totals().current_charges.size() == 2);

  actors::partition_output again;
  again.charges.push_back(charge(4, a));                                // superseded before: twice
  again.charges.push_back(charge(5, b));                                // current: twice
  again.charges.back().record.quantity = pricing::decimal::from_int(7); // and it now counts
  again.charges.push_back(charge(6, "text-id"));                        // a text id, current: twice
  again.charges.push_back(charge(7, c, std::string(64, 'd'))); // supersedes no current charge
  sink.add(std::move(again));
  sink.flush(0);
  CHECK(sink.totals().charges == 7);
  CHECK(sink.totals().duplicate_charge_ids == 3);
  CHECK(sink.totals().broken_links == " " + c);
  CHECK(sink.totals().current_charges.at(persistence::packed_id(b)).quantity ==
        pricing::decimal::from_int(7));

  actors::partition_output last;
  last.charges.push_back(charge(8, b, c)); // supersedes c, but b is current already: twice
  sink.add(std::move(last));
  sink.seal();
  CHECK(sink.totals().charges == 8);
  CHECK(sink.totals().duplicate_charge_ids == 4);
  CHECK(sink.totals().broken_links == " " + c);
  CHECK(sink.totals().current_charges.size() == 3); // a's replay, b and the text id
  CHECK(sink.totals().current_charges.at(persistence::packed_id(b)).quantity.is_zero());
}
