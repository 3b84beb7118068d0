#!/usr/bin/env bash
# The README's test command: set up, build, and run the whole test suite.
# The PostgreSQL tests run against a throwaway PostgreSQL 15 cluster that pg_virtualenv
# (postgresql-common) creates for the run and drops afterwards; each test uses its own schema.
# -t keeps the cluster in a temporary directory even as root, so several runs can coexist.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/build.sh
cd build
pg_virtualenv -t -v 15 bash -c '
  export METERFLOW_TEST_PG="host=$PGHOST port=$PGPORT user=$PGUSER password=$PGPASSWORD dbname=$PGDATABASE"
  ctest --output-on-failure -j"$(nproc)" --timeout 600'
