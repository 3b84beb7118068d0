#!/usr/bin/env bash
# Ingest latency at a target rate (issue 8): `meterflow-loadgen --send` offers events at fixed
# rates, open loop, and reports the achieved rate and the answer latency counted from each
# batch's due time (bench/send.hpp):
#   - HTTP: POST /v1/events (NDJSON, batches of 1,000, 4 keep-alive connections) to the HTTP
#     service (`meterflow-http-bench --serve`: the API of `meterflow serve --listen` on
#     librdkafka's mock cluster, 4 partitions), which answers 202 once Kafka acknowledged every
#     event of the request;
#   - Kafka: produced straight to the mock cluster (`meterflow devkafka`, 4 partitions; acks=all,
#     idempotent), one flush per batch of 1,000.
# Nothing consumes the topics: the engine's side (Kafka → store) is bench/kafka.sh. The mock
# cluster keeps only ~5 MB per partition, so a `serve --listen` that also consumes into
# PostgreSQL on these 2 cores falls behind the retention within seconds at these rates.
# The mock broker does not set TCP_NODELAY (real brokers do), so with several produce requests
# in flight per connection its answers wait for delayed ACKs (~40 ms): both producers use
# max.in.flight.requests.per.connection=1, which keeps the figures about meterflow.
set -euo pipefail

source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
rates="50000 100000 200000 300000 400000"
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
[ "$do_build" = 1 ] && bench_build meterflow meterflow-loadgen meterflow-http-bench
loadgen="$build/bench/meterflow-loadgen"
mkdir -p "$work"
log="$work/ingest.log" # the tools' progress and errors
: > "$log"

tmp=$(mktemp -d)
pids=()
trap 'kill "${pids[@]}" 2> /dev/null || true; rm -rf "$tmp"' EXIT
# Starts a server in the background and waits for its line NAME=VALUE on standard output;
# the value goes into the variable NAME.
start() {
  local name=$1
  shift
  "$@" > "$tmp/$name.out" 2>> "$log" &
  pids+=($!)
  until grep -q "^$name=" "$tmp/$name.out"; do
    kill -0 "${pids[-1]}" 2> /dev/null || { echo "ingest.sh: $1 did not start (see $log)" >&2; exit 1; }
    sleep 0.1
  done
  printf -v "$name" '%s' "$(sed -n "s/^$name=//p" "$tmp/$name.out")"
}

start http "$build/bench/meterflow-http-bench" --config "$root/bench/config.json" --serve \
  --clients 4 --batch 1000
key=$(sed -n 's/^key=//p' "$tmp/http.out")
start bootstrap "$build/meterflow" devkafka --partitions 4

# One run: path, rate, seed, loadgen's --send and extra arguments.
run() {
  local path=$1 rate=$2 seed=$3
  shift 3
  "$loadgen" --events $((rate * seconds)) --seed "$seed" --rate "$rate" --batch 1000 "$@" \
    2>> "$log" | tee -a "$tmp/$path.txt" || true
}
echo "ingest: ${seconds} s per rate; HTTP service http://$http, mock cluster $bootstrap"
# A seed per run: the service remembers accepted event ids, and the same seed with another
# --events would send the same ids with other times (conflicts).
seed=1
for rate in $rates; do
  METERFLOW_API_KEY=$key run http "$rate" $((seed++)) --send "http://$http" --connections 4
  run kafka "$rate" $((seed++)) --send "kafka://$bootstrap" --topic bench-direct \
    --kafka-property max.in.flight.requests.per.connection=1
done

echo
echo "| path | offered events/s | achieved events/s | p50 ms | p99 ms | max ms | failed batches |"
echo "|---|---|---|---|---|---|---|"
for path in http kafka; do
  sed -E -n "s/.*in [0-9.]+ s: ([0-9]+) events\/s \(offered ([0-9]+)\/s\); latency from due time p50 ([0-9.]+) ms, p99 ([0-9.]+) ms, max ([0-9.]+) ms; ([0-9]+) failed.*/| $path | \2 | \1 | \3 | \4 | \5 | \6 |/p" \
    "$tmp/$path.txt"
done
if grep -q "first failure" "$log"; then
  echo "failures: see $log"
fi
