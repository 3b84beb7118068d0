#!/usr/bin/env bash
# Kafka → store throughput (issue 6, issue 8): generates N events (bench/loadgen), starts
# librdkafka's mock cluster (`meterflow devkafka`, 4 partitions) and `meterflow serve --kafka` on
# PostgreSQL (a throwaway cluster from pg_virtualenv), then produces the events in chunks and
# times until serve has committed every message. Prints the producer's and the service's
# events/s.
#
# The mock cluster keeps only about 5 MB per partition (older messages are deleted), so the
# events go in chunks of 50,000 that serve consumes before the next one; it runs in one process
# on the same 2 cores and is not tuned for speed: these figures are a floor for a real cluster.
set -euo pipefail

source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
bench_options kafka.sh 1000000 "$@"
meterflow="$build/meterflow"
file="$work/kafka-events-$events.ndjson"
[ -s "$file" ] || "$build/bench/meterflow-loadgen" --events "$events" --seed 1 --out "$file"

tmp=$(mktemp -d)
trap 'kill "$cluster" 2> /dev/null || true; rm -rf "$tmp"' EXIT
"$meterflow" devkafka --partitions 4 > "$tmp/devkafka.out" 2> /dev/null &
cluster=$!
until grep -q '^bootstrap=' "$tmp/devkafka.out"; do sleep 0.1; done
bootstrap=$(sed -n 's/^bootstrap=//p' "$tmp/devkafka.out")

rate() { awk -v n="$1" -v s="$2" 'BEGIN { printf "%.0f", n / s }'; }
split -l 50000 -d -a 4 "$file" "$tmp/chunk-"

echo "session.timeout.ms=4500" > "$tmp/kafka.properties"
export meterflow bootstrap tmp root
pg_virtualenv -t -v 15 bash -c '
  set -euo pipefail
  store="host=$PGHOST port=$PGPORT user=$PGUSER password=$PGPASSWORD dbname=$PGDATABASE"
  /usr/bin/time -f "%M" -o "$tmp/rss" "$meterflow" serve --kafka "$bootstrap" \
    --kafka-properties "$tmp/kafka.properties" --config "$root/bench/config.json" \
    --store "$store" > "$tmp/serve.out" 2> "$tmp/serve.err" &
  serve=$!
  until grep -q "partition 3 assigned" "$tmp/serve.err"; do sleep 0.1; done
  consumed() {
    psql -Atc "SELECT coalesce(sum(position & 1099511627775), 0) FROM (SELECT DISTINCT ON
               (source) position FROM serve_progress ORDER BY source, progress_seq DESC) p"
  }
  start=$(date +%s.%N)
  produce_s=0
  sent=0
  for chunk in "$tmp"/chunk-*; do
    a=$(date +%s.%N)
    "$meterflow" produce --brokers "$bootstrap" --topic telemetry-events --events "$chunk" \
      2> /dev/null
    produce_s=$(awk -v t="$produce_s" -v a="$a" -v b="$(date +%s.%N)" "BEGIN { print t + b - a }")
    sent=$((sent + $(wc -l < "$chunk")))
    until [ "$(consumed)" -ge "$sent" ]; do sleep 0.05; done
  done
  awk -v a="$start" -v b="$(date +%s.%N)" "BEGIN { printf \"%.2f\", b - a }" > "$tmp/serve_s"
  echo "$produce_s" > "$tmp/produce_s"
  pkill -TERM -P "$serve" # serve, under time
  wait "$serve"
  psql -Atc "SELECT count(*) FROM telemetry_events" > "$tmp/stored"
' > "$work/kafka-bench.log" 2>&1
serve_s=$(cat "$tmp/serve_s")
produce_s=$(cat "$tmp/produce_s")
stored=$(cat "$tmp/stored")
rss_mib=$(awk '{ printf "%.0f", $1 / 1024 }' "$tmp/rss")

echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'), load $(cut -d' ' -f1-3 /proc/loadavg)"
printf "%-40s %10s %8s %12s\n" "step" "events" "seconds" "events/s"
printf "%-40s %10s %8s %12s\n" "produce (acks=all, idempotent)" "$events" "$produce_s" "$(rate "$events" "$produce_s")"
printf "%-40s %10s %8s %12s\n" "produced and committed by serve --kafka" "$events" "$serve_s" "$(rate "$events" "$serve_s")"
echo "stored events: $stored (the rest are duplicates); serve peak RSS: $rss_mib MiB"
