# Sourced by bench/kafka.sh and bench/rerate.sh: the paths they share and their Release build.
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build="$root/build-bench"
work="$root/bench/work"

# Installs the Debian packages (scripts/install-deps.sh) and builds the given targets
# (Release, in build-bench/).
bench_build() {
  "$root/scripts/install-deps.sh" > /dev/null
  cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release -DMETERFLOW_BENCH=ON \
    -DMETERFLOW_TESTS=OFF > /dev/null
  cmake --build "$build" -j"$(nproc)" --target "$@" > /dev/null
}

# The options both take: `bench_options NAME DEFAULT_EVENTS "$@"` sets `events` (--events N)
# and `do_build` (0 with --no-build), answers --help, refuses anything else (exit status 2),
# then builds meterflow and the load generator unless --no-build.
bench_options() {
  local name=$1 default=$2
  shift 2
  events=$default
  do_build=1
  usage() {
    cat <<USAGE
Usage: bench/$name [--events N] [--no-build]
  --events N     events to generate (default $default)
  --no-build     use the binaries already in build-bench/
USAGE
  }
  while [ $# -gt 0 ]; do
    case "$1" in
      --events) events="$2"; shift 2 ;;
      --no-build) do_build=0; shift ;;
      --help|-h) usage; exit 0 ;;
      *) echo "$name: unknown option $1" >&2; usage >&2; exit 2 ;;
    esac
  done
  mkdir -p "$work"
  if [ "$do_build" = 1 ]; then
    bench_build meterflow meterflow-loadgen
  fi
}
