#!/usr/bin/env bash
# Re-rating throughput (issue 8): generates N events (bench/loadgen), loads them into a
# PostgreSQL store with `meterflow run --store` (a throwaway cluster from pg_virtualenv), then
# publishes a corrected price version for the second half of January (pb_bench api_calls
# 0.002 -> 0.0021 from 2024-01-15, published last, so it wins over v1 there) and times
# `meterflow rerate` over every customer's January: first --dry-run (read, re-aggregate,
# re-rate, compare), then for real (the same, plus the superseding charges and correction
# invoices written). Prints events re-aggregated per second, and what the re-rate wrote.
set -euo pipefail

source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
bench_options rerate.sh 200000 "$@"
meterflow="$build/meterflow"
file="$work/events-$events.ndjson"
[ -s "$file" ] || "$build/bench/meterflow-loadgen" --events "$events" --seed 42 --customers 10000 \
  --span 30d --out "$file" 2> /dev/null

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
jq '(.price_books[] | select(.id == "pb_bench") | .versions) += [{
      "version": "v1-corrected", "effective_from": "2024-01-15T00:00:00Z",
      "effective_until": "2024-02-01T00:00:00Z", "rounding": "half_up",
      "prices": {"api_calls": {"model": "flat", "unit_price": "0.0021"},
                 "gb_stored": {"model": "flat", "unit_price": "0.05"}}}]' \
  "$root/bench/config.json" > "$tmp/corrected.json"

export meterflow file tmp root events
pg_virtualenv -t -v 15 bash -c '
  set -euo pipefail
  store="host=$PGHOST port=$PGPORT user=$PGUSER password=$PGPASSWORD dbname=$PGDATABASE"
  seconds() { awk -v a="$1" -v b="$2" "BEGIN { printf \"%.2f\", b - a }"; }
  now() { date +%s.%N; }
  sql() { psql -XAtq -c "$1"; }

  echo "rerate.sh: loading $events events into PostgreSQL (meterflow run --store)" >&2
  t0=$(now)
  "$meterflow" run --config "$root/bench/config.json" --events "$file" --store "$store" \
    --out "$tmp/out" --quiet > "$tmp/load.log"
  t1=$(now)
  in_scope=$(sql "SELECT count(*) FROM telemetry_events
                  WHERE event_time >= '\''2024-01-01Z'\'' AND event_time < '\''2024-02-01Z'\''")
  windows=$(sql "SELECT count(DISTINCT (customer_id, metric, window_start)) FROM aggregated_usage
                 WHERE window_start >= '\''2024-01-01Z'\'' AND window_start < '\''2024-02-01Z'\''")
  charges_before=$(sql "SELECT count(*) FROM rated_charges")

  run_rerate() {
    "$meterflow" rerate --config "$tmp/corrected.json" --store "$store" --from 2024-01 \
      --customers all --reason "bench: January api_calls corrected" "$@"
  }
  echo "rerate.sh: meterflow rerate --dry-run" >&2
  t2=$(now)
  run_rerate --dry-run > "$tmp/dry.log"
  t3=$(now)
  echo "rerate.sh: meterflow rerate" >&2
  run_rerate > "$tmp/rerate.log"
  t4=$(now)
  superseding=$(( $(sql "SELECT count(*) FROM rated_charges") - charges_before ))
  corrections=$(sql "SELECT count(*) FROM invoices WHERE type = '\''correction'\''")

  rate() { awk -v n="$1" -v s="$2" "BEGIN { printf \"%.0f\", n / s }"; }
  load_s=$(seconds "$t0" "$t1"); dry_s=$(seconds "$t2" "$t3"); real_s=$(seconds "$t3" "$t4")
  echo
  echo "events in the file: $events; events in the scope (January, every customer): $in_scope;"
  echo "final windows in the scope: $windows"
  echo
  echo "| step | seconds | events/s |"
  echo "|---|---|---|"
  echo "| load: meterflow run --store | $load_s | $(rate "$events" "$load_s") |"
  echo "| rerate --dry-run (read, re-aggregate, re-rate, compare) | $dry_s | $(rate "$in_scope" "$dry_s") |"
  echo "| rerate (and write) | $real_s | $(rate "$in_scope" "$real_s") |"
  echo
  echo "the re-rate wrote $superseding superseding charges and $corrections correction invoices"
  tail -3 "$tmp/rerate.log"
'
