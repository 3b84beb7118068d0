// The invoice accumulator (actors/invoice_state): what a correction invoice bills after a
// re-rate (SEMANTICS §7 step 5), whether the accumulator issued the standard invoice itself, or
// learnt what was billed from the store before its lines came (`meterflow rerate`) or after
// (a resumed service).

#include "actors/invoice_state.hpp"
#include "persistence/ids.hpp"

#include <catch2/catch.hpp>

using namespace meterflow;
using actors::invoice_state;
using actors::line_update;
using pricing::decimal;

namespace {

// c_plain is not configured: the default price book (USD), no credits.
const config::configuration& example_config() {
  static const config::configuration cfg =
      config::load_file(std::string(METERFLOW_SOURCE_DIR) + "/examples/config.json");
  return cfg;
}

const pricing::period january = pricing::parse_period("2024-01").value();

pricing::timestamp hour(int h) {
  return january.start + static_cast<pricing::timestamp>(h) * 3'600'000'000;
}

decimal d(const char* text) {
  return decimal::parse(text).value();
}

std::string id(char c) {
  return std::string(64, c);
}

line_update charged(const std::string& metric, int h, const char* quantity, const char* amount,
                    char charge) {
  return {metric, hour(h), d(quantity),
          actors::current_charge{persistence::packed_id(id(charge)), d(quantity), d(amount),
                                 pricing::rounding_mode::half_up}};
}

// The invoices `state` emitted since the last call.
std::vector<persistence::invoice_record> invoices(invoice_state& state) {
  std::vector<persistence::invoice_record> out;
  for (auto& k : state.take_output().records.invoices)
    out.push_back(std::move(k.record));
  return out;
}

std::vector<std::string> charge_ids(const persistence::invoice_line& line) {
  return persistence::id_strings(line.charge_ids);
}

// Three api_calls windows and one gb_stored window, billed by the standard invoice.
std::vector<line_update> billed_lines() {
  return {charged("api_calls", 0, "10", "0.02", 'a'), charged("api_calls", 1, "20", "0.04", 'b'),
          charged("api_calls", 2, "30", "0.06", 'c'), charged("gb_stored", 0, "1", "0.05", 'g')};
}

// After the invoice: window 1 re-rated (charge b superseded by d) and a window that was never
// charged before (charge e).
std::vector<line_update> rerated_lines() {
  return {charged("api_calls", 1, "25", "0.05", 'd'), charged("api_calls", 3, "5", "0.01", 'e')};
}

// The correction `state` issues for rerated_lines(): only the new charges, with the deltas.
void check_correction(invoice_state& state) {
  state.update(rerated_lines());
  state.settle(1, actors::watermark_max);
  const auto out = invoices(state);
  REQUIRE(out.size() == 1);
  const auto& c = out[0];
  CHECK(c.type == persistence::invoice_type::correction);
  CHECK(c.invoice_id == "inv_c_plain_2024-01_c1");
  REQUIRE(c.line_items.size() == 1); // gb_stored did not change
  CHECK(c.line_items[0].metric == "api_calls");
  CHECK(charge_ids(c.line_items[0]) == std::vector<std::string>{id('d'), id('e')});
  CHECK(c.line_items[0].quantity == d("10"));
  CHECK(c.line_items[0].amount == d("0.02"));
  CHECK(c.total == d("0.02"));
}

} // namespace

TEST_CASE("invoice_state: a correction bills the charges that are new since the invoice",
          "[invoice]") {
  invoice_state state(example_config(), "c_plain", january);
  state.update(billed_lines());
  state.issue(0);
  const auto issued = invoices(state);
  REQUIRE(issued.size() == 1);
  REQUIRE(issued[0].line_items.size() == 2);
  CHECK(charge_ids(issued[0].line_items[0]) == std::vector<std::string>{id('a'), id('b'), id('c')});
  CHECK(charge_ids(issued[0].line_items[1]) == std::vector<std::string>{id('g')});
  check_correction(state);

  // Nothing new since the correction: no document. A charge re-sent unchanged is still billed.
  state.update({charged("api_calls", 3, "5", "0.01", 'e')});
  state.settle(2, actors::watermark_max);
  CHECK(invoices(state).empty());
}

TEST_CASE("invoice_state: what the store billed counts, whether it is learnt before or after "
          "the lines",
          "[invoice]") {
  invoice_state issuer(example_config(), "c_plain", january);
  issuer.update(billed_lines());
  issuer.issue(0);
  const auto stored = invoices(issuer);
  REQUIRE(stored.size() == 1);

  SECTION("restored first (meterflow rerate), then the current lines") {
    invoice_state state(example_config(), "c_plain", january);
    state.restore(stored);
    CHECK(state.issued());
    state.update(billed_lines());
    check_correction(state);
  }
  SECTION("the lines first, then adopted (a resumed service)") {
    invoice_state state(example_config(), "c_plain", january);
    state.update(billed_lines());
    state.adopt(stored);
    check_correction(state);
  }
  SECTION("adopting replaces what the replay billed") {
    invoice_state state(example_config(), "c_plain", january);
    state.update(billed_lines());
    state.issue(0);
    invoices(state);
    // The store's invoice billed only window 0: windows 1 and 2 are not billed after all.
    auto partial = stored;
    partial[0].line_items[0].charge_ids.resize(1);
    partial[0].line_items[0].amount = d("0.02");
    partial[0].line_items[0].quantity = d("10");
    partial[0].subtotal = partial[0].total = d("0.07");
    state.adopt(partial);
    state.settle(1, actors::watermark_max);
    const auto out = invoices(state);
    REQUIRE(out.size() == 1);
    REQUIRE(out[0].line_items.size() == 1);
    CHECK(charge_ids(out[0].line_items[0]) == std::vector<std::string>{id('b'), id('c')});
    CHECK(out[0].line_items[0].amount == d("0.10"));
  }
}
