// `meterflow invoice show|status` against the PostgreSQL system of record: every allowed and
// every refused lifecycle change, from the command line.

#include "support/pg_test_schema.hpp"
#include "support/process.hpp"

#include <catch2/catch.hpp>
#include <filesystem>
#include <nlohmann/json.hpp>

using meterflow::test::run_meterflow;
using meterflow::test::shell_quote;

TEST_CASE("invoice: the lifecycle through the command line", "[cli][invoice][postgresql]") {
  const auto server = meterflow::test::pg_server();
  if (!server) {
    WARN("METERFLOW_TEST_PG is not set: skipped");
    return;
  }
  meterflow::test::pg_test_schema schema(*server, false);
  namespace fs = std::filesystem;
  const fs::path out =
      fs::temp_directory_path() / ("meterflow_invoice_" + std::to_string(::getpid()));
  const std::string examples = std::string(METERFLOW_SOURCE_DIR) + "/examples";
  const std::string store = " --store " + shell_quote(schema.conninfo()) + " ";
  REQUIRE(run_meterflow("run --quiet --config " + shell_quote(examples + "/config.json") +
                        " --events " + shell_quote(examples + "/events.ndjson") + " --out " +
                        shell_quote(out.string()) + store + " > /dev/null")
              .status == 0);
  auto status = [&](const std::string& id, const std::string& args) {
    return run_meterflow("invoice status" + store + args + " " + id + " 2>&1");
  };
  auto ledger_sum = [&](const std::string& id) {
    pqxx::connection c(schema.conninfo());
    pqxx::nontransaction tx(c);
    return std::string(tx.exec_params1("SELECT coalesce(sum(amount), 0)::text FROM ledger_entries "
                                       "WHERE invoice_id = $1",
                                       id)[0]
                           .c_str());
  };

  // Issued by the run, booked in the ledger.
  const auto shown = run_meterflow("invoice show" + store + "inv_c_tiered_2024-01");
  REQUIRE(shown.status == 0);
  const auto j = nlohmann::json::parse(shown.out);
  CHECK(j["status"] == "issued");
  CHECK(j["total"] == "118.72");
  CHECK(ledger_sum("inv_c_tiered_2024-01") == "118.720000000000");

  // issued -> paid; then nothing more.
  const auto paid = status("inv_c_tiered_2024-01", "--to paid --actor finance --reason 'wire 42'");
  CHECK(paid.status == 0);
  CHECK(nlohmann::json::parse(paid.out)["status"] == "paid");
  CHECK(status("inv_c_tiered_2024-01", "--to void --actor finance --reason late").status == 1);
  CHECK(status("inv_c_tiered_2024-01", "--to issued --actor finance").status == 1);
  CHECK(ledger_sum("inv_c_tiered_2024-01") == "118.720000000000");

  // issued -> void needs a reason, then reverses the ledger entry.
  const auto no_reason = status("inv_c_volume_2024-01", "--to void --actor finance");
  CHECK(no_reason.status == 1);
  CHECK_THAT(no_reason.out, Catch::Contains("voiding inv_c_volume_2024-01 needs a reason"));
  CHECK(status("inv_c_volume_2024-01", "--to void --actor finance --reason 'duplicate account'")
            .status == 0);
  CHECK(ledger_sum("inv_c_volume_2024-01") == "0.000000000000");
  CHECK(status("inv_c_volume_2024-01", "--to paid --actor finance").status == 1);

  // Unknown status, unknown invoice, missing actor, bad arguments.
  CHECK(status("inv_c_recon_2024-01", "--to sent --actor finance").status == 1);
  CHECK(status("inv_nope", "--to paid --actor finance").status == 1);
  CHECK(status("inv_c_recon_2024-01", "--to paid").status == 2);
  CHECK(run_meterflow("invoice" + store + "2>/dev/null").status == 2);
  // The issued content never changed.
  const auto after =
      nlohmann::json::parse(run_meterflow("invoice show" + store + "inv_c_volume_2024-01").out);
  CHECK(after["status"] == "void");
  CHECK(after["total"] == "98.72");
  fs::remove_all(out);
}
