// The store contract (persistence/store.hpp): every case runs against the memory store and the
// PostgreSQL store, which must behave the same. "Reopening" a store is what a restarted process
// does: for PostgreSQL a new store loads everything back from the database; the memory store is
// its own system of record, so reopening it gives the same store. PostgreSQL-only cases (the
// database's own guarantees) follow at the end.

#include "persistence/ids.hpp"
#include "persistence/json_format.hpp"
#include "persistence/memory_store.hpp"
#include "persistence/pg_schema.hpp"
#include "persistence/pg_store.hpp"
#include "support/pg_test_schema.hpp"

#include <catch2/catch.hpp>
#include <chrono>
#include <map>
#include <pqxx/pqxx>
#include <thread>

namespace {

namespace p = meterflow::persistence;
using meterflow::pricing::decimal;
using meterflow::pricing::timestamp;
using p::append_outcome;

timestamp at(const char* rfc3339) {
  return meterflow::pricing::parse_rfc3339(rfc3339).value();
}
decimal d(const char* text) {
  return decimal::parse(text).value();
}

// ---- the two stores -----------------------------------------------------------------------------

class backend {
public:
  virtual ~backend() = default;
  // The partition's event store as a (re)started process opens it; references to a previously
  // opened one of the same partition are invalid afterwards.
  virtual p::event_store& open_events(int partition) = 0;
  virtual p::record_store& open_records() = 0;
};

class memory_backend final : public backend {
public:
  p::event_store& open_events(int partition) override {
    auto& s = events_[partition];
    if (!s)
      s = std::make_unique<p::memory_store>();
    return *s;
  }
  p::record_store& open_records() override {
    if (!records_)
      records_ = p::make_memory_record_store();
    return *records_;
  }

private:
  std::map<int, std::unique_ptr<p::memory_store>> events_;
  std::unique_ptr<p::record_store> records_;
};

class pg_backend final : public backend {
public:
  explicit pg_backend(const std::string& server) : schema_(server) {}
  p::event_store& open_events(int partition) override {
    auto& s = events_[partition];
    s.reset();
    s = p::pg_event_store::load(schema_.conninfo(), partition);
    return *s;
  }
  p::record_store& open_records() override {
    records_.reset();
    records_ = p::make_pg_record_store(schema_.conninfo());
    return *records_;
  }

private:
  meterflow::test::pg_test_schema schema_;
  std::map<int, std::unique_ptr<p::pg_event_store>> events_;
  std::unique_ptr<p::record_store> records_;
};

// Runs `body` once per store, each in its own SECTION on fresh, empty storage.
template <class Body>
void on_every_store(Body&& body) {
  SECTION("memory") {
    memory_backend b;
    body(b);
  }
  SECTION("postgresql") {
    const auto server = meterflow::test::pg_server();
    if (!server) {
      WARN("METERFLOW_TEST_PG is not set: the PostgreSQL store is not tested");
      return;
    }
    pg_backend b(*server);
    body(b);
  }
}

// ---- sample data --------------------------------------------------------------------------------

p::event ev(const char* customer, const char* id, const char* time, const char* value = "1",
            const char* type = "api_call", const char* metadata = "") {
  p::event e;
  e.customer_id = customer;
  e.event_id = id;
  e.event_type = type;
  e.event_time = at(time);
  e.value = d(value);
  e.metadata = metadata;
  return e;
}

void check_same_event(const p::event_view& a, const p::event& b) {
  CHECK(a.customer_id == b.customer_id);
  CHECK(a.event_id == b.event_id);
  CHECK(a.event_type == b.event_type);
  CHECK(a.event_time == b.event_time);
  CHECK(a.value == b.value);
  CHECK(a.metadata == b.metadata); // byte for byte
}

std::vector<std::uint64_t> positions(std::uint64_t first, std::size_t n) {
  std::vector<std::uint64_t> out;
  for (std::size_t i = 0; i < n; ++i)
    out.push_back(first + i);
  return out;
}

p::aggregate_record aggregate(const char* customer, const char* metric, const char* window_start,
                              std::uint32_t revision, p::aggregate_kind kind, const char* value,
                              std::vector<std::string> event_ids) {
  p::aggregate_record a;
  a.customer_id = customer;
  a.metric = metric;
  a.window_start = at(window_start);
  a.window_end = a.window_start + 3'600'000'000;
  a.revision = revision;
  a.aggregation_id =
      p::content_id({"aggregate", customer, metric, window_start, std::to_string(revision)});
  a.kind = kind;
  a.is_final = kind != p::aggregate_kind::provisional;
  a.value = d(value);
  a.event_count = event_ids.size();
  a.event_ids = std::move(event_ids);
  return a;
}

p::charge_record charge(const char* customer, const char* window_start, const char* quantity,
                        const char* before, const char* amount,
                        const p::charge_record* supersedes = nullptr) {
  p::charge_record c;
  c.customer_id = customer;
  c.metric = "api_calls";
  c.window_start = at(window_start);
  c.window_end = c.window_start + 3'600'000'000;
  c.supersedes_charge_id =
      supersedes ? std::optional<std::string>(supersedes->charge_id) : std::nullopt;
  c.charge_id = p::content_id(
      {"charge", customer, c.metric, window_start, supersedes ? supersedes->charge_id : ""});
  c.aggregation_id = p::content_id({"aggregate", customer, c.metric, window_start, "1"});
  c.quantity = d(quantity);
  c.trigger = supersedes ? p::charge_trigger::rerate : p::charge_trigger::window_final;
  auto& calc = c.calculation;
  calc.price_book_id = "pb_tiered";
  calc.currency = "USD";
  calc.version = supersedes ? "v2" : "v1";
  calc.effective_from = at("2024-01-01T00:00:00Z");
  if (supersedes)
    calc.effective_until = at("2024-02-01T00:00:00Z");
  calc.rounding = meterflow::pricing::rounding_mode::half_up;
  calc.model = meterflow::pricing::model_kind::tiered;
  calc.cumulative_before = d(before);
  calc.cumulative_after = decimal::add(d(before), d(quantity)).value();
  calc.price_before = d("100");
  calc.price_after = decimal::add(d("100"), d(amount)).value();
  calc.amount = d(amount);
  calc.tiers = {{2, d(quantity), d("0.08"), d("0.25"), d(amount)}};
  calc.formula = "tiered pb_tiered/\"v1\": P(C) - P(B) = " + std::string(amount);
  c.source_event_ids = {"e-1", "e\"2", "e\\3"};
  c.source_event_count = 3;
  return c;
}

p::invoice_record invoice(const char* id, const char* customer, const char* month,
                          const char* total, const p::invoice_record* corrects = nullptr,
                          const char* status = "issued") {
  p::invoice_record i;
  i.invoice_id = id;
  i.type = corrects ? p::invoice_type::correction : p::invoice_type::standard;
  if (corrects)
    i.corrects_invoice_id = corrects->invoice_id;
  i.customer_id = customer;
  i.period = meterflow::pricing::parse_period(month).value();
  i.currency = "USD";
  i.status = status;
  i.line_items = {{p::content_id({"line", id, "api_calls"}), "api_calls", d("1234.5"), d(total),
                   p::pack_ids({"charge-a", "charge-b"})},
                  {p::content_id({"line", id, "gb_stored"}), "gb_stored", d("0"), d("0"), {}}};
  i.subtotal = d(total);
  i.credits_applied = d("0");
  i.total = d(total);
  i.credit_reasons = {"goodwill \"Q1\""};
  return i;
}

std::vector<std::string> lines_of(const std::vector<p::charge_record>& charges) {
  std::vector<std::string> out;
  for (const auto& c : charges)
    out.push_back(p::to_line(p::to_json(c)));
  return out;
}

std::vector<std::string> lines_of(const std::vector<p::aggregate_record>& aggregates) {
  std::vector<std::string> out;
  for (const auto& a : aggregates)
    out.push_back(p::to_line(p::to_json(a)));
  return out;
}

// The invoice as recorded, with everything the JSON form leaves out.
std::string full_line(const p::invoice_record& i) {
  auto j = p::to_json(i);
  j["credit_reasons"] = i.credit_reasons;
  j["subtotal_exact"] = i.subtotal.to_string();
  j["total_exact"] = i.total.to_string();
  j["period_id"] = meterflow::pricing::period_id(i.period);
  for (std::size_t k = 0; k < i.line_items.size(); ++k)
    j["line_items"][k]["amount_exact"] = i.line_items[k].amount.to_string();
  return p::to_line(j);
}

std::vector<std::string> invoice_lines(const std::vector<p::invoice_record>& invoices) {
  std::vector<std::string> out;
  for (const auto& i : invoices)
    out.push_back(full_line(i));
  return out;
}

} // namespace

// ---- raw events ---------------------------------------------------------------------------------

TEST_CASE("events: accepted, duplicate and conflicting copies", "[persistence][store]") {
  on_every_store([](backend& b) {
    p::event_store& s = b.open_events(0);
    const auto first = s.append_batch(
        {ev("c1", "e1", "2024-01-01T00:00:00Z"),
         ev("c1", "e2", "2024-01-01T00:00:01Z", "2.5", "storage", R"({"region":"eu"})"),
         ev("c1", "e1", "2024-01-01T00:00:00Z", "1.000"), // same value: a duplicate in the batch
         ev("c1", "e1", "2024-01-01T00:00:00Z", "2"),     // another value: a conflict
         ev("c2", "e1", "2024-01-01T00:00:00Z")},         // same id, other customer
        positions(1, 5));
    CHECK(first == std::vector<append_outcome>{append_outcome::accepted, append_outcome::accepted,
                                               append_outcome::duplicate, append_outcome::conflict,
                                               append_outcome::accepted});
    REQUIRE(s.size() == 3);

    const auto second = s.append_batch(
        {ev("c1", "e2", "2024-01-01T00:00:01Z", "2.5", "storage", R"({"region":"eu"})"),
         ev("c1", "e2", "2024-01-01T00:00:01Z", "2.5", "storage", R"({"region":"us"})"),
         ev("c1", "e2", "2024-01-01T00:00:01Z", "2.5", "storage"), // metadata absent
         ev("c1", "e2", "2024-01-01T00:00:02Z", "2.5", "storage", R"({"region":"eu"})"),
         ev("c1", "e2", "2024-01-01T00:00:01Z", "2.5", "login", R"({"region":"eu"})"),
         ev("c1", "e3", "2024-01-01T00:00:03Z", "1", "api_call", "{}"), // {} is present
         ev("c1", "e3", "2024-01-01T00:00:03Z", "1", "api_call")},      // ... so a conflict
        positions(6, 7));
    CHECK(second == std::vector<append_outcome>{append_outcome::duplicate, append_outcome::conflict,
                                                append_outcome::conflict, append_outcome::conflict,
                                                append_outcome::conflict, append_outcome::accepted,
                                                append_outcome::conflict});
    REQUIRE(s.size() == 4);
    // The first accepted version stands.
    check_same_event(
        s.at(1), ev("c1", "e2", "2024-01-01T00:00:01Z", "2.5", "storage", R"({"region":"eu"})"));
    check_same_event(s.at(3), ev("c1", "e3", "2024-01-01T00:00:03Z", "1", "api_call", "{}"));
    CHECK(s.events_of("c1") == std::vector<std::uint32_t>{0, 1, 3});
    CHECK(s.events_of("c2") == std::vector<std::uint32_t>{2});
    CHECK(s.events_of("nobody").empty());
    CHECK(s.event_times_of("c1") == std::vector<meterflow::pricing::timestamp>{s.at(0).event_time,
                                                                               s.at(1).event_time,
                                                                               s.at(3).event_time});
    CHECK(s.event_times_of("nobody").empty());
  });
}

TEST_CASE("events: source positions, and replay gives the same events in the same order",
          "[persistence][store]") {
  // Canonical metadata the way the parser writes it: sorted keys, raw UTF-8, minimal escapes,
  // numbers beyond the decimal range in exponent form, an escaped NUL.
  const char* const metadata[] = {
      R"({"a":{"c":null,"d":false},"b":[1,2.5,0]})",
      "{\"\":4,\"Z\":3,\"z\":2,\"\xc3\xa9\":1}",
      "{\"s\":\"q\\\"b\\\\s/t\\tn\\nc\\u0001d\x7f\xe2\x80\xa8\"}",
      R"({"a":1e99999999999999999999,"b":-1.2e-100000000000000000001,"c":1e-400})",
      R"({"nul":"a\u0000b"})",
  };
  on_every_store([&](backend& b) {
    {
      p::event_store& s = b.open_events(0);
      std::vector<p::event> batch;
      for (int i = 0; i < 5; ++i)
        batch.push_back(ev("c1", ("m" + std::to_string(i)).c_str(), "2024-01-31T23:59:59.5Z",
                           "0.000000000001", "storage", metadata[i]));
      s.append_batch(std::move(batch), {100, 101, 102, 103, 104});
      s.append_batch(
          {ev("c3", "x", "2024-02-01T00:00:00Z", "-99999999999999999999999999.5"),
           ev("c1", "m0", "2024-01-31T23:59:59.5Z", "0.000000000001", "storage", metadata[0]),
           ev("c1", "late", "1970-01-01T00:00:00Z")},
          {205, 206, 207});
      b.open_events(1).append_batch({ev("c2", "y", "9999-12-31T23:59:59.999999Z", "7")}, {1});
    }

    const std::vector<p::event> expected = {
        ev("c1", "m0", "2024-01-31T23:59:59.5Z", "0.000000000001", "storage", metadata[0]),
        ev("c1", "m1", "2024-01-31T23:59:59.5Z", "0.000000000001", "storage", metadata[1]),
        ev("c1", "m2", "2024-01-31T23:59:59.5Z", "0.000000000001", "storage", metadata[2]),
        ev("c1", "m3", "2024-01-31T23:59:59.5Z", "0.000000000001", "storage", metadata[3]),
        ev("c1", "m4", "2024-01-31T23:59:59.5Z", "0.000000000001", "storage", metadata[4]),
        ev("c3", "x", "2024-02-01T00:00:00Z", "-99999999999999999999999999.5"),
        ev("c1", "late", "1970-01-01T00:00:00Z")};
    const std::vector<std::uint64_t> expected_positions = {100, 101, 102, 103, 104, 205, 207};

    p::event_store& s = b.open_events(0);
    REQUIRE(s.size() == expected.size());
    for (std::uint32_t i = 0; i < expected.size(); ++i) {
      INFO("event " << i);
      check_same_event(s.at(i), expected[i]);
      CHECK(s.source_position(i) == expected_positions[i]);
    }
    CHECK(s.events_of("c1") == std::vector<std::uint32_t>{0, 1, 2, 3, 4, 6});
    CHECK(s.events_of("c3") == std::vector<std::uint32_t>{5});
    CHECK(s.events_of("c2").empty()); // partition 1's customer
    // Their times, position for position (a re-rate scans these).
    for (const char* customer : {"c1", "c2", "c3"}) {
      INFO(customer);
      const auto& indexes = s.events_of(customer);
      const auto& times = s.event_times_of(customer);
      REQUIRE(times.size() == indexes.size());
      for (std::size_t i = 0; i < indexes.size(); ++i)
        CHECK(times[i] == s.at(indexes[i]).event_time);
    }

    // Dedup continues over the reloaded history, and appending continues its order.
    const auto again = s.append_batch(
        {ev("c1", "m4", "2024-01-31T23:59:59.5Z", "0.000000000001", "storage", metadata[4]),
         ev("c1", "m3", "2024-01-31T23:59:59.5Z", "0.000000000001", "storage", metadata[2]),
         ev("c1", "new", "2024-02-02T00:00:00Z")},
        {300, 301, 302});
    CHECK(again == std::vector<append_outcome>{append_outcome::duplicate, append_outcome::conflict,
                                               append_outcome::accepted});
    CHECK(b.open_events(0).size() == expected.size() + 1);
    CHECK(b.open_events(0).source_position(static_cast<std::uint32_t>(expected.size())) == 302);

    p::event_store& other = b.open_events(1);
    REQUIRE(other.size() == 1);
    check_same_event(other.at(0), ev("c2", "y", "9999-12-31T23:59:59.999999Z", "7"));
  });
}

TEST_CASE("events: a batch of duplicates stores nothing", "[persistence][store]") {
  on_every_store([](backend& b) {
    p::event_store& s = b.open_events(0);
    s.append_batch({ev("c1", "e1", "2024-01-01T00:00:00Z")}, {1});
    const auto outcomes = s.append_batch(
        {ev("c1", "e1", "2024-01-01T00:00:00Z"), ev("c1", "e1", "2024-01-01T00:00:01Z")}, {2, 3});
    CHECK(outcomes ==
          std::vector<append_outcome>{append_outcome::duplicate, append_outcome::conflict});
    CHECK(s.append_batch({}, {}).empty());
    CHECK(b.open_events(0).size() == 1);
  });
}

TEST_CASE("events: a stored event's view stays valid while the store grows",
          "[persistence][store]") {
  // Window stages keep pointers to stored event ids across later appends.
  on_every_store([](backend& b) {
    p::event_store& s = b.open_events(0);
    s.append_batch({ev("c1", "first-event-id-longer-than-sso", "2024-01-01T00:00:00Z", "2.5",
                       "storage", R"({"region":"eu"})")},
                   {1});
    const p::event_view first = s.at(0);
    const char* id = first.event_id.data();
    std::vector<p::event> more;
    std::vector<std::uint64_t> at;
    for (int i = 0; i < 3000; ++i) {
      const std::string n = std::to_string(i);
      more.push_back(ev(("c" + std::to_string(i % 7)).c_str(), ("e" + n).c_str(),
                        "2024-01-01T01:00:00Z", "1", i % 2 ? "api_call" : "storage",
                        (R"({"n":)" + n + "}").c_str()));
      at.push_back(2 + static_cast<std::uint64_t>(i));
    }
    s.append_batch(std::move(more), at);
    REQUIRE(s.size() == 3001);
    CHECK(first.event_id.data() == id);
    CHECK(std::string(id) == "first-event-id-longer-than-sso"); // NUL-terminated in place
    check_same_event(first, ev("c1", "first-event-id-longer-than-sso", "2024-01-01T00:00:00Z",
                               "2.5", "storage", R"({"region":"eu"})"));
    check_same_event(s.at(2000),
                     ev("c4", "e1999", "2024-01-01T01:00:00Z", "1", "api_call", R"({"n":1999})"));
    CHECK(s.at(2000).event_id.data()[5] == '\0');
    // Every key is still found: the same events again are all duplicates.
    std::vector<p::event> again;
    for (int i = 0; i < 3000; i += 499)
      again.push_back(ev(("c" + std::to_string(i % 7)).c_str(), ("e" + std::to_string(i)).c_str(),
                         "2024-01-01T01:00:00Z", "1", i % 2 ? "api_call" : "storage",
                         (R"({"n":)" + std::to_string(i) + "}").c_str()));
    const auto outcomes = s.append_batch(std::move(again), positions(9000, 7));
    CHECK(outcomes == std::vector<append_outcome>(7, append_outcome::duplicate));
  });
}

// ---- records ------------------------------------------------------------------------------------

TEST_CASE("records: aggregate revisions of a window", "[persistence][store]") {
  on_every_store([](backend& b) {
    using k = p::aggregate_kind;
    const auto r0 =
        aggregate("c1", "api_calls", "2024-01-01T10:00:00Z", 0, k::provisional, "2", {"e1", "e2"});
    const auto other_window =
        aggregate("c1", "api_calls", "2024-01-01T11:00:00Z", 0, k::final, "1", {"e9"});
    const auto other_customer =
        aggregate("c2", "api_calls", "2024-01-01T10:00:00Z", 0, k::final, "5", {});
    const auto r1 = aggregate("c1", "api_calls", "2024-01-01T10:00:00Z", 1, k::final, "3",
                              {"e1", "e2", "e\"3"});
    const auto r2 = aggregate("c1", "api_calls", "2024-01-01T10:00:00Z", 2, k::reaggregated,
                              "1234.000000000001", {"e0", "e1", "e2", "e\"3"});
    const p::record_batch first{{r0, other_window, other_customer}, {}, {}, {}, {}};
    const p::record_batch second{{r1, r2}, {}, {}, {}, {}};
    b.open_records().append(first);
    b.open_records().append(second);
    // Idempotent by aggregation_id: a replay changes nothing.
    b.open_records().append(first);
    b.open_records().append(second);

    p::record_store& s = b.open_records();
    CHECK(lines_of(s.aggregate_revisions("c1", "api_calls", at("2024-01-01T10:00:00Z"))) ==
          lines_of(std::vector{r0, r1, r2}));
    CHECK(lines_of(s.aggregate_revisions("c1", "api_calls", at("2024-01-01T11:00:00Z"))) ==
          lines_of(std::vector{other_window}));
    CHECK(s.aggregate_revisions("c1", "gb_stored", at("2024-01-01T10:00:00Z")).empty());
  });
}

TEST_CASE("records: charges, supersession and current charges", "[persistence][store]") {
  on_every_store([](backend& b) {
    const auto w1 = charge("c1", "2024-01-01T10:00:00Z", "1000", "0", "100");
    const auto w2 = charge("c1", "2024-01-01T11:00:00Z", "234", "1000", "18.72");
    const auto w1_rerated = charge("c1", "2024-01-01T10:00:00Z", "1001", "0", "100.08", &w1);
    const auto w1_again =
        charge("c1", "2024-01-01T10:00:00Z", "999", "0", "-0.000000000001", &w1_rerated);
    const auto c2 = charge("c2", "2024-01-01T10:00:00Z", "5", "0", "0.5");
    const p::record_batch first{{}, {w1, w2}, {}, {}, {}};
    const p::record_batch second{{}, {w1_rerated, w1_again, c2}, {}, {}, {}};
    b.open_records().append(first);
    b.open_records().append(second);
    b.open_records().append(first); // a replay
    b.open_records().append(second);

    p::record_store& s = b.open_records();
    CHECK(lines_of(s.charges()) == lines_of(std::vector{w1, w2, w1_rerated, w1_again, c2}));
    CHECK(lines_of(s.current_charges("c1", "api_calls")) == lines_of(std::vector{w1_again, w2}));
    CHECK(lines_of(s.current_charges("c2", "api_calls")) == lines_of(std::vector{c2}));
    CHECK(s.current_charges("c1", "gb_stored").empty());

    // A charge superseding one that is not stored, or one already superseded, is refused and
    // nothing of its batch is stored.
    const auto agg =
        aggregate("c9", "api_calls", "2024-01-01T10:00:00Z", 0, p::aggregate_kind::final, "1", {});
    auto unknown = charge("c9", "2024-01-01T10:00:00Z", "1", "0", "1", &w2);
    unknown.supersedes_charge_id = "no-such-charge";
    CHECK_THROWS_AS(s.append({{agg}, {unknown}, {}, {}, {}}), std::invalid_argument);
    auto fork = charge("c1", "2024-01-01T10:00:00Z", "7", "0", "0.7", &w1);
    fork.charge_id = "a-second-successor-of-w1";
    CHECK_THROWS_AS(b.open_records().append({{agg}, {fork}, {}, {}, {}}), std::invalid_argument);
    p::record_store& after = b.open_records();
    CHECK(after.aggregate_revisions("c9", "api_calls", at("2024-01-01T10:00:00Z")).empty());
    CHECK(after.charges().size() == 5);
  });
}

TEST_CASE("records: invoices and their corrections", "[persistence][store]") {
  on_every_store([](backend& b) {
    const auto jan = invoice("inv_c1_2024-01", "c1", "2024-01", "98.72");
    const auto jan_c1 = invoice("inv_c1_2024-01_c1", "c1", "2024-01", "-0.08", &jan);
    const auto jan_c2 = invoice("inv_c1_2024-01_c2", "c1", "2024-01", "1.5", &jan);
    const auto feb = invoice("inv_c1_2024-02", "c1", "2024-02", "10");
    const auto other = invoice("inv_c2_2024-01", "c2", "2024-01", "3");
    b.open_records().append({{}, {}, {}, {jan, other}, {}});
    b.open_records().append({{}, {}, {}, {jan_c1, feb, jan_c2}, {}});
    b.open_records().append({{}, {}, {}, {jan, other, jan_c1}, {}}); // a replay

    p::record_store& s = b.open_records();
    const auto january = meterflow::pricing::parse_period("2024-01").value();
    CHECK(invoice_lines(s.invoices_of("c1", january)) ==
          invoice_lines(std::vector{jan, jan_c1, jan_c2}));
    CHECK(invoice_lines(s.invoices_of("c2", january)) == invoice_lines(std::vector{other}));
    CHECK(s.invoices_of("c3", january).empty());
    REQUIRE(s.invoice("inv_c1_2024-01_c1"));
    CHECK(full_line(*s.invoice("inv_c1_2024-01_c1")) == full_line(jan_c1));
    CHECK(!s.invoice("inv_none"));

    // The ledger booked every issued invoice once, replays included.
    std::vector<std::string> booked;
    for (const auto& e : s.ledger())
      booked.push_back(e.invoice_id + " " + e.kind + " " + e.amount.to_string());
    CHECK(booked ==
          std::vector<std::string>{"inv_c1_2024-01 invoice 98.72", "inv_c2_2024-01 invoice 3",
                                   "inv_c1_2024-01_c1 invoice -0.08", "inv_c1_2024-02 invoice 10",
                                   "inv_c1_2024-01_c2 invoice 1.5"});

    // A correction of an invoice that is not stored is refused, with its whole batch.
    auto orphan = invoice("inv_c4_2024-01_c1", "c4", "2024-01", "1", &jan);
    orphan.corrects_invoice_id = "inv_c4_2024-01";
    const auto fine = invoice("inv_c5_2024-01", "c5", "2024-01", "1");
    CHECK_THROWS_AS(s.append({{}, {}, {}, {fine, orphan}, {}}), std::invalid_argument);
    CHECK_THROWS_AS(
        b.open_records().append(
            {{}, {}, {}, {invoice("inv_x", "c5", "2024-01", "1", nullptr, "paid")}, {}}),
        std::invalid_argument);
    CHECK(!b.open_records().invoice("inv_c5_2024-01"));
    CHECK(b.open_records().ledger().size() == 5);
  });
}

TEST_CASE("records: invoice status events and the current status", "[persistence][store]") {
  on_every_store([](backend& b) {
    const auto issued = invoice("inv_c1_2024-01", "c1", "2024-01", "98.72");
    const auto draft = invoice("inv_c2_2024-01", "c2", "2024-01", "5", nullptr, "draft");
    b.open_records().append({{}, {}, {}, {issued, draft}, {}});

    p::record_store& s = b.open_records();
    CHECK(s.current_status("inv_c1_2024-01") == "issued");
    CHECK(s.current_status("inv_c2_2024-01") == "draft");
    CHECK(!s.current_status("inv_none"));

    s.append_status({"inv_c1_2024-01", "paid", "finance", "wire received"});
    CHECK(b.open_records().current_status("inv_c1_2024-01") == "paid");
    // Content never changes: the invoice reads as recorded.
    CHECK(b.open_records().invoice("inv_c1_2024-01")->status == "issued");

    p::record_store& r = b.open_records();
    CHECK_THROWS_AS(r.append_status({"inv_c1_2024-01", "void", "finance", "oops"}),
                    std::invalid_argument);
    CHECK_THROWS_AS(r.append_status({"inv_c2_2024-01", "paid", "finance", "early"}),
                    std::invalid_argument);
    CHECK_THROWS_AS(r.append_status({"inv_none", "issued", "finance", ""}), std::invalid_argument);
    CHECK_THROWS_AS(r.append_status({"inv_c2_2024-01", "sent", "finance", ""}),
                    std::invalid_argument);
    CHECK(r.current_status("inv_c1_2024-01") == "paid");

    r.append_status({"inv_c2_2024-01", "issued", "billing", "period final"});
    // Voiding needs a reason, and every change an actor; refusals store nothing.
    CHECK_THROWS_WITH(r.append_status({"inv_c2_2024-01", "void", "finance", ""}),
                      "invoice status: voiding inv_c2_2024-01 needs a reason");
    CHECK_THROWS_WITH(r.append_status({"inv_c2_2024-01", "paid", "", "wire"}),
                      "invoice status: a status change needs an actor");
    CHECK(r.current_status("inv_c2_2024-01") == "issued");
    r.append_status({"inv_c2_2024-01", "void", "finance", "duplicate account"});
    CHECK(b.open_records().current_status("inv_c2_2024-01") == "void");

    std::vector<std::string> booked;
    for (const auto& e : b.open_records().ledger())
      booked.push_back(e.invoice_id + " " + e.customer_id + " " + e.currency + " " + e.kind + " " +
                       e.amount.to_string());
    CHECK(booked == std::vector<std::string>{"inv_c1_2024-01 c1 USD invoice 98.72",
                                             "inv_c2_2024-01 c2 USD invoice 5",
                                             "inv_c2_2024-01 c2 USD reversal -5"});
  });
}

TEST_CASE("records: price book versions in publication order", "[persistence][store]") {
  on_every_store([](backend& b) {
    const p::published_version v1{"pb_std", "USD", "v1",
                                  R"({"version":"v1","effective_from":"2024-01-01T00:00:00Z",)"
                                  R"("effective_until":"2024-01-15T00:00:00Z","prices":{}})"};
    const p::published_version v2{"pb_std", "USD", "v2",
                                  R"({"version":"v2","effective_from":"2024-01-15T00:00:00Z",)"
                                  R"("effective_until":null,"prices":{"api_calls":)"
                                  R"({"model":"flat","unit_price":"0.10"}}})"};
    // A later version may be published over an earlier interval (a price fix).
    const p::published_version v0{"pb_std", "USD", "v0-fix",
                                  R"({"version":"v0-fix","effective_from":"2024-01-01T00:00:00Z",)"
                                  R"("effective_until":null,"prices":{}})"};
    const p::published_version eur{"pb_eur", "EUR", "v1", R"({"version":"v1","prices":{}})"};
    {
      p::record_store& s = b.open_records();
      s.publish(v1);
      s.publish(eur);
      s.publish(v2);
      s.publish(v0);
      s.publish(v2); // the same definition again changes nothing
    }
    p::record_store& s = b.open_records();
    auto names = [&](const std::string& book) {
      std::vector<std::string> out;
      for (const auto& v : s.versions(book))
        out.push_back(v.price_book_id + "/" + v.version + " " + v.currency + " " +
                      v.definition_json);
      return out;
    };
    CHECK(names("pb_std") == std::vector<std::string>{
                                 "pb_std/v1 USD " + v1.definition_json,
                                 "pb_std/v2 USD " + v2.definition_json,
                                 "pb_std/v0-fix USD " + v0.definition_json,
                             });
    CHECK(names("pb_eur") == std::vector<std::string>{"pb_eur/v1 EUR " + eur.definition_json});
    CHECK(names("pb_none").empty());

    // A published version never changes, and a book keeps its currency.
    auto changed = v2;
    changed.definition_json = R"({"version":"v2","prices":{}})";
    CHECK_THROWS_AS(s.publish(changed), std::invalid_argument);
    auto other_currency = v2;
    other_currency.version = "v3";
    other_currency.currency = "EUR";
    CHECK_THROWS_AS(s.publish(other_currency), std::invalid_argument);
    CHECK(b.open_records().versions("pb_std").size() == 3);
  });
}

TEST_CASE("records: unpriced windows and rejected lines", "[persistence][store]") {
  on_every_store([](backend& b) {
    using meterflow::pricing::unpriced_reason;
    const p::unpriced_window u1{"c1",
                                "api_calls",
                                at("2024-01-01T10:00:00Z"),
                                at("2024-01-01T11:00:00Z"),
                                d("3"),
                                unpriced_reason::no_version,
                                "pb_std"};
    auto u2 = u1; // listed again with a changed quantity
    u2.quantity = d("4.5");
    const p::unpriced_window u3{"c9",
                                "api_calls",
                                at("2024-01-01T10:00:00Z"),
                                at("2024-01-01T11:00:00Z"),
                                d("1"),
                                unpriced_reason::no_price_book,
                                ""};
    const p::rejected_line bad{7, "bad_json", "line: not a JSON object", "{\"a\":"};
    const p::rejected_line binary{9, "bad_json", "line: not UTF-8",
                                  std::string("\xff\xfe\0x\t\\\n", 7)};
    const p::rejected_line conflict{12, "event_id_conflict", "event c1/e1: payload differs",
                                    R"({"event_id":"e1"})"};
    b.open_records().append({{}, {}, {u1, u2}, {}, {bad, binary}});
    b.open_records().append({{}, {}, {u3, u1}, {}, {conflict, bad}}); // u1, bad again

    p::record_store& s = b.open_records();
    std::vector<std::string> unpriced;
    for (const auto& u : s.unpriced())
      unpriced.push_back(p::to_line(p::to_json(u)));
    CHECK(unpriced == std::vector<std::string>{p::to_line(p::to_json(u1)),
                                               p::to_line(p::to_json(u2)),
                                               p::to_line(p::to_json(u3))});
    const auto rejected = s.rejected();
    const std::vector<p::rejected_line> expected = {bad, binary, conflict};
    REQUIRE(rejected.size() == expected.size());
    for (std::size_t i = 0; i < expected.size(); ++i) {
      const auto& want = expected[i];
      CHECK(rejected[i].line == want.line);
      CHECK(rejected[i].reason == want.reason);
      CHECK(rejected[i].detail == want.detail);
      CHECK(rejected[i].raw == want.raw); // exact bytes
    }
  });
}

TEST_CASE("records: re-rate runs, in the order recorded, once each", "[persistence][store]") {
  on_every_store([](backend& b) {
    const p::rerate_run first{"run-1",
                              "manual",
                              "dispute 42",
                              R"({"customers":"c1","from":"2024-01"})",
                              R"({"changes":[{"customer_id":"c1","delta":"0.13"}]})",
                              {"ch-2", "ch-3"},
                              {"inv_c1_2024-01_c1"}};
    const p::rerate_run second{
        "run-2", "manual", "check", R"({"customers":"all"})", R"({"changes":[]})", {}, {}};
    p::record_batch batch;
    batch.rerate_runs = {first};
    b.open_records().append(batch);
    batch.rerate_runs = {second, first}; // first again: stored once
    b.open_records().append(batch);
    const auto runs = b.open_records().rerate_runs();
    REQUIRE(runs.size() == 2);
    for (const auto& [got, want] : {std::pair{runs[0], first}, std::pair{runs[1], second}}) {
      CHECK(got.rerate_run_id == want.rerate_run_id);
      CHECK(got.trigger == want.trigger);
      CHECK(got.reason == want.reason);
      CHECK(nlohmann::json::parse(got.scope_json) == nlohmann::json::parse(want.scope_json));
      CHECK(nlohmann::json::parse(got.result_json) == nlohmann::json::parse(want.result_json));
      CHECK(got.superseding_charge_ids == want.superseding_charge_ids);
      CHECK(got.correction_invoice_ids == want.correction_invoice_ids);
    }
  });
}

TEST_CASE("records: service progress and watermark advances, per source", "[persistence][store]") {
  on_every_store([](backend& b) {
    CHECK_FALSE(b.open_records().progress("kafka:t:0"));
    CHECK(b.open_records().watermark_advances("kafka:t:0").empty());
    p::record_batch batch;
    batch.progress = {{"kafka:t:0", 10, false}, {"kafka:t:1", 7, false}};
    batch.watermark_advances = {{"kafka:t:1", 7, at("2024-01-01T10:00:00Z")}};
    b.open_records().append(batch);
    batch.progress = {{"kafka:t:0", 25, true}};
    batch.watermark_advances = {{"kafka:t:1", 3, at("2024-01-01T09:00:00Z")}};
    b.open_records().append(batch);

    const auto& records = b.open_records();
    const auto p0 = records.progress("kafka:t:0");
    REQUIRE(p0);
    CHECK(p0->position == 25); // the latest one appended
    CHECK(p0->finished);
    const auto p1 = records.progress("kafka:t:1");
    REQUIRE(p1);
    CHECK(p1->position == 7);
    CHECK_FALSE(p1->finished);
    const auto advances = records.watermark_advances("kafka:t:1");
    REQUIRE(advances.size() == 2); // by position
    CHECK(advances[0].position == 3);
    CHECK(advances[0].watermark == at("2024-01-01T09:00:00Z"));
    CHECK(advances[1].position == 7);
    CHECK(advances[1].watermark == at("2024-01-01T10:00:00Z"));
    CHECK(records.watermark_advances("kafka:t:0").empty());
  });
}

// ---- PostgreSQL only ----------------------------------------------------------------------------

namespace {

std::optional<std::string> pg_or_skip() {
  auto server = meterflow::test::pg_server();
  if (!server)
    WARN("METERFLOW_TEST_PG is not set: skipped");
  return server;
}

} // namespace

TEST_CASE("postgresql: append-only tables refuse UPDATE, DELETE and TRUNCATE",
          "[persistence][postgresql]") {
  const auto server = pg_or_skip();
  if (!server)
    return;
  meterflow::test::pg_test_schema schema(*server);
  const auto w1 = charge("c1", "2024-01-01T10:00:00Z", "1000", "0", "100");
  p::make_pg_record_store(schema.conninfo())
      ->append({{}, {w1}, {}, {invoice("inv_c1_2024-01", "c1", "2024-01", "98.72")}, {}});
  p::pg_event_store::load(schema.conninfo(), 0)
      ->append_batch({ev("c1", "e1", "2024-01-01T10:00:00Z")}, {1});

  pqxx::connection c(schema.conninfo());
  auto refused = [&](const std::string& sql) {
    INFO(sql);
    pqxx::work tx(c);
    CHECK_THROWS_AS(tx.exec(sql), pqxx::sql_error);
  };
  refused("UPDATE rated_charges SET amount = 0");
  refused("DELETE FROM rated_charges");
  refused("TRUNCATE rated_charges CASCADE");
  refused("UPDATE telemetry_events SET value = 2");
  refused("DELETE FROM telemetry_events WHERE event_id = 'e1'");
  for (const char* table :
       {"telemetry_events", "source_offsets", "aggregated_usage", "price_books",
        "price_book_versions", "rated_charges", "unpriced_windows", "rejected_events", "invoices",
        "invoice_line_items", "invoice_status_events", "ledger_entries", "rerate_runs",
        "serve_progress", "watermark_advances", "schema_migrations"})
    refused(std::string("DELETE FROM ") + table); // refused even when it would delete nothing

  pqxx::read_transaction tx(c);
  CHECK(tx.exec1("SELECT amount::text FROM rated_charges")[0].as<std::string>() ==
        "100.000000000000");
  CHECK(tx.exec1("SELECT count(*) FROM telemetry_events")[0].as<int>() == 1);
}

TEST_CASE("postgresql: a failed batch counts nothing as seen", "[persistence][postgresql]") {
  const auto server = pg_or_skip();
  if (!server)
    return;
  meterflow::test::pg_test_schema schema(*server);
  auto store = p::pg_event_store::load(schema.conninfo(), 0);
  store->append_batch({ev("c1", "e1", "2024-01-01T10:00:00Z")}, {1});
  // Another writer (here: a store for another partition, a misconfiguration) stores a key this
  // partition has not seen; this partition's next batch then fails as a whole.
  p::pg_event_store::load(schema.conninfo(), 1)
      ->append_batch({ev("c1", "e2", "2024-01-01T10:00:00Z")}, {1});
  CHECK_THROWS_AS(
      store->append_batch(
          {ev("c1", "e3", "2024-01-01T10:00:00Z"), ev("c1", "e2", "2024-01-01T10:00:00Z")}, {2, 3}),
      p::store_error);
  CHECK(store->size() == 1);
  CHECK(store->consumed_position() == 1u);
  // The store goes on; nothing of the failed batch was stored.
  CHECK(store->append_batch({ev("c1", "e3", "2024-01-01T10:00:00Z")}, {4}) ==
        std::vector<append_outcome>{append_outcome::accepted});
  auto reloaded = p::pg_event_store::load(schema.conninfo(), 0);
  REQUIRE(reloaded->size() == 2);
  CHECK(reloaded->at(1).event_id == "e3");
  CHECK(reloaded->source_position(1) == 4);
}

TEST_CASE("postgresql: a partition has one writer", "[persistence][postgresql]") {
  const auto server = pg_or_skip();
  if (!server)
    return;
  meterflow::test::pg_test_schema schema(*server);
  auto first = p::pg_event_store::load(schema.conninfo(), 0);
  auto second = p::pg_event_store::load(schema.conninfo(), 0);
  first->append_batch({ev("c1", "e1", "2024-01-01T10:00:00Z")}, {1});
  // The second store has not seen e1: its batch would take the same place in append order.
  CHECK_THROWS_WITH(second->append_batch({ev("c2", "e1", "2024-01-01T10:00:00Z")}, {1}),
                    Catch::Contains("another writer"));
  CHECK(second->size() == 0);
  first->append_batch({ev("c2", "e1", "2024-01-01T10:00:00Z")}, {2});
  auto reloaded = p::pg_event_store::load(schema.conninfo(), 0);
  REQUIRE(reloaded->size() == 2);
  CHECK(reloaded->at(1).customer_id == "c2");
}

TEST_CASE("postgresql: the consumed source position commits with its batch",
          "[persistence][postgresql]") {
  const auto server = pg_or_skip();
  if (!server)
    return;
  meterflow::test::pg_test_schema schema(*server);
  {
    auto store = p::pg_event_store::load(schema.conninfo(), 3, "file:events.ndjson");
    CHECK(!store->consumed_position());
    store->append_batch({ev("c1", "e1", "2024-01-01T10:00:00Z"),
                         ev("c1", "e1", "2024-01-01T10:00:00Z"),
                         ev("c1", "e1", "2024-01-01T10:00:01Z")},
                        {10, 11, 12});
    // A batch of duplicates stores no event but still moves the consumed position.
    store->append_batch({ev("c1", "e1", "2024-01-01T10:00:00Z")}, {13});
    CHECK(store->consumed_position() == 13u);
  }
  CHECK(p::pg_event_store::load(schema.conninfo(), 3, "file:events.ndjson")->consumed_position() ==
        13u);
  CHECK(!p::pg_event_store::load(schema.conninfo(), 3, "other")->consumed_position());
  CHECK(!p::pg_event_store::load(schema.conninfo(), 2, "file:events.ndjson")->consumed_position());

  pqxx::connection c(schema.conninfo());
  pqxx::read_transaction tx(c);
  const auto rows = tx.exec("SELECT position, events_accepted, duplicates, conflicts "
                            "FROM source_offsets ORDER BY offset_seq");
  REQUIRE(rows.size() == 2);
  CHECK(rows[0][0].as<int>() == 12);
  CHECK(rows[0][1].as<int>() == 1);
  CHECK(rows[0][2].as<int>() == 1);
  CHECK(rows[0][3].as<int>() == 1);
  CHECK(rows[1][0].as<int>() == 13);
  CHECK(rows[1][2].as<int>() == 1);
}

TEST_CASE("postgresql: migrations apply once, in order", "[persistence][postgresql]") {
  const auto server = pg_or_skip();
  if (!server)
    return;
  meterflow::test::pg_test_schema schema(*server, false);
  pqxx::connection c(schema.conninfo());
  CHECK(p::schema_version(c) == 0);
  // A store refuses a database without the schema, and says what to do.
  CHECK_THROWS_WITH(p::make_pg_record_store(schema.conninfo()),
                    Catch::Contains("meterflow migrate"));
  const auto applied = p::migrate(c);
  REQUIRE(applied.size() == p::migrations().size());
  for (std::size_t i = 0; i < applied.size(); ++i)
    CHECK(applied[i].version == static_cast<int>(i) + 1);
  CHECK(p::migrate(c).empty());
  CHECK(p::schema_version(c) == p::migrations().back().version);
  pqxx::read_transaction tx(c);
  CHECK(tx.exec1("SELECT count(*) FROM schema_migrations")[0].as<std::size_t>() ==
        p::migrations().size());
}

TEST_CASE("postgresql: the auditor's views and columns", "[persistence][postgresql]") {
  const auto server = pg_or_skip();
  if (!server)
    return;
  meterflow::test::pg_test_schema schema(*server);
  const auto w1 = charge("c1", "2024-01-01T10:00:00Z", "1000", "0", "100");
  const auto w1_rerated = charge("c1", "2024-01-01T10:00:00Z", "1001", "0", "100.08", &w1);
  auto jan = invoice("inv_c1_2024-01", "c1", "2024-01", "100.08");
  jan.line_items[0].charge_ids = {meterflow::persistence::packed_id(w1_rerated.charge_id)};
  auto records = p::make_pg_record_store(schema.conninfo());
  records->append({{}, {w1, w1_rerated}, {}, {jan}, {}});
  records->append_status({"inv_c1_2024-01", "paid", "finance", ""});
  p::pg_event_store::load(schema.conninfo(), 0)
      ->append_batch(
          {ev("c1", "e-1", "2024-01-01T10:00:00Z", "1", "api_call", R"({"k":1.5})"),
           ev("c1", "e\"2", "2024-01-01T10:00:01Z", "1", "api_call", R"({"big":1e99999999})")},
          {1, 2});

  pqxx::connection c(schema.conninfo());
  pqxx::read_transaction tx(c);
  CHECK(tx.exec1("SELECT string_agg(charge_id, ',') FROM current_charges")[0].as<std::string>() ==
        w1_rerated.charge_id);
  CHECK(tx.exec1("SELECT status FROM current_invoice_status")[0].as<std::string>() == "paid");
  // Invoice line -> current charges -> source events.
  const auto traced = tx.exec(R"(
    SELECT e.event_id, e.metadata::text, e.metadata_canonical
    FROM invoice_line_items l
    JOIN rated_charges c ON c.charge_id = ANY (l.charge_ids)
    CROSS JOIN jsonb_array_elements_text(c.calculation_metadata -> 'source_event_ids') AS s(id)
    JOIN telemetry_events e ON e.customer_id = c.customer_id AND e.event_id = s.id
    WHERE l.invoice_id = 'inv_c1_2024-01' AND l.metric = 'api_calls'
    ORDER BY e.event_time)");
  REQUIRE(traced.size() == 2);
  CHECK(traced[0][0].as<std::string>() == "e-1");
  CHECK(traced[0][1].as<std::string>() == R"({"k": 1.5})");
  CHECK(traced[1][0].as<std::string>() == "e\"2");
  CHECK(traced[1][1].is_null()); // beyond JSONB's range: only the canonical text
  CHECK(traced[1][2].as<std::string>() == R"({"big":1e99999999})");
}

namespace {

// Appends `total` events in batches of `batch_size` to partition `partition`; returns the
// seconds spent in append_batch.
double append_events(const std::string& conninfo, int partition, std::size_t total,
                     std::size_t batch_size, bool with_metadata) {
  auto store = p::pg_event_store::load(conninfo, partition);
  const std::string prefix = "p" + std::to_string(partition) + "-c";
  double seconds = 0;
  for (std::size_t done = 0; done < total; done += batch_size) {
    std::vector<p::event> batch;
    std::vector<std::uint64_t> positions;
    for (std::size_t i = done; i < done + batch_size; ++i) {
      p::event e;
      e.customer_id = prefix + std::to_string(i % 1000);
      e.event_id = "evt-" + std::to_string(i);
      e.event_type = "api_call";
      e.event_time = at("2024-01-01T00:00:00Z") + static_cast<timestamp>(i) * 1000;
      if (with_metadata)
        e.metadata = R"({"region":"eu-west-1","user":"u)" + std::to_string(i % 5000) + "\"}";
      batch.push_back(std::move(e));
      positions.push_back(i + 1);
    }
    const auto start = std::chrono::steady_clock::now();
    store->append_batch(std::move(batch), positions);
    seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  }
  return seconds;
}

} // namespace

// Run by hand: scripts/test.sh leaves it out ([.]). Prints the rate of one partition, with and
// without metadata, and of two partitions appending at once (the engine's stores run in
// parallel, one connection each).
TEST_CASE("postgresql: event append rate", "[.][bench][postgresql]") {
  const auto server = pg_or_skip();
  if (!server)
    return;
  meterflow::test::pg_test_schema schema(*server);
  const std::size_t total = 1 << 20, batch_size = 8192;
  for (bool with_metadata : {false, true}) {
    const double seconds =
        append_events(schema.conninfo(), with_metadata ? 1 : 0, total, batch_size, with_metadata);
    WARN("append rate, one partition, " << (with_metadata ? "with" : "no") << " metadata: "
                                        << static_cast<long>(total / seconds) << " events/s");
  }
  const auto start = std::chrono::steady_clock::now();
  std::thread other([&] { append_events(schema.conninfo(), 2, total, batch_size, false); });
  append_events(schema.conninfo(), 3, total, batch_size, false);
  other.join();
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  WARN("append rate, two partitions at once, no metadata: "
       << static_cast<long>(2 * total / seconds) << " events/s (including event generation)");
}
