// `meterflow rerate`: a dispute fixed with a corrected price version and a manual re-rate of the
// store (SEMANTICS §7): dry run, correction invoices, idempotence, credit notes.

#include "pricing/decimal.hpp"
#include "support/example_store.hpp"
#include "support/pg_test_schema.hpp"
#include "support/process.hpp"

#include <catch2/catch.hpp>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>

using meterflow::test::run_meterflow;
using meterflow::test::shell_quote;
using nlohmann::json;

namespace {

namespace fs = std::filesystem;

const std::string examples = std::string(METERFLOW_SOURCE_DIR) + "/examples";

std::string scalar(const std::string& conninfo, const std::string& sql) {
  pqxx::connection c(conninfo);
  pqxx::nontransaction tx(c);
  const auto r = tx.exec1(sql);
  return r[0].is_null() ? "" : r[0].c_str();
}

json read_json(const fs::path& p) {
  std::ifstream in(p);
  return json::parse(in);
}

// The example configuration with one more version of pb_flat published last: api_calls at
// `price` from 2024-01-15 to 2024-02-01, over v2's interval (the last-published rule).
fs::path corrected_config(const fs::path& dir, const std::string& name, const std::string& price) {
  json cfg = read_json(examples + "/config.json");
  for (auto& book : cfg["price_books"])
    if (book["id"] == "pb_flat")
      book["versions"].push_back({{"version", "v2-corrected-" + name},
                                  {"effective_from", "2024-01-15T00:00:00Z"},
                                  {"effective_until", "2024-02-01T00:00:00Z"},
                                  {"prices",
                                   {{"api_calls", {{"model", "flat"}, {"unit_price", price}}},
                                    {"gb_stored", {{"model", "flat"}, {"unit_price", "0.05"}}}}}});
  const fs::path path = dir / ("config-" + name + ".json");
  std::ofstream(path) << cfg.dump(2);
  return path;
}

// Σ totals of a customer's January invoices (standard + corrections).
std::string january_total(const std::string& db, const std::string& customer) {
  return scalar(db, "select sum(total)::text from invoices where customer_id = '" + customer +
                        "' and period_start = '2024-01-01T00:00:00Z'");
}

// The same total from a fresh batch run (memory store) with `config`: what the re-rated store
// must add up to (the key invariant of SEMANTICS §7).
meterflow::pricing::decimal fresh_january_total(const fs::path& config, const fs::path& out,
                                                const std::string& customer) {
  const auto r = run_meterflow("run --quiet --config " + shell_quote(config.string()) +
                               " --events " + shell_quote(examples + "/events.ndjson") + " --out " +
                               shell_quote(out.string()));
  REQUIRE(r.status == 0);
  meterflow::pricing::decimal sum;
  for (const auto& e : fs::directory_iterator(out / "invoices")) {
    const json inv = read_json(e.path());
    if (inv["customer_id"] == customer && inv["period"]["start"] == "2024-01-01T00:00:00Z")
      sum += meterflow::pricing::decimal::parse(inv["total"].get<std::string>()).value();
  }
  return sum;
}

meterflow::pricing::decimal dec(const std::string& text) {
  return meterflow::pricing::decimal::parse(text).value();
}

} // namespace

TEST_CASE("rerate: every customer at once (the store read a period at a time) bills what a fresh "
          "run with the corrected prices bills, for each customer",
          "[cli][rerate][postgresql]") {
  const meterflow::test::example_store store("meterflow_rerate_all");
  if (!store.filled())
    return;
  const std::string& db = store.db();
  const fs::path& dir = store.dir();
  const fs::path config = corrected_config(dir, "all", "0.07");
  const auto done = run_meterflow("rerate --config " + shell_quote(config.string()) + " --store " +
                                  shell_quote(db) + " --from 2024-01 --to 2024-02 --reason " +
                                  shell_quote("every customer") + " 2>&1");
  INFO(done.out);
  REQUIRE(done.status == 0);
  CHECK_THAT(done.out, Catch::Contains("2024-01 reconciliation: ok") &&
                           Catch::Contains("2024-02 reconciliation: ok"));
  CHECK(scalar(db, "select count(*) from rated_charges where version = 'v2-corrected-all'") != "0");
  const std::string customers =
      scalar(db, "select string_agg(distinct customer_id, ',') from invoices where "
                 "period_start = '2024-01-01T00:00:00Z'");
  std::stringstream list(customers);
  int checked = 0;
  for (std::string customer; std::getline(list, customer, ',');) {
    INFO(customer);
    CHECK(dec(january_total(db, customer)) ==
          fresh_january_total(config, dir / ("fresh-" + customer), customer));
    ++checked;
  }
  CHECK(checked >= 2);
}

TEST_CASE("rerate: a corrected price version and a manual re-rate give one correction invoice; "
          "the dry run shows it and writes nothing; running it again creates nothing",
          "[cli][rerate][postgresql]") {
  const meterflow::test::example_store store("meterflow_rerate");
  if (!store.filled())
    return;
  const std::string& db = store.db();
  const fs::path& dir = store.dir();
  const std::string original =
      run_meterflow("invoice show --store " + shell_quote(db) + " inv_c_flat_2024-01").out;
  auto original_pdf = [&](const std::string& name) {
    const fs::path pdf = dir / name;
    REQUIRE(run_meterflow("invoice pdf inv_c_flat_2024-01 --store " + shell_quote(db) + " -o " +
                          shell_quote(pdf.string()) + " > /dev/null")
                .status == 0);
    std::ifstream in(pdf, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(in), {});
  };
  const std::string original_pdf_before = original_pdf("original-before.pdf");
  const std::string charges_before = scalar(db, "select count(*) from rated_charges");
  const auto before = dec(january_total(db, "c_flat"));

  const fs::path config = corrected_config(dir, "up", "0.09");
  const std::string rerate = "rerate --config " + shell_quote(config.string()) + " --store " +
                             shell_quote(db) + " --from 2024-01 --customers c_flat --reason " +
                             shell_quote("dispute 42: v2 price corrected") + " 2>&1";

  // Nothing changes without the corrected version.
  const auto unchanged =
      run_meterflow("rerate --config " + shell_quote(examples + "/config.json") + " --store " +
                    shell_quote(db) + " --from 2024-01 --reason check --dry-run 2>&1");
  INFO(unchanged.out);
  REQUIRE(unchanged.status == 0);
  CHECK_THAT(unchanged.out, Catch::Contains("0 superseding charges, 0 correction invoices"));

  // The dry run: the comparison, nothing written.
  const auto dry = run_meterflow(rerate + " --dry-run");
  INFO(dry.out);
  REQUIRE(dry.status == 0);
  CHECK_THAT(dry.out, Catch::Contains("c_flat") && Catch::Contains("api_calls") &&
                          Catch::Contains("inv_c_flat_2024-01_c2") &&
                          Catch::Contains("dry run: nothing written"));
  CHECK(scalar(db, "select count(*) from rated_charges") == charges_before);
  CHECK(scalar(db, "select count(*) from rerate_runs where trigger = 'manual'") == "0");

  // The re-rate: superseding charges and one correction invoice linked to the original.
  const auto done = run_meterflow(rerate);
  INFO(done.out);
  REQUIRE(done.status == 0);
  CHECK_THAT(done.out, Catch::Contains("2024-01 reconciliation: ok"));
  CHECK(scalar(db,
               "select count(*) from invoices where invoice_id = 'inv_c_flat_2024-01_c2' "
               "and type = 'correction' and corrects_invoice_id = 'inv_c_flat_2024-01'") == "1");
  CHECK(scalar(db, "select count(*) from rerate_runs where trigger = 'manual' and reason = "
                   "'dispute 42: v2 price corrected' and "
                   "correction_invoice_ids = '{inv_c_flat_2024-01_c2}'") == "1");
  // Every superseding charge names the corrected version and supersedes a v2 charge.
  CHECK(scalar(db, "select count(*) from rated_charges c join rated_charges old on "
                   "old.charge_id = c.supersedes_charge_id where c.trigger = 'rerate' and "
                   "c.version = 'v2-corrected-up' and old.version = 'v2'") != "0");
  // The key invariant: the store's invoices add up to a fresh run with the corrected prices.
  const auto after = dec(january_total(db, "c_flat"));
  CHECK(after == fresh_january_total(config, dir / "fresh-up", "c_flat"));
  CHECK(before < after);
  // The correction's PDF names the original, the corrected version and the version it replaced.
  REQUIRE(run_meterflow("invoice pdf inv_c_flat_2024-01_c2 --store " + shell_quote(db) + " -o " +
                        shell_quote((dir / "c2.pdf").string()))
              .status == 0);
  const auto text = meterflow::test::run_shell("pdftotext -layout " +
                                               shell_quote((dir / "c2.pdf").string()) + " -");
  CHECK_THAT(text.out, Catch::Contains("Corrects invoice inv_c_flat_2024-01") &&
                           Catch::Contains("pb_flat/v2-corrected-up") &&
                           Catch::Contains("replaces 4 charges of pb_flat/v2"));
  // The original invoice never changes.
  CHECK(run_meterflow("invoice show --store " + shell_quote(db) + " inv_c_flat_2024-01").out ==
        original);

  CHECK(original_pdf("original-after.pdf") == original_pdf_before);

  // Idempotent: the same re-rate again creates no document.
  const std::string charges_after = scalar(db, "select count(*) from rated_charges");
  const auto again = run_meterflow(rerate);
  INFO(again.out);
  REQUIRE(again.status == 0);
  CHECK_THAT(again.out, Catch::Contains("0 superseding charges, 0 correction invoices"));
  CHECK(scalar(db, "select count(*) from rated_charges") == charges_after);
  CHECK(scalar(db, "select count(*) from invoices where customer_id = 'c_flat'") == "4");

  // A correction that lowers the price: a credit note (negative total).
  const fs::path lower = corrected_config(dir, "down", "0.05");
  const auto credit = run_meterflow("rerate --config " + shell_quote(lower.string()) + " --store " +
                                    shell_quote(db) +
                                    " --from 2024-01 --to 2024-02 --customers c_flat --metrics "
                                    "api_calls --reason " +
                                    shell_quote("dispute 42: price lowered") + " 2>&1");
  INFO(credit.out);
  REQUIRE(credit.status == 0);
  CHECK(dec(scalar(db, "select total::text from invoices where invoice_id = "
                       "'inv_c_flat_2024-01_c3'"))
            .is_negative());
  CHECK(dec(january_total(db, "c_flat")) ==
        fresh_january_total(lower, dir / "fresh-down", "c_flat"));
  // February is outside the corrected interval: nothing changes there.
  CHECK(scalar(db, "select count(*) from invoices where customer_id = 'c_flat' and "
                   "period_start = '2024-02-01T00:00:00Z'") == "1");
}

TEST_CASE("rerate: bad arguments are refused with the option named", "[cli][rerate]") {
  const std::string config = shell_quote(examples + "/config.json");
  struct bad {
    std::string args, message;
  };
  const bad cases[] = {
      {"--store x --from 2024-13 --reason r", "--from"},
      {"--store x --from 2024-02 --to 2024-01 --reason r", "--to"},
      {"--store x --from 2024-01 --metrics nope --reason r", "--metrics: no meter \"nope\""},
      {"--store x --from 2024-01", "--reason"},
      {"--store x --from 2024-01 --reason r --partitions 0", "--partitions"},
  };
  for (const auto& c : cases) {
    INFO(c.args);
    const auto r = run_meterflow("rerate --config " + config + " " + c.args + " 2>&1");
    CHECK(r.status == 2);
    CHECK_THAT(r.out, Catch::Contains(c.message));
  }
}

TEST_CASE("rerate: a service stopped mid-input, re-rated by hand and resumed with the corrected "
          "prices ends where a fresh run with those prices ends",
          "[cli][rerate][serve][postgresql]") {
  const auto server = meterflow::test::pg_server();
  if (!server) {
    WARN("METERFLOW_TEST_PG is not set: skipped");
    return;
  }
  meterflow::test::pg_test_schema schema(*server, true);
  const std::string& db = schema.conninfo();
  const fs::path dir =
      fs::temp_directory_path() / ("meterflow_rerate_serve_" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  std::vector<std::string> lines;
  {
    std::ifstream in(examples + "/events.ndjson");
    for (std::string l; std::getline(in, l);)
      lines.push_back(l);
  }
  const fs::path events = dir / "events.ndjson";
  auto append = [&](std::size_t from, std::size_t to) {
    std::ofstream out(events, std::ios::app);
    for (std::size_t i = from; i < to; ++i)
      out << lines[i] << '\n';
  };
  // Up to line 12736: January is issued, the very late event of January (line 12737) is not
  // read yet; after the manual re-rate it brings a second correction of January.
  const std::size_t first = 12736;
  append(0, first);
  {
    meterflow::test::background_meterflow serve({"serve", "--follow", "--quiet", "--batch-size",
                                                 "100", "--config", examples + "/config.json",
                                                 "--events", events.string(), "--store", db});
    REQUIRE(meterflow::test::wait_for_commit(db, static_cast<long>(first),
                                             std::chrono::seconds(15)) == static_cast<long>(first));
    // One service per store: a manual re-rate or a second serve is refused while it runs.
    const auto refused =
        run_meterflow("rerate --config " + shell_quote(examples + "/config.json") + " --store " +
                      shell_quote(db) + " --from 2024-01 --reason r 2>&1");
    CHECK(refused.status == 2);
    CHECK_THAT(refused.out, Catch::Contains("a meterflow serve is running on this store"));
    const auto second = run_meterflow(
        "serve --quiet --config " + shell_quote(examples + "/config.json") + " --events " +
        shell_quote(events.string()) + " --store " + shell_quote(db) + " 2>&1");
    CHECK(second.status == 2);
    CHECK_THAT(second.out, Catch::Contains("one service per store"));
    REQUIRE(serve.stop(SIGTERM) == 0);
  }
  const fs::path config = corrected_config(dir, "mid", "0.07");
  const auto rerate = run_meterflow(
      "rerate --config " + shell_quote(config.string()) + " --store " + shell_quote(db) +
      " --from 2024-01 --customers c_flat --reason " + shell_quote("dispute 43") + " 2>&1");
  INFO(rerate.out);
  REQUIRE(rerate.status == 0);
  REQUIRE(scalar(db, "select count(*) from rated_charges where version = 'v2-corrected-mid'") !=
          "0");

  // The rest of the input, with the corrected prices: the service adopts the stored charges
  // and invoices after its replay and goes on from them.
  append(first, lines.size());
  const auto resumed = run_meterflow(
      "serve --quiet --batch-size 100 --config " + shell_quote(config.string()) + " --events " +
      shell_quote(events.string()) + " --store " + shell_quote(db) + " 2>&1");
  INFO(resumed.out);
  REQUIRE(resumed.status == 0);
  CHECK(dec(january_total(db, "c_flat")) == fresh_january_total(config, dir / "fresh", "c_flat"));
  const auto reconciled = run_meterflow("reconcile --store " + shell_quote(db) + " --config " +
                                        shell_quote(config.string()) + " 2>&1");
  INFO(reconciled.out);
  CHECK(reconciled.status == 0);
  fs::remove_all(dir);
}
