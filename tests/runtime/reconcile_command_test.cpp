// `meterflow reconcile` and `serve --report`: the reconciliation chain of the PostgreSQL store,
// against the batch run's own reconciliation.json, per period and day, while serve runs, and
// on a chain broken behind the engine's back.

#include "support/billing_scenario.hpp"
#include "support/pg_test_schema.hpp"
#include "support/process.hpp"

#include <catch2/catch.hpp>
#include <chrono>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <unistd.h>

using meterflow::test::run_meterflow;
using meterflow::test::shell_quote;

namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

const std::string examples = std::string(METERFLOW_SOURCE_DIR) + "/examples";
const std::string example_config = examples + "/config.json";

json read_json(const fs::path& p) {
  std::ifstream in(p);
  return json::parse(in);
}

std::vector<json> read_ndjson(const fs::path& p) {
  std::ifstream in(p);
  std::vector<json> out;
  for (std::string line; std::getline(in, line);)
    if (!line.empty())
      out.push_back(json::parse(line));
  return out;
}

void write_lines(const fs::path& p, const std::vector<std::string>& lines, std::size_t from,
                 std::size_t to, bool append) {
  std::ofstream out(p, append ? std::ios::app : std::ios::trunc);
  for (std::size_t i = from; i < to && i < lines.size(); ++i)
    out << lines[i] << '\n';
}

// A scratch directory removed with the test.
struct scratch {
  explicit scratch(const std::string& name)
      : dir(fs::temp_directory_path() /
            ("meterflow_reconcile_" + name + "_" + std::to_string(::getpid()))) {
    fs::remove_all(dir);
    fs::create_directories(dir);
  }
  ~scratch() { fs::remove_all(dir); }
  fs::path dir;
};

std::string reconcile_args(const std::string& conninfo, const std::string& config) {
  return "reconcile --store " + shell_quote(conninfo) + " --config " + shell_quote(config);
}

json reconcile_json(const std::string& conninfo, const std::string& config,
                    const std::string& more = "", int status = 0) {
  const auto r = run_meterflow(reconcile_args(conninfo, config) + " --format json " + more);
  INFO(r.out);
  CHECK(r.status == status);
  return json::parse(r.out);
}

void require_every_check_ok(const json& report) {
  for (const auto& c : report["checks"]) {
    INFO(c.dump());
    CHECK(c["ok"].get<bool>());
  }
  CHECK(report["ok"].get<bool>());
}

// The totals, and the counts both reports have, are those of the batch run.
void require_same_chain(const json& store, const json& batch) {
  CHECK(store["totals"] == batch["totals"]);
  for (const auto& [name, value] : store["counts"].items())
    if (batch["counts"].contains(name)) {
      INFO(name);
      CHECK(value == batch["counts"][name]);
    }
}

// A schema holding `meterflow run --store` of the examples, whose output is in `out`.
struct examples_store {
  examples_store(const std::string& server, const std::string& name)
      : schema(server, false), tmp(name), out(tmp.dir / "run") {
    REQUIRE(run_meterflow("run --quiet --config " + shell_quote(example_config) + " --events " +
                          shell_quote(examples + "/events.ndjson") + " --out " +
                          shell_quote(out.string()) + " --store " + shell_quote(schema.conninfo()) +
                          " > /dev/null")
                .status == 0);
  }
  meterflow::test::pg_test_schema schema;
  scratch tmp;
  fs::path out;
};

void exec_sql(const std::string& conninfo, const std::string& sql) {
  pqxx::connection c(conninfo);
  pqxx::nontransaction(c).exec(sql);
}

} // namespace

TEST_CASE("reconcile: bad arguments and an unreachable store exit 2 naming the option",
          "[cli][reconcile]") {
  const std::string unreachable =
      "--store " + shell_quote("host=127.0.0.1 port=1 dbname=none connect_timeout=2");
  auto check = [](const std::string& args, const std::string& named) {
    const auto r = run_meterflow("reconcile " + args + " 2>&1");
    INFO(r.out);
    CHECK(r.status == 2);
    CHECK_THAT(r.out, Catch::Contains(named));
  };
  check(unreachable, "--store");
  check(unreachable + " --period 2024-13", "--period");
  check(unreachable + " --period 2024-1", "--period");
  check(unreachable + " --daily 2024-02-30", "--daily");
  check(unreachable + " --daily 2024-01-15T00:00:00Z", "--daily");
  check(unreachable + " --period 2024-01 --daily 2024-01-15", "--period and --daily");
  check(unreachable + " --format xml", "--format");
  check("--period 2024-01", "--store");
}

TEST_CASE("reconcile: the store of a batch run reconciles, with the run's totals; --period and "
          "--daily restrict to their windows and invoices",
          "[cli][reconcile][postgresql]") {
  const auto server = meterflow::test::pg_server();
  if (!server) {
    WARN("METERFLOW_TEST_PG is not set: skipped");
    return;
  }
  const examples_store store(*server, "clean");
  const std::string& db = store.schema.conninfo();
  const fs::path& tmp = store.tmp.dir;
  const fs::path& out = store.out;
  const json batch = read_json(out / "reconciliation.json");

  const json whole =
      reconcile_json(db, example_config, "--json " + shell_quote((tmp / "r.json").string()));
  require_every_check_ok(whole);
  require_same_chain(whole, batch);
  CHECK(whole["store"]["finished"].get<bool>());
  CHECK(whole["counts"]["accepted"] == 12733);
  CHECK(whole["checks"].size() == 16);
  CHECK(read_json(tmp / "r.json") == whole);

  const auto table = run_meterflow(reconcile_args(db, example_config));
  CHECK(table.status == 0);
  CHECK_THAT(table.out, Catch::Contains("reconciliation: ok (16 checks, 0 unpriced windows)"));
  CHECK_THAT(table.out, Catch::Contains("sum of invoice totals = ledger revenue"));

  SECTION("--period 2024-01: the January windows, charges and invoices of the run's files") {
    const json jan = reconcile_json(db, example_config, "--period 2024-01");
    require_every_check_ok(jan);
    CHECK(jan["scope"]["from"] == "2024-01-01T00:00:00Z");
    CHECK(jan["scope"]["to"] == "2024-02-01T00:00:00Z");
    // Computed independently from the run's output files.
    auto in_january = [](const json& record) {
      const std::string start = record["window_start"];
      return start.rfind("2024-01-", 0) == 0;
    };
    std::map<std::string, json> current_aggregates; // by customer, metric, window
    std::int64_t revisions = 0;
    for (const auto& a : read_ndjson(out / "aggregates.ndjson")) {
      if (!in_january(a))
        continue;
      ++revisions;
      current_aggregates[a["customer_id"].get<std::string>() + "/" +
                         a["metric"].get<std::string>() + "/" +
                         a["window_start"].get<std::string>()] = a;
    }
    std::int64_t metered = 0;
    meterflow::pricing::decimal quantity;
    for (const auto& [key, a] : current_aggregates) {
      REQUIRE(a["is_final"].get<bool>());
      metered += a["event_count"].get<std::int64_t>();
      quantity += meterflow::test::dec(a["value"].get<std::string>());
    }
    std::set<std::string> superseded;
    std::vector<json> january_charges;
    for (const auto& c : read_ndjson(out / "charges.ndjson"))
      if (in_january(c)) {
        january_charges.push_back(c);
        if (!c["supersedes_charge_id"].is_null())
          superseded.insert(c["supersedes_charge_id"].get<std::string>());
      }
    meterflow::pricing::decimal totals;
    std::int64_t invoices = 0;
    for (const auto& f : fs::directory_iterator(out / "invoices")) {
      const json inv = read_json(f.path());
      if (inv["period"]["start"] == "2024-01-01T00:00:00Z") {
        ++invoices;
        totals += meterflow::test::dec(inv["total"].get<std::string>());
      }
    }
    const auto& counts = jan["counts"];
    CHECK(counts["metered"] == metered); // every example event feeds one meter
    CHECK(counts["accepted"] == metered);
    CHECK(counts["aggregate_revisions"] == revisions);
    CHECK(counts["charges"] == january_charges.size());
    CHECK(counts["current_charges"] == january_charges.size() - superseded.size());
    CHECK(counts["invoices"] == invoices);
    CHECK(jan["totals"]["aggregate_quantity"] == quantity.to_string());
    CHECK(jan["totals"]["invoice_totals"] == totals.to_string());
    // ... and not the whole store's: February has events, charges and invoices too.
    CHECK(counts["accepted"] < whole["counts"]["accepted"]);
    CHECK(counts["charges"] < whole["counts"]["charges"]);
    CHECK(counts["invoices"] < whole["counts"]["invoices"]);
    CHECK_FALSE(counts.contains("received")); // input lines have no event time
  }

  SECTION("--daily 2024-01-20: that day's windows; the invoices of its month") {
    const json day = reconcile_json(db, example_config, "--daily 2024-01-20");
    require_every_check_ok(day);
    const json jan = reconcile_json(db, example_config, "--period 2024-01");
    CHECK(day["counts"]["accepted"] > 0);
    CHECK(day["counts"]["accepted"] < jan["counts"]["accepted"]);
    CHECK(day["counts"]["invoices"] == jan["counts"]["invoices"]);
    CHECK(day["totals"]["invoice_totals"] == jan["totals"]["invoice_totals"]);
  }

  SECTION("without --config the checks of events, aggregates and charges are skipped") {
    const auto r = run_meterflow("reconcile --format json --store " + shell_quote(db));
    CHECK(r.status == 0);
    const json report = json::parse(r.out);
    CHECK(report["skipped"].size() == 2);
    CHECK(report["totals"]["ledger_revenue"] == batch["totals"]["ledger_revenue"]);
    CHECK_FALSE(report["totals"].contains("aggregate_quantity"));
  }
}

TEST_CASE("reconcile: a chain broken behind the engine's back fails with the check's name and "
          "what to do",
          "[cli][reconcile][postgresql]") {
  const auto server = meterflow::test::pg_server();
  if (!server) {
    WARN("METERFLOW_TEST_PG is not set: skipped");
    return;
  }
  const examples_store store(*server, "broken");
  const std::string& db = store.schema.conninfo();
  REQUIRE(run_meterflow(reconcile_args(db, example_config) + " > /dev/null").status == 0);

  SECTION("a ledger entry no status change explains") {
    exec_sql(db, "INSERT INTO ledger_entries (invoice_id, customer_id, currency, amount, kind) "
                 "VALUES ('inv_c_tiered_2024-01', 'c_tiered', 'USD', 5, 'invoice')");
    const auto r = run_meterflow(reconcile_args(db, example_config));
    INFO(r.out);
    CHECK(r.status == 1);
    CHECK_THAT(r.out, Catch::Contains("FAILED sum of invoice totals = ledger revenue: expected "
                                      "431.5, actual 436.5"));
    CHECK_THAT(r.out, Catch::Contains("inv_c_tiered_2024-01 issued"));
    CHECK_THAT(r.out, Catch::Contains("what to do: investigate"));
    // February's invoices are not touched.
    CHECK(run_meterflow(reconcile_args(db, example_config) + " --period 2024-02 > /dev/null")
              .status == 0);
  }

  SECTION("an invoice line billing a charge that does not exist") {
    exec_sql(db, "INSERT INTO invoice_line_items (line_item_id, invoice_id, line_no, metric, "
                 "quantity, amount, charge_ids) VALUES ('bogus', 'inv_c_flat_2024-02', 7, "
                 "'api_calls', 0, 0, '{no_such_charge}')");
    const json report = reconcile_json(db, example_config, "", 1);
    CHECK_FALSE(report["ok"].get<bool>());
    std::vector<std::string> failed;
    for (const auto& c : report["checks"])
      if (!c["ok"].get<bool>()) {
        failed.push_back(c["check"]);
        CHECK_THAT(c["detail"].get<std::string>(), Catch::Contains("no_such_charge"));
        CHECK_THAT(c["action"].get<std::string>(), Catch::StartsWith("void"));
      }
    CHECK(failed == std::vector<std::string>{
                        "invoice lines name stored charges of their customer, period, metric"});
  }

  SECTION("a second current charge for a window") {
    exec_sql(db, "INSERT INTO rated_charges SELECT 'extra', customer_id, metric, window_start, "
                 "window_end, aggregation_id, quantity, cumulative_before, cumulative_after, "
                 "amount, currency, price_book_id, version, effective_from, effective_until, "
                 "NULL, trigger, calculation_metadata, emission_seq, recorded_at FROM "
                 "rated_charges WHERE customer_id = 'c_walkin'");
    const auto r = run_meterflow(reconcile_args(db, example_config) + " --period 2024-02");
    INFO(r.out);
    CHECK(r.status == 1);
    CHECK_THAT(r.out, Catch::Contains("FAILED no duplicates: one current charge per window"));
    CHECK_THAT(r.out, Catch::Contains("FAILED sum of current aggregate quantities"));
    CHECK_THAT(r.out, Catch::Contains("FAILED charges invoiced"));
  }
}

TEST_CASE("serve --report: the store's reconciliation when serve stops, mid-stream and at the "
          "end; reconcile while serve runs",
          "[cli][reconcile][serve][postgresql]") {
  const auto server = meterflow::test::pg_server();
  if (!server) {
    WARN("METERFLOW_TEST_PG is not set: skipped");
    return;
  }
  // Random scenario: late and very late events across months, period-level meters, unpriced
  // windows, several currencies.
  const auto scenario = meterflow::test::make_scenario(11, 29);
  scratch tmp("serve");
  const fs::path config = tmp.dir / "config.json", all = tmp.dir / "events.ndjson",
                 growing = tmp.dir / "growing.ndjson", report = tmp.dir / "report";
  std::ofstream(config) << scenario.config;
  const auto lines = meterflow::test::texts(scenario);
  write_lines(all, lines, 0, lines.size(), false);

  meterflow::test::pg_test_schema batch_store(*server, false), served(*server, true);
  REQUIRE(run_meterflow("run --quiet --batch-size 7 --config " + shell_quote(config.string()) +
                        " --events " + shell_quote(all.string()) + " --out " +
                        shell_quote((tmp.dir / "run").string()) + " --store " +
                        shell_quote(batch_store.conninfo()) + " > /dev/null")
              .status == 0);
  const json batch = read_json(tmp.dir / "run" / "reconciliation.json");
  const json batch_store_report = reconcile_json(batch_store.conninfo(), config.string());
  require_every_check_ok(batch_store_report);
  require_same_chain(batch_store_report, batch);
  // The batch lists every listing; the store report the latest of each window still unpriced.
  CHECK_FALSE(batch_store_report["unpriced_windows"].empty());
  for (const auto& u : batch_store_report["unpriced_windows"]) {
    INFO(u.dump());
    CHECK(std::find(batch["unpriced_windows"].begin(), batch["unpriced_windows"].end(), u) !=
          batch["unpriced_windows"].end());
  }

  // Served in pieces: reconciled while it runs (between its commits of events and of
  // records), and by its own report when SIGTERM stops it.
  const std::size_t cuts[] = {lines.size() / 3, 2 * lines.size() / 3, 9 * lines.size() / 10};
  write_lines(growing, lines, 0, cuts[0], false);
  const std::string& db = served.conninfo();
  meterflow::test::background_meterflow serve(
      {"serve", "--follow", "--quiet", "--batch-size", "7", "--config", config.string(), "--events",
       growing.string(), "--store", db, "--report", report.string()});
  for (std::size_t k = 0; k < 3; ++k) {
    REQUIRE(meterflow::test::wait_for_commit(db, static_cast<long>(cuts[k]),
                                             std::chrono::seconds(30)) >=
            static_cast<long>(cuts[k]));
    INFO("after line " << cuts[k]);
    const json midway = reconcile_json(db, config.string());
    require_every_check_ok(midway);
    CHECK_FALSE(midway["store"]["finished"].get<bool>());
    if (k < 2)
      write_lines(growing, lines, cuts[k], cuts[k + 1], true);
  }
  CHECK(serve.stop(SIGTERM) == 0);
  const json stopped = read_json(report / "reconciliation.json");
  require_every_check_ok(stopped);
  CHECK(stopped["store"]["committed_through"] == cuts[2]);
  CHECK(stopped["counts"]["feeds_awaiting_window_final"].get<int>() +
            stopped["counts"]["feeds_awaiting_rerate"].get<int>() >
        0);

  // The rest of the input: the final report is the batch run's chain.
  write_lines(growing, lines, cuts[2], lines.size(), true);
  fs::remove_all(report);
  const auto rest =
      run_meterflow("serve --quiet --batch-size 7 --config " + shell_quote(config.string()) +
                    " --events " + shell_quote(growing.string()) + " --store " + shell_quote(db) +
                    " --report " + shell_quote(report.string()));
  INFO(rest.out);
  CHECK(rest.status == 0);
  CHECK_THAT(rest.out, Catch::Contains("reconciliation: ok"));
  const json finished = read_json(report / "reconciliation.json");
  require_every_check_ok(finished);
  CHECK(finished["totals"] == batch["totals"]);
  CHECK(finished["unpriced_windows"] == batch_store_report["unpriced_windows"]);
}
