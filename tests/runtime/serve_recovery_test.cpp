// `meterflow serve` killed with SIGKILL at several points and started again: the system of
// record ends up exactly as after one uninterrupted run — nothing lost, nothing counted twice.

#include "support/pg_test_schema.hpp"
#include "support/process.hpp"

#include <catch2/catch.hpp>
#include <cstdlib>
#include <filesystem>
#include <sys/wait.h>

using meterflow::test::run_meterflow;
using meterflow::test::shell_quote;

namespace {

// A fingerprint of everything the store holds, per table.
std::vector<std::string> fingerprint(const std::string& conninfo) {
  const char* queries[] = {
      "SELECT count(*) || ' ' || md5(string_agg(invoice_id || ':' || type || ':' || subtotal || "
      "':' || credits_applied || ':' || total, ',' ORDER BY invoice_id)) FROM invoices",
      "SELECT count(*) || ' ' || md5(string_agg(line_item_id || ':' || quantity || ':' || amount, "
      "',' ORDER BY line_item_id)) FROM invoice_line_items",
      "SELECT count(*) || ' ' || md5(string_agg(charge_id || ':' || amount || ':' || "
      "coalesce(supersedes_charge_id, '-'), ',' ORDER BY charge_id)) FROM rated_charges",
      "SELECT count(*) || ' ' || md5(string_agg(aggregation_id || ':' || value, ',' ORDER BY "
      "aggregation_id)) FROM aggregated_usage",
      "SELECT count(*) || ' ' || md5(string_agg(customer_id || ':' || event_id, ',' ORDER BY "
      "customer_id, event_id)) FROM telemetry_events",
      "SELECT count(*) || ' ' || coalesce(md5(string_agg(line::text, ',' ORDER BY line)), '-') "
      "FROM rejected_events",
      "SELECT count(*) || ' ' || coalesce(sum(amount)::text, '0') FROM ledger_entries",
  };
  pqxx::connection c(conninfo);
  pqxx::nontransaction tx(c);
  std::vector<std::string> out;
  for (const char* q : queries)
    out.push_back(tx.exec1(q)[0].c_str());
  return out;
}

} // namespace

TEST_CASE("serve: killed at several points and restarted, the record equals a clean run",
          "[cli][serve][postgresql]") {
  const auto server = meterflow::test::pg_server();
  if (!server) {
    WARN("METERFLOW_TEST_PG is not set: skipped");
    return;
  }
  meterflow::test::pg_test_schema clean(*server, false), crashed(*server, false);
  const std::string examples = std::string(METERFLOW_SOURCE_DIR) + "/examples";
  const std::string inputs = " --config " + shell_quote(examples + "/config.json") + " --events " +
                             shell_quote(examples + "/events.ndjson") + " --batch-size 25 --quiet";
  const std::string out = (std::filesystem::temp_directory_path() /
                           ("meterflow_serve_clean_" + std::to_string(::getpid())))
                              .string();
  REQUIRE(run_meterflow("run" + inputs + " --out " + shell_quote(out) + " --store " +
                        shell_quote(clean.conninfo()) + " > /dev/null")
              .status == 0);
  std::filesystem::remove_all(out);

  // SIGKILL after growing delays until a start gets to the end of the input.
  const std::string serve = "serve" + inputs + " --store " + shell_quote(crashed.conninfo());
  int kills = 0;
  bool finished = false;
  for (double delay = 0.15; delay < 30 && !finished; delay *= 1.4) {
    const std::string cmd = "timeout -s KILL " + std::to_string(delay) + " " +
                            shell_quote(METERFLOW_BINARY) + " " + serve + " > /dev/null 2>&1";
    const int raw = std::system(cmd.c_str());
    REQUIRE(WIFEXITED(raw));
    const int status = WEXITSTATUS(raw);
    if (status == 137)
      ++kills;
    else
      finished = status == 0;
    REQUIRE((status == 0 || status == 137));
  }
  REQUIRE(finished);
  CHECK(kills >= 2);
  // Started again, it has nothing left to do.
  const auto again = run_meterflow(serve);
  CHECK(again.status == 0);
  CHECK_THAT(again.out, Catch::Contains("processed to its end before"));

  const auto expected = fingerprint(clean.conninfo());
  const auto actual = fingerprint(crashed.conninfo());
  REQUIRE(expected.size() == actual.size());
  for (std::size_t i = 0; i < expected.size(); ++i) {
    INFO("table fingerprint " << i);
    CHECK(actual[i] == expected[i]);
  }
}
