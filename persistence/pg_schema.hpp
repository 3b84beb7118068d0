#pragma once

// The PostgreSQL schema of the system of record (docs/postgresql.md): versioned migrations as
// embedded SQL, applied in order, each in its own transaction and recorded in
// schema_migrations(version, name, applied_at). Every table is append-only, enforced by a
// trigger that rejects UPDATE, DELETE and TRUNCATE; current state is derived by views.

#include <string>
#include <vector>

namespace pqxx {
class connection_base;
}

namespace meterflow::persistence {

struct migration {
  int version;
  const char* name;
  const char* sql;
};

// Every migration, by version.
const std::vector<migration>& migrations();

// Applies the migrations the database lacks, in order, and returns them (none when the schema
// is up to date). Concurrent callers serialize on an advisory lock, so each migration applies
// once. Throws store_error when the database is not UTF8 or a migration fails (that migration
// is rolled back; the ones before it stay applied).
std::vector<migration> migrate(pqxx::connection_base& connection);

// The highest applied migration, 0 for a database without meterflow's schema.
int schema_version(pqxx::connection_base& connection);

// Throws store_error unless the database is UTF8 and has every migration applied (run
// `meterflow migrate --store URL` first).
void require_current_schema(pqxx::connection_base& connection);

} // namespace meterflow::persistence
