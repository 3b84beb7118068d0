// Unit tests of the engine core: a partition actor and its window, rating and invoice actors,
// driven the way the `meterflow run` driver drives them (runtime/run_command.cpp, driver::process):
// lines are validated, batches are routed to partitions and admitted (dedup + store), the batch
// watermark advances in input order over the accepted events, and every partition applies the
// batch's watermark steps; the end of input finishes every partition. The outputs are merged and
// reconciled with the runtime's own sink and reconciliation.

#include "persistence/memory_store.hpp"
#include "runtime/event_parser.hpp"
#include "runtime/reconciliation.hpp"
#include "runtime/run_sink.hpp"
#include "support/billing_scenario.hpp"
#include "support/partition_harness.hpp"

#include <catch2/catch.hpp>

namespace {

using namespace meterflow;
using actors::sequenced_event;
using actors::watermark_step;
using pricing::decimal;
using pricing::timestamp;
using test::at;
using test::dec;

struct engine_run {
  runtime::run_sink sink; // sealed: records in their global order
  actors::partition_counters counters;
  runtime::reconciliation_report report;
};

struct engine_options {
  std::size_t batch_size = 8192;
  std::uint32_t partitions = 1;
  // Simulates a crash of partition `crash_partition` while applying batch `crash_batch` (1-based,
  // 0 = none): it is rebuilt from its store, as the driver's supervisor does, and gets the batch
  // again.
  std::uint32_t crash_partition = 0;
  std::uint64_t crash_batch = 0;
};

// Feeds input lines through partition states exactly as driver::process does.
engine_run run_engine(const config::configuration& cfg, const std::vector<std::string>& lines,
                      engine_options opt = {}) {
  engine_run run;
  runtime::event_parser parser(cfg);
  runtime::source_counters source;
  std::vector<std::unique_ptr<persistence::memory_store>> stores;
  std::vector<std::unique_ptr<test::test_partition>> states;
  for (std::uint32_t p = 0; p < opt.partitions; ++p) {
    stores.push_back(std::make_unique<persistence::memory_store>());
    states.push_back(std::make_unique<test::test_partition>(cfg, *stores.back(), p));
  }
  timestamp watermark = actors::watermark_min;
  std::vector<watermark_step> history;
  std::uint64_t applied_upto = 0, batch_no = 0, duplicates = 0, conflicts = 0;

  auto process = [&](std::vector<sequenced_event>&& batch, std::vector<std::string>&& raws,
                     bool end_of_input) {
    ++batch_no;
    std::vector<std::vector<sequenced_event>> routed(opt.partitions);
    std::vector<std::pair<std::uint32_t, std::size_t>> where; // (partition, index)
    std::vector<std::pair<std::uint64_t, timestamp>> meta;    // (seq, event_time)
    for (auto& se : batch) {
      const std::uint32_t p = actors::partition_of(se.event.customer_id, opt.partitions);
      where.emplace_back(p, routed[p].size());
      meta.emplace_back(se.seq, se.event.event_time);
      routed[p].push_back(std::move(se));
    }
    std::vector<std::vector<persistence::append_outcome>> outcomes(opt.partitions);
    for (std::uint32_t p = 0; p < opt.partitions; ++p)
      if (!routed[p].empty())
        outcomes[p] = states[p]->admit(std::move(routed[p]));
    std::vector<watermark_step> steps;
    for (std::size_t i = 0; i < where.size(); ++i) {
      switch (outcomes[where[i].first][where[i].second]) {
      case persistence::append_outcome::accepted:
      case persistence::append_outcome::replayed:
        advance_watermark(watermark, steps, meta[i].first, meta[i].second,
                          cfg.max_out_of_orderness);
        break;
      case persistence::append_outcome::duplicate:
        ++duplicates;
        break;
      case persistence::append_outcome::conflict:
        ++conflicts;
        run.sink.add_rejected({meta[i].first, "event_id_conflict", "", std::move(raws[i])});
        break;
      }
    }
    for (std::uint32_t p = 0; p < opt.partitions; ++p) {
      if (batch_no == opt.crash_batch && p == opt.crash_partition) {
        states[p]->restore(history, applied_upto);
      }
      states[p]->apply(steps, end_of_input);
      run.sink.add(states[p]->take_output());
    }
    history.insert(history.end(), steps.begin(), steps.end());
    if (!meta.empty())
      applied_upto = meta.back().first;
  };

  std::vector<sequenced_event> batch;
  std::vector<std::string> raws;
  for (std::size_t i = 0; i < lines.size(); ++i) {
    const std::uint64_t line_no = i + 1;
    if (lines[i].find_first_not_of(" \t") == std::string::npos)
      continue;
    ++source.received;
    runtime::parse_outcome parsed = parser.parse(lines[i]);
    if (!parsed.ok()) {
      ++source.rejected;
      run.sink.add_rejected({line_no, to_string(parsed.reason), parsed.detail, lines[i]});
      continue;
    }
    batch.push_back({line_no, std::move(*parsed.event)});
    raws.push_back(lines[i]);
    if (batch.size() >= opt.batch_size) {
      process(std::move(batch), std::move(raws), false);
      batch.clear();
      raws.clear();
    }
  }
  process(std::move(batch), std::move(raws), true);

  for (const auto& s : states)
    run.counters += s->counters();
  run.counters.accepted = 0;
  for (const auto& s : stores)
    run.counters.accepted += s->size();
  run.counters.duplicates = duplicates;
  run.counters.conflicts = conflicts;
  run.sink.set_counters(source, run.counters);
  run.sink.seal();
  run.report = runtime::reconcile(run.sink, cfg);
  return run;
}

// Every record of a run in its output form and order: equal dumps mean equal output files.
std::string dump(const runtime::run_sink& sink) {
  std::string out;
  auto add = [&](const auto& keyed_records) {
    for (const auto& k : keyed_records)
      out += persistence::to_line(persistence::to_json(k.record)) + "\n";
  };
  add(sink.invoices());
  add(sink.charges());
  add(sink.aggregates());
  add(sink.unpriced());
  for (const auto& r : sink.rejected())
    out += persistence::to_line(persistence::to_json(r)) + "\n";
  return out;
}

// Σ invoice line amounts (standard + corrections) per customer, period and metric, and
// Σ totals per customer and period.
test::billing billed(const runtime::run_sink& sink) {
  test::billing b;
  for (const auto& k : sink.invoices()) {
    const auto& inv = k.record;
    const std::string period = pricing::period_id(inv.period);
    for (const auto& l : inv.line_items)
      b.lines[{inv.customer_id, period, l.metric}] += l.amount;
    b.totals[{inv.customer_id, period}] += inv.total;
  }
  return b;
}

std::string failed_checks(const runtime::reconciliation_report& r) {
  std::string out;
  for (const auto& c : r.json["checks"])
    if (!c["ok"].get<bool>())
      out += c.dump() + "\n";
  return out;
}

const persistence::invoice_record* find_invoice(const runtime::run_sink& sink,
                                                const std::string& id) {
  for (const auto& k : sink.invoices())
    if (k.record.invoice_id == id)
      return &k.record;
  return nullptr;
}

std::vector<const persistence::charge_record*>
charges_of(const runtime::run_sink& sink, const std::string& customer, const std::string& metric) {
  std::vector<const persistence::charge_record*> out;
  for (const auto& k : sink.charges())
    if (k.record.customer_id == customer && k.record.metric == metric)
      out.push_back(&k.record);
  return out;
}

std::string call(const std::string& id, const std::string& customer, const std::string& time) {
  return R"({"event_id":")" + id + R"(","event_time":")" + time + R"(","customer_id":")" +
         customer + R"(","event_type":"api_call"})";
}

std::string event(const std::string& id, const std::string& customer, const std::string& type,
                  const std::string& time, const std::string& value,
                  const std::string& metadata = "") {
  return R"({"event_id":")" + id + R"(","event_time":")" + time + R"(","customer_id":")" +
         customer + R"(","event_type":")" + type + R"(","value":")" + value + "\"" +
         (metadata.empty() ? "" : ",\"metadata\":" + metadata) + "}";
}

// A small book for the targeted tests: a tiered price, a gap with no version, then a dearer
// version; `gb` has no price at all.
const char* const small_config = R"({
  "window":{"size":"1h","allowed_lateness":"1h"},"corrections":{"interval":"1d"},
  "watermark":{"max_out_of_orderness":"0s"},
  "meters":[{"metric":"api_calls","event_type":"api_call","aggregation":"count"},
            {"metric":"gb","event_type":"storage","aggregation":"sum"}],
  "price_books":[{"id":"pb","currency":"USD","versions":[
    {"version":"v1","effective_from":"2024-01-01T00:00:00Z","effective_until":"2024-01-10T00:00:00Z",
     "prices":{"api_calls":{"model":"tiered","tiers":[{"up_to":"10","unit_price":"1"},
                                                      {"up_to":null,"unit_price":"0.5"}]}}},
    {"version":"v2","effective_from":"2024-01-12T00:00:00Z","effective_until":null,
     "prices":{"api_calls":{"model":"tiered","tiers":[{"up_to":"10","unit_price":"2"},
                                                      {"up_to":null,"unit_price":"1"}]}}}]}],
  "default_price_book":"pb"})";

} // namespace

TEST_CASE("engine: admit deduplicates on (customer_id, event_id), apply follows the "
          "watermark steps",
          "[engine]") {
  const auto cfg = config::parse(small_config);
  persistence::memory_store store;
  test::test_partition st(cfg, store);
  runtime::event_parser parser(cfg);
  auto ev = [&](std::uint64_t seq, const std::string& line) {
    return sequenced_event{seq, *parser.parse(line).event};
  };
  std::vector<sequenced_event> batch;
  batch.push_back(ev(1, call("a", "c1", "2024-01-05T10:00:00Z")));
  batch.push_back(ev(2, call("a", "c1", "2024-01-05T11:00:00+01:00"))); // same instant
  batch.push_back(ev(3, call("a", "c1", "2024-01-05T10:00:01Z")));      // conflict
  batch.push_back(ev(4, call("a", "c2", "2024-01-05T10:30:00Z")));      // other customer
  // The same payload: value "1.0" is the default 1, the unknown field is ignored.
  batch.push_back(ev(5, R"({"event_id":"a","event_time":"2024-01-05T10:30:00.000Z",)"
                        R"("customer_id":"c2","event_type":"api_call","value":"1.0","x":1})"));
  const auto outcomes = st.admit(std::move(batch));
  using persistence::append_outcome;
  CHECK(outcomes == std::vector<append_outcome>{append_outcome::accepted, append_outcome::duplicate,
                                                append_outcome::conflict, append_outcome::accepted,
                                                append_outcome::duplicate});

  // Both accepted events advance the watermark; the window [10:00, 11:00) is open until 11:00.
  st.apply({{1, at("2024-01-05T10:00:00Z")}, {4, at("2024-01-05T10:30:00Z")}});
  CHECK(st.counters().accepted == 2);
  CHECK(st.counters().duplicates == 2);
  CHECK(st.counters().conflicts == 1);
  CHECK(st.watermark() == at("2024-01-05T10:30:00Z"));
  CHECK(st.open_windows() == 2);
  CHECK(st.take_output().empty());

  // 11:00 closes both windows (provisional aggregates), 12:00 finalizes and rates them.
  st.apply({{5, at("2024-01-05T11:00:00Z")}});
  auto out = st.take_output();
  REQUIRE(out.aggregates.size() == 2);
  CHECK_FALSE(out.aggregates[0].record.is_final);
  CHECK(out.charges.empty());
  st.apply({{6, at("2024-01-05T12:00:00Z")}});
  out = st.take_output();
  REQUIRE(out.charges.size() == 2);
  CHECK(out.charges[0].record.amount() == dec("1"));
  CHECK(out.charges[0].key.step == 6);
  CHECK(st.open_windows() == 0);
  CHECK(out.invoices.empty()); // January is not final yet

  st.finish();
  out = st.take_output();
  REQUIRE(out.invoices.size() == 2);
  CHECK(out.invoices[0].key.step == actors::end_of_input_step);
  CHECK(out.invoices[0].record.total == dec("1"));
}

TEST_CASE("engine: window states at the watermark boundaries (SEMANTICS §4)", "[engine]") {
  for (const std::string lateness : {"1h", "30m"}) {
    auto cfg = config::parse(small_config);
    cfg.allowed_lateness = pricing::parse_duration(lateness).value();
    // The window [01:00, 02:00) of 2024-01-05; the event arrives after one of another
    // customer that put the watermark at `wm` (max_out_of_orderness 0s).
    const timestamp end = at("2024-01-05T02:00:00Z");
    const timestamp L = cfg.allowed_lateness;
    struct boundary {
      timestamp wm;
      int late, very_late;
    };
    const boundary cases[] = {{end - 1, 0, 0}, {end, 1, 0}, {end + L - 1, 1, 0}, {end + L, 0, 1}};
    for (const auto& c : cases) {
      INFO("allowed_lateness " << lateness << ", watermark " << pricing::format_rfc3339(c.wm));
      const auto run = run_engine(cfg, {call("wm", "other", pricing::format_rfc3339(c.wm)),
                                        call("x", "c1", "2024-01-05T01:30:00Z")});
      CHECK(run.counters.late == static_cast<std::uint64_t>(c.late));
      CHECK(run.counters.very_late == static_cast<std::uint64_t>(c.very_late));
      CHECK(run.counters.rerates == static_cast<std::uint64_t>(c.very_late));
      CHECK(run.report.ok);
      // On time or late: aggregated by the window stage; very late: re-aggregated from the store.
      std::vector<std::string> kinds;
      for (const auto& k : run.sink.aggregates())
        if (k.record.customer_id == "c1")
          kinds.push_back(persistence::to_string(k.record.kind));
      CHECK(kinds.back() == std::string(c.very_late ? "reaggregated" : "final"));
      // Never dropped: the call is billed in every case.
      const auto* inv = find_invoice(run.sink, "inv_c1_2024-01");
      REQUIRE(inv);
      CHECK(inv->total == dec("1"));
    }
  }
}

TEST_CASE("engine: a closing window emits a provisional aggregate, updated as "
          "stragglers come, then the final one",
          "[engine]") {
  const auto cfg = config::parse(small_config); // lateness 1h, out-of-orderness 0s
  const auto run = run_engine(cfg, {call("a", "c1", "2024-01-05T10:05:00Z"),
                                    call("wm-1", "c2", "2024-01-05T11:00:00Z"), // closes it
                                    call("b", "c1", "2024-01-05T10:30:00Z"),    // straggler
                                    call("c", "c1", "2024-01-05T10:40:00Z"),    // straggler
                                    call("wm-2", "c2", "2024-01-05T11:10:00Z"),
                                    call("wm-3", "c2", "2024-01-05T11:20:00Z"),   // no change
                                    call("wm-4", "c2", "2024-01-05T12:00:00Z")}); // final
  REQUIRE(run.report.ok);
  CHECK(run.counters.late == 2);
  std::vector<std::tuple<std::string, std::uint32_t, std::uint64_t, std::uint64_t>> revisions;
  for (const auto& k : run.sink.aggregates())
    if (k.record.customer_id == "c1")
      revisions.emplace_back(persistence::to_string(k.record.kind), k.record.revision,
                             k.record.event_count, k.key.step);
  using row = std::tuple<std::string, std::uint32_t, std::uint64_t, std::uint64_t>;
  CHECK(revisions ==
        std::vector<row>{{"provisional", 0, 1, 2}, {"provisional", 1, 3, 5}, {"final", 2, 3, 7}});
  const auto charges = charges_of(run.sink, "c1", "api_calls");
  REQUIRE(charges.size() == 1);
  CHECK(charges[0]->quantity == dec("3"));
  CHECK(charges[0]->source_event_ids == std::vector<std::string>{"a", "b", "c"});
}

TEST_CASE("engine: incremental rating across versions; the line is rounded with the "
          "version of its latest charge",
          "[engine]") {
  const auto cfg = config::parse(test::scenario_config({}));
  std::vector<std::string> lines;
  // c1 (tiered): 4 calls under v1 (Jan 14 23:00), 10 under v2 (Jan 15 00:00).
  for (int i = 0; i < 4; ++i)
    lines.push_back(
        call("t" + std::to_string(i), "c1", "2024-01-14T23:0" + std::to_string(i) + ":00Z"));
  for (int i = 0; i < 10; ++i)
    lines.push_back(
        call("u" + std::to_string(i), "c1", "2024-01-15T00:0" + std::to_string(i) + ":00Z"));
  // c0 (flat): 5 calls under v1 at 0.013 (half_even), 20 under v2 at 0.011 (half_up):
  // 0.065 + 0.22 = 0.285 is 0.29 with v2's half_up (half_even would give 0.28).
  for (int i = 0; i < 5; ++i)
    lines.push_back(
        call("f" + std::to_string(i), "c0", "2024-01-10T10:0" + std::to_string(i) + ":00Z"));
  for (int i = 0; i < 20; ++i)
    lines.push_back(
        call("g" + std::to_string(i), "c0", "2024-01-20T10:" + std::to_string(10 + i) + ":00Z"));
  lines.push_back(call("next-month", "c2", "2024-02-05T00:00:00Z"));
  const auto run = run_engine(cfg, lines);
  REQUIRE(run.report.ok);

  const auto c1 = charges_of(run.sink, "c1", "api_calls");
  REQUIRE(c1.size() == 2);
  CHECK(c1[0]->calculation.version == "v1");
  CHECK(c1[0]->amount() == dec("0.42")); // P1(4) = 4 x 0.105
  CHECK(c1[1]->calculation.version == "v2");
  CHECK(c1[1]->calculation.cumulative_before == dec("4"));
  CHECK(c1[1]->calculation.cumulative_after == dec("14"));
  // P2(14) - P2(4) = (8 x 0.0975 + 6 x 0.0575 + 1) - 4 x 0.0975
  CHECK(c1[1]->amount() == dec("1.735"));
  CHECK(find_invoice(run.sink, "inv_c1_2024-01")->total == dec("2.16"));

  const auto* c0 = find_invoice(run.sink, "inv_c0_2024-01");
  REQUIRE(c0);
  REQUIRE(c0->line_items.size() == 1);
  CHECK(c0->line_items[0].quantity == dec("25"));
  CHECK(c0->line_items[0].amount == dec("0.29"));
  CHECK(c0->credits_applied == dec("0.29")); // a 0.50 credit, capped at the subtotal
  CHECK(c0->total == dec("0"));
}

TEST_CASE("engine: period-level meters get one charge per period, with the version "
          "of its last window",
          "[engine]") {
  const auto cfg = config::parse(test::scenario_config({}));
  const std::vector<std::string> lines = {
      event("s1", "c1", "storage", "2024-01-03T10:00:00Z", "25"),
      event("l1", "c1", "login", "2024-01-03T10:00:00Z", "1", R"({"user":"ann"})"),
      event("l2", "c1", "login", "2024-01-04T10:00:00Z", "1", R"({"user":"bob"})"),
      event("seat-0", "c1", "seat_count", "2024-01-05T10:00:00Z", "30"),
      event("s2", "c1", "storage", "2024-01-20T10:00:00Z", "7.5"),
      event("l3", "c1", "login", "2024-01-20T10:00:00Z", "1", R"({"user":"ann"})"),
      event("seat-b", "c1", "seat_count", "2024-01-20T10:00:00Z", "4"),
      event("seat-a", "c1", "seat_count", "2024-01-20T10:00:00Z", "9"), // same time, smaller id
      call("feb", "c1", "2024-02-02T03:00:00Z"),
      // A very late seat count, earlier than the latest: re-rated, nothing changes.
      event("seat-late", "c1", "seat_count", "2024-01-06T10:00:00Z", "50"),
      call("feb2", "c1", "2024-02-03T03:00:00Z"),
  };
  const auto run = run_engine(cfg, lines);
  REQUIRE(run.report.ok);
  auto single = [&](const std::string& metric) {
    const auto c = charges_of(run.sink, "c1", metric);
    REQUIRE(c.size() == 1);
    CHECK(c[0]->window_start == at("2024-01-01T00:00:00Z"));
    CHECK(c[0]->window_end == at("2024-02-01T00:00:00Z"));
    CHECK(c[0]->calculation.version == "v2");
    CHECK(c[0]->trigger == persistence::charge_trigger::period_close);
    return c[0];
  };
  CHECK(single("peak_gb")->quantity == dec("25"));     // max over the period
  CHECK(single("peak_gb")->amount() == dec("2.5"));    // volume v2: 25 x 0.1
  CHECK(single("active_users")->quantity == dec("2")); // ann, bob
  CHECK(single("active_users")->amount() == dec("1.75"));
  CHECK(single("seats")->quantity == dec("4")); // (20th 10:00, "seat-b") is the latest
  CHECK(single("seats")->amount() == dec("4.4"));
  CHECK(run.counters.very_late == 1);
  CHECK(run.counters.rerates == 1);
  CHECK(find_invoice(run.sink, "inv_c1_2024-01_c1") == nullptr); // no change, no document
}

TEST_CASE("engine: unpriced windows are listed and still count in the cumulative "
          "quantity",
          "[engine]") {
  const auto cfg = config::parse(small_config);
  std::vector<std::string> lines;
  for (int i = 0; i < 8; ++i) // v1: P(8) = 8
    lines.push_back(
        call("a" + std::to_string(i), "c1", "2024-01-05T10:0" + std::to_string(i) + ":00Z"));
  for (int i = 0; i < 4; ++i) // no version on Jan 11: unpriced, cumulative 12
    lines.push_back(
        call("b" + std::to_string(i), "c1", "2024-01-11T10:0" + std::to_string(i) + ":00Z"));
  for (int i = 0; i < 3; ++i) // v2: P(15) - P(12) = 25 - 22 = 3
    lines.push_back(
        call("c" + std::to_string(i), "c1", "2024-01-13T10:0" + std::to_string(i) + ":00Z"));
  lines.push_back(event("g1", "c1", "storage", "2024-01-13T10:00:00Z", "2.5")); // no price

  SECTION("in time") {
    const auto run = run_engine(cfg, lines);
    INFO(failed_checks(run.report));
    CHECK(run.report.ok);
    const auto* inv = find_invoice(run.sink, "inv_c1_2024-01");
    REQUIRE(inv);
    REQUIRE(inv->line_items.size() == 1); // gb has no charge, no line
    CHECK(inv->line_items[0].quantity == dec("15"));
    CHECK(inv->total == dec("11"));
    REQUIRE(run.sink.unpriced().size() == 2);
    CHECK(run.sink.unpriced()[0].record.reason == pricing::unpriced_reason::no_version);
    CHECK(run.sink.unpriced()[0].record.quantity == dec("4"));
    CHECK(run.sink.unpriced()[1].record.reason == pricing::unpriced_reason::no_price);
  }
  SECTION("very late events into an unpriced window and into a new one") {
    lines.push_back(call("later", "c2", "2024-01-13T20:00:00Z"));  // every window above is final
    lines.push_back(call("late-1", "c1", "2024-01-11T10:30:00Z")); // listed window: 4 -> 5
    lines.push_back(call("late-2", "c1", "2024-01-10T05:00:00Z")); // a new unpriced window
    lines.push_back(event("late-3", "c1", "storage", "2024-01-13T10:10:00Z", "1")); // no price
    lines.push_back(call("tomorrow", "c2", "2024-01-15T00:00:00Z")); // crosses the interval
    const auto run = run_engine(cfg, lines);
    INFO(failed_checks(run.report));
    CHECK(run.report.ok);
    CHECK(run.counters.very_late == 3);
    // v2 window: P(17) - P(14) = 27 - 24 = 3, unchanged: no new charge.
    CHECK(charges_of(run.sink, "c1", "api_calls").size() == 2);
    std::map<std::pair<std::string, timestamp>, decimal> listed; // the last listing wins
    for (const auto& k : run.sink.unpriced())
      listed[{k.record.metric, k.record.window_start}] = k.record.quantity;
    CHECK(listed[{"api_calls", at("2024-01-11T10:00:00Z")}] == dec("5"));
    CHECK(listed[{"api_calls", at("2024-01-10T05:00:00Z")}] == dec("1"));
    CHECK(listed[{"gb", at("2024-01-13T10:00:00Z")}] == dec("3.5"));
  }
}

TEST_CASE("engine: very late events are coalesced into one re-rate per correction "
          "interval, which supersedes charges and issues a correction",
          "[engine]") {
  const auto cfg = config::parse(small_config);
  std::vector<std::string> lines;
  for (int i = 0; i < 12; ++i) // P1(12) = 10 + 1 = 11
    lines.push_back(
        call("a" + std::to_string(i), "c1", "2024-01-05T10:" + std::to_string(10 + i) + ":00Z"));
  lines.push_back(call("feb-1", "c2", "2024-02-01T05:00:00Z")); // January is issued
  lines.push_back(call("vl-1", "c1", "2024-01-05T10:00:00Z"));  // very late, same window
  lines.push_back(call("vl-2", "c1", "2024-01-05T10:01:00Z"));  // coalesced with vl-1
  lines.push_back(call("vl-1", "c1", "2024-01-05T10:00:00Z"));  // a duplicate, not very late
  lines.push_back(call("feb-2", "c2", "2024-02-02T00:00:00Z")); // crosses the interval (line 17)
  lines.push_back(call("vl-3", "c1", "2024-01-05T10:02:00Z"));  // next interval: at the end
  const auto run = run_engine(cfg, lines);
  INFO(failed_checks(run.report));
  REQUIRE(run.report.ok);
  CHECK(run.counters.very_late == 3);
  CHECK(run.counters.duplicates == 1);
  CHECK(run.counters.rerates == 2);

  const auto charges = charges_of(run.sink, "c1", "api_calls");
  REQUIRE(charges.size() == 3);
  CHECK(charges[1]->supersedes_charge_id == charges[0]->charge_id);
  CHECK(charges[1]->trigger == persistence::charge_trigger::rerate);
  CHECK(charges[1]->quantity == dec("14"));
  CHECK(charges[1]->amount() == dec("12")); // P1(14) = 10 + 4 x 0.5
  CHECK(charges[2]->supersedes_charge_id == charges[1]->charge_id);
  CHECK(charges[2]->amount() == dec("12.5"));

  const auto* standard = find_invoice(run.sink, "inv_c1_2024-01");
  const auto* c1 = find_invoice(run.sink, "inv_c1_2024-01_c1");
  const auto* c2 = find_invoice(run.sink, "inv_c1_2024-01_c2");
  REQUIRE(standard);
  REQUIRE(c1);
  REQUIRE(c2);
  CHECK(find_invoice(run.sink, "inv_c1_2024-01_c3") == nullptr);
  CHECK(standard->total == dec("11"));
  CHECK(c1->type == persistence::invoice_type::correction);
  CHECK(c1->corrects_invoice_id == std::optional<std::string>("inv_c1_2024-01"));
  CHECK(c1->total == dec("1"));
  CHECK(c1->line_items.at(0).quantity == dec("2"));
  CHECK(c2->total == dec("0.5"));
  // The first correction is issued when the watermark crosses the interval, the second at the
  // end of the input.
  for (const auto& k : run.sink.invoices()) {
    if (k.record.invoice_id == "inv_c1_2024-01_c1")
      CHECK(k.key.step == 17);
    if (k.record.invoice_id == "inv_c1_2024-01_c2")
      CHECK(k.key.step == actors::end_of_input_step);
  }
}

TEST_CASE("engine: a very late event that brings the first charge of a closed period "
          "issues its standard invoice",
          "[engine]") {
  const auto cfg = config::parse(small_config);
  const auto run = run_engine(cfg, {call("feb", "c2", "2024-02-03T00:00:00Z"),
                                    call("jan", "c1", "2024-01-20T00:00:00Z"),
                                    call("feb-next", "c2", "2024-02-04T00:00:00Z")});
  REQUIRE(run.report.ok);
  const auto* inv = find_invoice(run.sink, "inv_c1_2024-01");
  REQUIRE(inv);
  CHECK(inv->type == persistence::invoice_type::standard);
  CHECK(inv->total == dec("2"));
  CHECK(find_invoice(run.sink, "inv_c1_2024-01_c1") == nullptr);
}

TEST_CASE("engine: output is the same whatever the batch size and partition count", "[engine]") {
  for (std::uint64_t seed : {11u, 12u, 13u}) {
    const auto s = test::make_scenario(seed, seed * 7);
    const auto cfg = config::parse(s.config);
    const auto lines = test::texts(s);
    const auto reference = run_engine(cfg, lines);
    REQUIRE(reference.report.ok);
    const std::string expected = dump(reference.sink);
    const engine_options variants[] = {{7, 1}, {1, 1}, {7, 3}, {64, 8}, {1, 5}};
    for (const auto& v : variants) {
      INFO("seed " << seed << ", batch size " << v.batch_size << ", partitions " << v.partitions);
      const auto run = run_engine(cfg, lines, v);
      CHECK(run.report.json == reference.report.json);
      CHECK(dump(run.sink) == expected);
    }
  }
}

TEST_CASE("engine: a partition rebuilt from its store after a crash gives the same "
          "output",
          "[engine]") {
  for (std::uint64_t seed : {21u, 22u}) {
    const auto s = test::make_scenario(seed, seed + 1);
    const auto cfg = config::parse(s.config);
    const auto lines = test::texts(s);
    for (std::uint32_t partitions : {1u, 3u}) {
      const engine_options clean{7, partitions};
      const std::string expected = dump(run_engine(cfg, lines, clean).sink);
      for (std::uint64_t batch : {1u, 2u, 17u, 30u, 41u, 52u}) {
        INFO("seed " << seed << ", partitions " << partitions << ", crash in batch " << batch);
        auto crash = clean;
        crash.crash_partition = static_cast<std::uint32_t>(batch % partitions);
        crash.crash_batch = batch;
        const auto run = run_engine(cfg, lines, crash);
        CHECK(run.report.ok);
        CHECK(dump(run.sink) == expected);
      }
    }
  }
}

TEST_CASE("engine: random scenarios: invoices add up to the direct pricing of the "
          "deduplicated events, whatever the arrival order",
          "[engine]") {
  const test::scenario_knobs knobs[] = {
      {"1h", "1m", "1d"}, {"0s", "0s", "1d"}, {"2h", "1m", "6h"}, {"30m", "0s", "2d"}};
  for (std::uint64_t seed = 1; seed <= 8; ++seed) {
    const auto& k = knobs[seed % 4];
    const auto cfg = config::parse(test::scenario_config(k));
    for (std::uint64_t order = 0; order < 4; ++order) {
      const auto how = order == 3 ? test::arrival::shuffled : test::arrival::jittered;
      const auto s = test::make_scenario(seed, 1000 * seed + order, how);
      const auto lines = test::texts(s);
      INFO("seed " << seed << ", order " << order << ", lateness " << k.allowed_lateness);
      const auto run = run_engine(cfg, lines, {static_cast<std::size_t>(1 + order * 20), 2});
      INFO(failed_checks(run.report));
      CHECK(run.report.ok);
      const auto expected = test::price_directly(cfg, test::deduplicated(s.lines));
      CHECK(test::differences(billed(run.sink), expected) == "");
      // Every line is accounted for: accepted + duplicates + conflicts + rejected = received.
      const auto& counts = run.report.json["counts"];
      CHECK(counts["accepted"].get<std::uint64_t>() + counts["duplicates"].get<std::uint64_t>() +
                counts["conflicts"].get<std::uint64_t>() +
                counts["rejected"].get<std::uint64_t>() ==
            lines.size());
      CHECK(counts["rejected"].get<std::uint64_t>() == 8);
    }
  }
}
