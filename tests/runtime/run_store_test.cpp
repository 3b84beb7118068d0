// `meterflow run --store`: the same output files as the memory store, and the full record in
// PostgreSQL.

#include "support/pg_test_schema.hpp"
#include "support/process.hpp"

#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <sstream>

using meterflow::test::run_meterflow;
using meterflow::test::shell_quote;

namespace {

namespace fs = std::filesystem;

const std::string examples = std::string(METERFLOW_SOURCE_DIR) + "/examples";

std::string read_file(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

// Every file under `dir`, by relative path.
std::map<std::string, std::string> files_of(const fs::path& dir) {
  std::map<std::string, std::string> out;
  for (const auto& e : fs::recursive_directory_iterator(dir))
    if (e.is_regular_file())
      out[fs::relative(e.path(), dir).string()] = read_file(e.path());
  return out;
}

std::string scalar(const std::string& conninfo, const std::string& sql) {
  pqxx::connection c(conninfo);
  pqxx::nontransaction tx(c);
  return tx.exec1(sql)[0].c_str();
}

} // namespace

TEST_CASE("run --store: same files as the memory store, the record in PostgreSQL",
          "[cli][run][postgresql]") {
  const auto server = meterflow::test::pg_server();
  if (!server) {
    WARN("METERFLOW_TEST_PG is not set: skipped");
    return;
  }
  meterflow::test::pg_test_schema schema(*server, false); // run applies the migrations itself
  const fs::path dir =
      fs::temp_directory_path() / ("meterflow_run_store_" + std::to_string(::getpid()));
  fs::remove_all(dir);
  const std::string common = "run --quiet --config " + shell_quote(examples + "/config.json") +
                             " --events " + shell_quote(examples + "/events.ndjson") +
                             " --batch-size 500 --out ";
  REQUIRE(run_meterflow(common + shell_quote((dir / "memory").string())).status == 0);
  REQUIRE(run_meterflow(common + shell_quote((dir / "pg").string()) + " --store " +
                        shell_quote(schema.conninfo()))
              .status == 0);
  const auto memory = files_of(dir / "memory");
  const auto pg = files_of(dir / "pg");
  REQUIRE(memory.size() == pg.size());
  for (const auto& [name, content] : memory) {
    INFO(name);
    CHECK(pg.at(name) == content);
  }

  // The system of record: every accepted event, every charge and invoice, the rejects.
  const std::string& db = schema.conninfo();
  CHECK(scalar(db, "select count(*) from telemetry_events") == "12733");
  CHECK(scalar(db, "select count(*) from rated_charges") == "291");
  CHECK(scalar(db, "select count(*) from rejected_events") == "5");
  CHECK(scalar(db, "select count(*) from invoices") == "7");
  CHECK(scalar(db, "select total::text from invoices where invoice_id = "
                   "'inv_c_flat_2024-01_c1'") == "0.080000000000");
  CHECK(scalar(db, "select sum(total)::text from invoices where customer_id = 'c_flat' and "
                   "period_start = '2024-01-01T00:00:00Z'") == "8.060000000000");
  // The very late event's automatic re-rate is recorded with what it created.
  CHECK(scalar(db, "select count(*) from rerate_runs") == "1");
  CHECK(scalar(db, "select trigger || ' ' || (scope->>'customer_id') || ' ' || "
                   "array_to_string(correction_invoice_ids, ',') || ' ' || "
                   "cardinality(superseding_charge_ids) from rerate_runs") ==
        "very_late_events c_flat inv_c_flat_2024-01_c1 1");

  // The events are stored once: a second batch run into the same store is refused.
  const auto again = run_meterflow(common + shell_quote((dir / "again").string()) + " --store " +
                                   shell_quote(db) + " 2>&1");
  CHECK(again.status == 2);
  CHECK_THAT(again.out, Catch::Contains("the database already holds events"));
  fs::remove_all(dir);
}
