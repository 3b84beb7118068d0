#!/usr/bin/env bash
# Runs bench/postgres/pipeline.sql on EVENTS inside the current PostgreSQL (PG* variables, as
# set by pg_virtualenv) and prints "seconds=S" (wall time of the whole SQL pipeline, load
# included, cluster start excluded), the pipeline's RESULT line and the backend's peak RSS.
set -euo pipefail
events=$(realpath "$1")
here=$(cd "$(dirname "$0")" && pwd)
sql=$(mktemp)
trap 'rm -f "$sql"' EXIT
sed "s|@EVENTS@|$events|" "$here/pipeline.sql" > "$sql"
start=$(date +%s.%N)
psql -X -q -v ON_ERROR_STOP=1 -f "$sql"
end=$(date +%s.%N)
awk -v a="$start" -v b="$end" 'BEGIN {print "seconds=" (b - a)}'
