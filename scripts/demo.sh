#!/usr/bin/env bash
# The README's demo command: set up, build, and price the seed's worked example.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/build.sh
mf=build/meterflow
cfg=examples/config.json

echo
echo "== The seed's worked example, priced with meterflow quote (config: $cfg) =="
quote() {
  "$mf" quote --config "$cfg" --customer "$1" --metric "$2" --quantity "$3" --at "$4" --format text |
    sed 's/^/  /'
}
echo "Version selection for api_calls (v1 \$0.10, v2 \$0.08 from Jan 15, v3 \$0.12 from Feb 1):"
quote c_flat api_calls 1234 2024-01-01T00:00:00Z
quote c_flat api_calls 1234 2024-01-15T00:00:00Z
quote c_flat api_calls 1234 2024-02-01T00:00:00Z
echo "1,234 calls in the second half of January under three models:"
quote c_flat api_calls 1234 2024-01-20T00:00:00Z
quote c_tiered api_calls 1234 2024-01-20T00:00:00Z
quote c_volume api_calls 1234 2024-01-20T00:00:00Z
echo "The reconciliation example: 10,234 calls at \$0.02:"
quote c_recon api_calls 10234 2024-01-20T00:00:00Z
echo
echo "Full explanation of the tiered quote:"
"$mf" quote --config "$cfg" --customer c_tiered --metric api_calls --quantity 1234 --at 2024-01-20T00:00:00Z
