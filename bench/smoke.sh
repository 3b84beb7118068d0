#!/usr/bin/env bash
# Functional smoke test of the benchmark tools (run by ctest; nothing is timed): the load
# generator is deterministic, and the engine and the ceiling agree on the same generated file
# about accepted events and metered quantities.
# Usage: smoke.sh LOADGEN CEILING METERFLOW CONFIG WORKDIR
set -euo pipefail
loadgen=$1 ceiling=$2 meterflow=$3 config=$4 work=$5
rm -rf "$work" && mkdir -p "$work"
args=(--events 20000 --customers 200 --seed 7)
"$loadgen" "${args[@]}" --out "$work/a.ndjson" 2>/dev/null
"$loadgen" "${args[@]}" --out "$work/b.ndjson" 2>/dev/null
cmp -s "$work/a.ndjson" "$work/b.ndjson" || { echo "loadgen is not deterministic"; exit 1; }
[ "$(wc -l < "$work/a.ndjson")" -eq 20000 ] || { echo "loadgen wrote the wrong number of lines"; exit 1; }

ceiling_out=$("$ceiling" "$work/a.ndjson")
"$meterflow" run --quiet --config "$config" --events "$work/a.ndjson" --out "$work/out" > /dev/null
recon="$work/out/reconciliation.json"

ceiling_accepted=$(sed -n 's/.* \([0-9]*\) accepted.*/\1/p' <<< "$ceiling_out")
engine_accepted=$(sed -n 's/.*"accepted": \([0-9]*\).*/\1/p' "$recon" | head -1)
[ -n "$ceiling_accepted" ] && [ "$ceiling_accepted" = "$engine_accepted" ] ||
  { echo "accepted events differ: ceiling $ceiling_accepted, meterflow $engine_accepted"; exit 1; }

# The ceiling's api_calls + gb_stored is the engine's total aggregate quantity (both additive).
quantities=$(sed -n 's/.*api_calls \([0-9.]*\), gb_stored \([0-9.]*\).*/\1 \2/p' <<< "$ceiling_out")
api=${quantities% *} gb=${quantities#* }
engine_quantity=$(sed -n 's/.*"aggregate_quantity": "\([0-9.]*\)".*/\1/p' "$recon")
# Exact decimal arithmetic in 10^-12 units (no floating point), for non-negative quantities.
units() {
  local whole=${1%%.*} frac=""
  [[ $1 == *.* ]] && frac=${1#*.}
  frac=$(printf '%-12s' "$frac" | tr ' ' 0)
  echo $((10#$whole * 1000000000000 + 10#$frac))
}
expected=$(($(units "$api") + $(units "$gb")))
[ "$(units "$engine_quantity")" = "$expected" ] ||
  { echo "aggregate quantity differs: ceiling $expected, meterflow $engine_quantity"; exit 1; }
grep -q '"ok": true' "$recon" || { echo "meterflow's reconciliation failed"; exit 1; }
echo "bench smoke: $engine_accepted accepted events and quantity $engine_quantity agree"
