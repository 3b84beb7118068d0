#!/usr/bin/env bash
# Installs meterflow's build and test dependencies from Debian 12 packages.
# Idempotent: packages already present are skipped by apt; safe to run on every build.
set -euo pipefail

PACKAGES=(
  build-essential cmake pkg-config git ca-certificates
  libcaf-dev librdkafka-dev libpqxx-dev nlohmann-json3-dev libspdlog-dev libfmt-dev
  catch2 libsimdjson-dev libxxhash-dev libssl-dev libhpdf-dev poppler-utils libcpp-httplib-dev curl
  libjemalloc-dev
  postgresql-common postgresql-15
  time linux-perf jq
)

missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#PACKAGES[@]} packages present"
  exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  SUDO="sudo"
fi
echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update
$SUDO apt-get install -y --no-install-recommends "${missing[@]}"
