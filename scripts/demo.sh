#!/usr/bin/env bash
# The README's demo command: set up, build, and run the seed's story end to end.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/build.sh
mf=build/meterflow
cfg=examples/config.json
out=out/demo

echo
echo "== 1. Prices: the seed's worked example with meterflow quote =="
quote() {
  "$mf" quote --config "$cfg" --customer "$1" --metric "$2" --quantity "$3" --at "$4" --format text |
    sed 's/^/  /'
}
quote c_flat api_calls 1234 2024-01-01T00:00:00Z
quote c_flat api_calls 1234 2024-01-15T00:00:00Z
quote c_flat api_calls 1234 2024-02-01T00:00:00Z
quote c_tiered api_calls 1234 2024-01-20T00:00:00Z
quote c_volume api_calls 1234 2024-01-20T00:00:00Z
quote c_recon api_calls 10234 2024-01-20T00:00:00Z

echo
echo "== 2. Events to invoices: meterflow run on examples/events.ndjson (see docs/demo.md) =="
"$mf" run --config "$cfg" --events examples/events.ndjson --out "$out"

echo
echo "== 3. Why does the correction invoice exist? meterflow explain =="
"$mf" explain --out "$out" inv_c_flat_2024-01_c1
correction_charge=$(grep '"trigger":"rerate"' "$out/charges.ndjson" | head -1 | sed 's/.*"charge_id":"\([0-9a-f]*\)".*/\1/')
echo
"$mf" explain --out "$out" "${correction_charge:0:16}"
echo
echo "Files: $out/invoices/*.json, charges.ndjson, aggregates.ndjson, rejected.ndjson, reconciliation.json"
