#!/usr/bin/env bash
# Ingest latency at a target rate (issue 8): `meterflow-loadgen --send` offers events at fixed
# rates, open loop, to a running deployment on this machine and reports the achieved rate and
# the answer latency counted from each batch's due time (bench/send.hpp):
#   - HTTP: POST /v1/events (NDJSON, batches of 1,000, 4 keep-alive connections) to
#     `meterflow serve --listen`, which publishes to librdkafka's mock cluster (`meterflow
#     devkafka`, 4 partitions) and answers 202 once Kafka acknowledged; the same serve process
#     consumes the topic into PostgreSQL (a throwaway cluster) at the same time, on the same
#     2 cores, as a single-box deployment would;
#   - Kafka: produced straight to a topic nobody reads (acks=all, idempotent), one flush per
#     batch of 1,000.
# The mock broker does not set TCP_NODELAY (real brokers do), so with several produce requests
# in flight per connection its answers wait for delayed ACKs (~40 ms): both producers get
# max.in.flight.requests.per.connection=1, which keeps the figures about meterflow.
set -euo pipefail

source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
rates="25000 50000 100000 200000"
seconds=10
do_build=1
usage() {
  cat <<USAGE
Usage: bench/ingest.sh [--rates "R1 R2 ..."] [--seconds S] [--no-build]
  --rates "..."   offered events per second, one run each (default "$rates")
  --seconds S     length of each run: rate x S events (default $seconds)
  --no-build      use the binaries already in build-bench/
USAGE
}
while [ $# -gt 0 ]; do
  case "$1" in
    --rates) rates="$2"; shift 2 ;;
    --seconds) seconds="$2"; shift 2 ;;
    --no-build) do_build=0; shift ;;
    --help|-h) usage; exit 0 ;;
    *) echo "ingest.sh: unknown option $1" >&2; usage >&2; exit 2 ;;
  esac
done
for r in $rates $seconds; do
  [[ $r =~ ^[1-9][0-9]*$ ]] || { echo "ingest.sh: not a positive count: $r" >&2; exit 2; }
done
[ "$do_build" = 1 ] && bench_build meterflow meterflow-loadgen
meterflow="$build/meterflow"
loadgen="$build/bench/meterflow-loadgen"

tmp=$(mktemp -d)
trap 'kill "$cluster" 2> /dev/null || true; rm -rf "$tmp"' EXIT
"$meterflow" devkafka --partitions 4 > "$tmp/devkafka.out" 2> /dev/null &
cluster=$!
until grep -q '^bootstrap=' "$tmp/devkafka.out"; do sleep 0.1; done
bootstrap=$(sed -n 's/^bootstrap=//p' "$tmp/devkafka.out")

key="bench-ingest-$(od -An -tx8 -N8 /dev/urandom | tr -d ' ')"
jq --arg key "$key" '.http = {api_keys: [{name: "bench", key: $key}],
                              max_events_per_request: 1000, max_in_flight_events: 100000}' \
  "$root/bench/config.json" > "$tmp/config.json"
echo "max.in.flight.requests.per.connection=1" > "$tmp/kafka.properties"

echo "ingest: serve --listen on PostgreSQL and the mock cluster $bootstrap; ${seconds} s per rate"
export meterflow loadgen bootstrap tmp key rates seconds
pg_virtualenv -t -v 15 bash -c '
  set -euo pipefail
  store="host=$PGHOST port=$PGPORT user=$PGUSER password=$PGPASSWORD dbname=$PGDATABASE"
  "$meterflow" serve --kafka "$bootstrap" --kafka-properties "$tmp/kafka.properties" \
    --config "$tmp/config.json" --store "$store" --listen 127.0.0.1:0 --quiet \
    > "$tmp/serve.out" 2> "$tmp/serve.err" &
  serve=$!
  trap "kill $serve 2> /dev/null || true; wait $serve 2> /dev/null || true" EXIT
  until grep -q "^http=" "$tmp/serve.out"; do
    kill -0 $serve 2> /dev/null || { cat "$tmp/serve.err" >&2; exit 1; }
    sleep 0.1
  done
  url="http://$(sed -n "s/^http=//p" "$tmp/serve.out")"
  seed=1
  for rate in $rates; do
    METERFLOW_API_KEY=$key "$loadgen" --events $((rate * seconds)) --seed $seed --send "$url" \
      --rate "$rate" --batch 1000 --connections 4 2> /dev/null | tee -a "$tmp/http.txt" || true
    seed=$((seed + 1))
  done
'
for rate in $rates; do
  "$loadgen" --events $((rate * seconds)) --seed 99 --send "kafka://$bootstrap" \
    --topic bench-direct --rate "$rate" --batch 1000 \
    --kafka-property max.in.flight.requests.per.connection=1 2> /dev/null | tee -a "$tmp/kafka.txt" || true
done

echo
echo "| path | offered events/s | achieved events/s | p50 ms | p99 ms | max ms | failed batches |"
echo "|---|---|---|---|---|---|---|"
for path in http kafka; do
  sed -E -n "s/.*in [0-9.]+ s: ([0-9]+) events\/s \(offered ([0-9]+)\/s\); latency from due time p50 ([0-9.]+) ms, p99 ([0-9.]+) ms, max ([0-9.]+) ms; ([0-9]+) failed.*/| $path | \2 | \1 | \3 | \4 | \5 | \6 |/p" \
    "$tmp/$path.txt"
done
