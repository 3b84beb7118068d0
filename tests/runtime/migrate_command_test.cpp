// End-to-end tests of `meterflow migrate`: the schema is applied once, a second run changes
// nothing, and a database that cannot be reached is a clear error.

#include "persistence/pg_schema.hpp"
#include "support/pg_test_schema.hpp"
#include "support/process.hpp"

#include <catch2/catch.hpp>

using meterflow::test::run_meterflow;
using meterflow::test::shell_quote;

TEST_CASE("migrate: applies the schema once, then says it is up to date", "[cli][migrate]") {
  const auto server = meterflow::test::pg_server();
  if (!server) {
    WARN("METERFLOW_TEST_PG is not set: skipped");
    return;
  }
  meterflow::test::pg_test_schema schema(*server, false);
  const auto first = run_meterflow("migrate --store " + shell_quote(schema.conninfo()));
  CHECK(first.status == 0);
  for (const auto& m : meterflow::persistence::migrations())
    CHECK_THAT(first.out, Catch::Contains("applied " + std::to_string(m.version) + ": " + m.name));
  const auto second = run_meterflow("migrate --store " + shell_quote(schema.conninfo()));
  CHECK(second.status == 0);
  CHECK(second.out == "schema up to date (version " +
                          std::to_string(meterflow::persistence::migrations().back().version) +
                          ")\n");
}

TEST_CASE("migrate: an unreachable database or a bad URL is exit status 2", "[cli][migrate]") {
  // Port 1 refuses connections at once.
  const auto refused = run_meterflow(
      "migrate --store " + shell_quote("postgresql://meterflow@127.0.0.1:1/meterflow") + " 2>&1");
  CHECK(refused.status == 2);
  CHECK_THAT(refused.out, Catch::Contains("cannot connect to the database"));
  const auto bad = run_meterflow("migrate --store " + shell_quote("no_such_option=1") + " 2>&1");
  CHECK(bad.status == 2);
  CHECK_THAT(bad.out, Catch::Contains("invalid connection option"));
  const auto missing = run_meterflow("migrate 2>&1");
  CHECK(missing.status == 2);
  CHECK_THAT(missing.out, Catch::Contains("missing required option --store"));
}
