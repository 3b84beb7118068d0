#pragma once

// A throwaway schema per test in the PostgreSQL server named by METERFLOW_TEST_PG (a libpq
// keyword string or a postgresql:// URL; scripts/test.sh starts a server with pg_virtualenv).
// Each test gets its own schema, so tests are independent and may run in parallel. Without
// METERFLOW_TEST_PG the PostgreSQL tests are skipped with a warning.

#include "persistence/pg_schema.hpp"

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <optional>
#include <pqxx/pqxx>
#include <random>
#include <string>
#include <thread>
#include <unistd.h>

namespace meterflow::test {

inline std::optional<std::string> pg_server() {
  const char* server = std::getenv("METERFLOW_TEST_PG");
  if (!server || !*server)
    return std::nullopt;
  return std::string(server);
}

class pg_test_schema {
public:
  // Creates an empty schema with a name unique to this process and call; `migrated` applies
  // meterflow's migrations to it.
  explicit pg_test_schema(const std::string& server, bool migrated = true) : server_(server) {
    static std::atomic<int> counter{0};
    name_ = "mf_test_" + std::to_string(::getpid()) + "_" + std::to_string(counter++) + "_" +
            std::to_string(std::random_device{}() % 100000);
    const bool url = server.rfind("postgresql://", 0) == 0 || server.rfind("postgres://", 0) == 0;
    if (url)
      conninfo_ = server + (server.find('?') == std::string::npos ? "?" : "&") +
                  "options=-csearch_path%3D" + name_;
    else
      conninfo_ = server + " options='-csearch_path=" + name_ + "'";
    pqxx::connection c(server_);
    pqxx::nontransaction(c).exec("CREATE SCHEMA " + name_);
    if (migrated) {
      pqxx::connection in_schema(conninfo_);
      persistence::migrate(in_schema);
    }
  }
  ~pg_test_schema() {
    try {
      pqxx::connection c(server_);
      pqxx::nontransaction(c).exec("SET client_min_messages = warning; DROP SCHEMA " + name_ +
                                   " CASCADE");
    } catch (const std::exception&) {
      // The server may be gone already; the schema goes with it.
    }
  }
  pg_test_schema(const pg_test_schema&) = delete;
  pg_test_schema& operator=(const pg_test_schema&) = delete;

  // A connection string for the schema (its search_path).
  const std::string& conninfo() const { return conninfo_; }
  const std::string& name() const { return name_; }

private:
  std::string server_;
  std::string name_;
  std::string conninfo_;
};

// The input line through which `meterflow serve` committed its records (0: none yet).
inline long committed_position(const std::string& conninfo) {
  pqxx::connection c(conninfo);
  pqxx::nontransaction tx(c);
  return tx.exec1("SELECT coalesce(max(position), 0) FROM serve_progress")[0].as<long>();
}

// Waits until a running `serve` committed through `line`, at most `timeout`; returns how far
// it got.
inline long wait_for_commit(const std::string& conninfo, long line,
                            std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (committed_position(conninfo) < line && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  return committed_position(conninfo);
}

} // namespace meterflow::test
