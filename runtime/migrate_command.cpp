// `meterflow migrate`: creates or upgrades the PostgreSQL schema of the system of record.

#include "persistence/pg_schema.hpp"
#include "persistence/store.hpp"
#include "runtime/cli.hpp"
#include "runtime/commands.hpp"

#include <iostream>
#include <pqxx/pqxx>

namespace meterflow::runtime {

const char* const migrate_usage = R"(Usage: meterflow migrate --store URL

Creates or upgrades meterflow's schema in the PostgreSQL database at URL: applies, in order and
each in its own transaction, the migrations the database lacks, and prints them ("schema up to
date" when there are none). Running it again changes nothing. See docs/postgresql.md.

Arguments:
  --store URL   a postgresql://user:password@host:port/database URL or a libpq keyword string
                ("host=... port=... user=... dbname=..."); libpq's PG* environment variables
                and ~/.pgpass fill in what it leaves out
  --help        show this text

Exit status: 0 the schema is current, 2 bad arguments, an unreachable database or a failed
migration (nothing of that migration is applied).
)";

int migrate_command(const std::vector<std::string>& args) {
  const command_line cl = parse_command_line(args, {"store"}, {});
  if (!cl.positional.empty())
    throw usage_error("unexpected argument \"" + cl.positional.front() + "\"");
  const std::string& url = cl.required("store");
  std::unique_ptr<pqxx::connection> connection;
  try {
    connection = std::make_unique<pqxx::connection>(url);
  } catch (const std::exception& e) {
    std::cerr << "meterflow migrate: cannot connect to the database (--store): " << e.what()
              << "\n";
    return exit_usage;
  }
  try {
    const auto applied = persistence::migrate(*connection);
    for (const auto& m : applied)
      std::cout << "applied " << m.version << ": " << m.name << "\n";
    if (applied.empty())
      std::cout << "schema up to date (version " << persistence::migrations().back().version
                << ")\n";
    else
      std::cout << "schema at version " << applied.back().version << "\n";
    return exit_ok;
  } catch (const persistence::store_error& e) {
    std::cerr << "meterflow migrate: " << e.what() << "\n";
    return exit_usage;
  }
}

} // namespace meterflow::runtime
