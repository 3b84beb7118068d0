#!/usr/bin/env bash
# meterflow benchmark harness (issue 8): builds the engine and the bench tools (Release, in
# build-bench/), generates the event files, then runs on the same files, in the same run:
#   meterflow run (--threads 1 and 2), the single-threaded C++ ceiling, the same pipeline in
#   PostgreSQL SQL (throwaway cluster from pg_virtualenv) and in DuckDB (@duckdb/node-api),
# and prints one table (events, seconds, events/s, CPU seconds, peak RSS, bytes per event,
# ratio to the ceiling) plus a cross-check of accepted events and billed totals. With
# --streaming it then runs the streaming paths' benchmarks, each printing its own table.
# A baseline whose tool is missing is skipped with a note, never a failure.
set -euo pipefail

usage() {
  cat <<'USAGE'
Usage: bench/run.sh [options]
  --quick            smoke run for CI: 200k events, one repetition, nothing timed asserted
  --sizes "N ..."    event counts (default "1000000 10000000")
  --repeat R         runs per measurement; the table shows the fastest (default 2)
  --work DIR         data and outputs, kept after the run (default bench/work; the event
                     files take ~160 bytes per event)
  --skip "A ..."     skip systems: meterflow ceiling postgres duckdb
  --no-build         use the binaries already in build-bench/
  --streaming        then also the streaming paths, each with its own table: ingest latency
                     at fixed rates (bench/ingest.sh), Kafka -> PostgreSQL (bench/kafka.sh)
                     and re-rating (bench/rerate.sh); smaller with --quick
  --help             show this text
USAGE
}

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bench="$root/bench"
build="$root/build-bench"
work="$bench/work"
sizes="1000000 10000000"
repeat=2
skip=""
do_build=1
streaming=0
quick=0
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) sizes="200000"; repeat=1; quick=1; shift ;;
    --streaming) streaming=1; shift ;;
    --sizes) sizes="$2"; shift 2 ;;
    --repeat) repeat="$2"; shift 2 ;;
    --work) work="$2"; shift 2 ;;
    --skip) skip="$2"; shift 2 ;;
    --no-build) do_build=0; shift ;;
    --help|-h) usage; exit 0 ;;
    *) echo "run.sh: unknown option $1" >&2; usage >&2; exit 2 ;;
  esac
done
mkdir -p "$work"
work=$(cd "$work" && pwd)
# meterflow's output directories of this run (one per size), removed when the harness ends.
# Not removed between timed runs: on a file system that skips recently freed inodes when it
# allocates new ones (ext4 without a journal does, for 30 s), deleting 10,000 invoice files
# right before a run made that run's file creation cost 3-5 s of system time. A size's runs
# write into one directory instead; a rerun rewrites its files in place, as a user's does.
out_dirs=()
cleanup_outputs() { if [ ${#out_dirs[@]} -gt 0 ]; then rm -rf "${out_dirs[@]}"; fi; }
trap cleanup_outputs EXIT
results="$work/results.tsv"
checks="$work/checks.tsv"
notes=()
: > "$results"
: > "$checks"

say() { echo "== $*" >&2; }
note() { notes+=("$*"); say "note: $*"; }
skipped() { case " $skip " in *" $1 "*) return 0 ;; esac; return 1; }
have() { command -v "$1" > /dev/null 2>&1; }

# --- machine ---------------------------------------------------------------------------------
cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')
mem_gib=$(awk '/MemTotal/ {printf "%.1f", $2 / 1048576}' /proc/meminfo)
machine="$(nproc) CPUs, ${cpu:-unknown CPU}, ${mem_gib} GiB RAM, $(uname -sr)"
say "machine: $machine"
revision="$(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo unknown)"
dirty=$(git -C "$root" status --porcelain -- actors runtime persistence pricing config 2>/dev/null | wc -l)
[ "$dirty" -gt 0 ] && revision="$revision + $dirty uncommitted engine files"
say "load average at start: $(cut -d' ' -f1-3 /proc/loadavg) (other work on the machine skews timings)"

if [ ! -x /usr/bin/time ]; then
  echo "run.sh: /usr/bin/time (Debian package 'time') is needed for peak RSS" >&2
  exit 2
fi

# --- build -----------------------------------------------------------------------------------
if [ "$do_build" = 1 ]; then
  say "building (Release) in $build"
  cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release -DMETERFLOW_BENCH=ON \
    -DMETERFLOW_TESTS=OFF > "$work/cmake.log" 2>&1 || { cat "$work/cmake.log" >&2; exit 2; }
  targets=(meterflow meterflow-loadgen meterflow-ceiling)
  [ "$streaming" = 1 ] && targets+=(meterflow-http-bench)
  cmake --build "$build" -j"$(nproc)" --target "${targets[@]}" \
    > "$work/build.log" 2>&1 || { tail -50 "$work/build.log" >&2; exit 2; }
fi
meterflow="$build/meterflow"
loadgen="$build/bench/meterflow-loadgen"
ceiling="$build/bench/meterflow-ceiling"
for b in "$meterflow" "$loadgen" "$ceiling"; do
  [ -x "$b" ] || { echo "run.sh: $b missing (build failed?)" >&2; exit 2; }
done

# --- optional baselines ----------------------------------------------------------------------
pg_ok=0
if ! skipped postgres; then
  if have pg_virtualenv && have psql && [ -d /usr/lib/postgresql/15/bin ]; then
    pg_ok=1
  else
    note "postgres skipped: pg_virtualenv (postgresql-common) or PostgreSQL 15 not installed"
  fi
fi
duck_ok=0
if ! skipped duckdb; then
  if ! have node; then
    note "duckdb skipped: Node.js not installed"
  elif [ ! -d "$bench/duckdb/node_modules/@duckdb/node-api" ] && ! have npm; then
    note "duckdb skipped: @duckdb/node-api not installed and no npm"
  else
    if [ ! -d "$bench/duckdb/node_modules/@duckdb/node-api" ]; then
      say "installing @duckdb/node-api (npm install in bench/duckdb)"
      (cd "$bench/duckdb" && npm install --no-audit --no-fund > "$work/npm.log" 2>&1) || true
    fi
    if [ -d "$bench/duckdb/node_modules/@duckdb/node-api" ]; then
      duck_ok=1
    else
      note "duckdb skipped: npm install of @duckdb/node-api failed (see $work/npm.log)"
    fi
  fi
fi

# --- measurement -----------------------------------------------------------------------------
# time_run LOG CMD...: runs CMD under GNU time; sets wall, cpu_s, rss_kb; returns CMD's status.
time_run() {
  local log=$1
  shift
  local status=0
  /usr/bin/time -v -o "$log.time" "$@" > "$log" 2> "$log.err" || status=$?
  wall=$(awk -F': ' '/Elapsed \(wall clock\)/ {
      n = split($2, p, ":"); s = 0; for (i = 1; i <= n; i++) s = s * 60 + p[i]; print s }' "$log.time")
  cpu_s=$(awk -F': ' '/User time/ {u = $2} /System time/ {s = $2} END {printf "%.2f", u + s}' "$log.time")
  rss_kb=$(awk -F': ' '/Maximum resident set size/ {print $2}' "$log.time")
  return $status
}

# record SYSTEM THREADS EVENTS SECONDS CPU RSS_KB
record() {
  printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$@" >> "$results"
}

# best RUNS...: of "wall cpu rss" triples, the fastest wall (and its cpu), the largest rss.
best() {
  printf '%s\n' "$@" | awk '{ if (NR == 1 || $1 < w) { w = $1; c = $2 } if ($3 > r) r = $3 }
                           END { print w, c, r }'
}

mem_available_kb() { awk '/MemAvailable/ {print $2}' /proc/meminfo; }
meterflow_bytes_per_event=3000 # until measured: a guard against running out of memory

for n in $sizes; do
  file="$work/events-$n.ndjson"
  say "generating $n events -> $file"
  start=$(date +%s.%N)
  "$loadgen" --events "$n" --seed 42 --customers 10000 --span 30d --out "$file" 2> "$work/loadgen-$n.log"
  gen_s=$(awk -v a="$start" -v b="$(date +%s.%N)" 'BEGIN {print b - a}')
  note "loadgen: $n events ($(du -h "$file" | cut -f1)) in $(printf '%.2f' "$gen_s") s; $(cat "$work/loadgen-$n.log" | sed 's/^meterflow-loadgen: //')"

  if ! skipped ceiling; then
    runs=()
    for ((r = 1; r <= repeat; r++)); do
      say "ceiling, $n events, run $r/$repeat"
      time_run "$work/ceiling-$n.out" "$ceiling" "$file" || { cat "$work/ceiling-$n.out.err" >&2; exit 1; }
      runs+=("$wall $cpu_s $rss_kb")
    done
    read -r w c k <<< "$(best "${runs[@]}")"
    record ceiling 1 "$n" "$w" "$c" "$k"
    accepted=$(sed -n 's/.* \([0-9]*\) accepted.*/\1/p' "$work/ceiling-$n.out")
    printf '%s\t%s\t%s\t%s\n' ceiling "$n" "$accepted" \
      "$(sed -n 's/.*flat total \([0-9.]*\).*/\1 (flat prices only)/p' "$work/ceiling-$n.out")" >> "$checks"
  fi

  if ! skipped meterflow; then
    predicted_kb=$(( n * meterflow_bytes_per_event / 1024 ))
    avail_kb=$(mem_available_kb)
    # Half of what is available: the machine is shared, and swapping would time the disk.
    if [ "$predicted_kb" -gt $(( avail_kb / 2 )) ]; then
      note "meterflow skipped at $n events: predicted peak RSS $((predicted_kb / 1024)) MiB ($meterflow_bytes_per_event bytes/event as measured at the previous size) exceeds half of the $((avail_kb / 1024)) MiB available"
    else
      out="$work/meterflow-out-$n"
      rm -rf "$out" # a directory left by an interrupted run
      out_dirs+=("$out")
      for threads in 1 2; do
        runs=()
        for ((r = 1; r <= repeat; r++)); do
          say "meterflow run --threads $threads, $n events, run $r/$repeat"
          # --quiet drops the progress line; the invoice summary on stdout goes to the log.
          if ! time_run "$work/meterflow-$n-t$threads.out" "$meterflow" run --config "$bench/config.json" \
              --events "$file" --out "$out" --quiet --threads "$threads"; then
            echo "run.sh: meterflow run failed (exit status above 0); stderr:" >&2
            tail -20 "$work/meterflow-$n-t$threads.out.err" >&2
            exit 1
          fi
          runs+=("$wall $cpu_s $rss_kb")
        done
        read -r w c k <<< "$(best "${runs[@]}")"
        record meterflow "$threads" "$n" "$w" "$c" "$k"
        meterflow_bytes_per_event=$(( k * 1024 / n ))
      done
      if have jq; then
        printf '%s\t%s\t%s\t%s\n' meterflow "$n" "$(jq -r .counts.accepted "$out/reconciliation.json")" \
          "$(jq -r .totals.invoice_totals "$out/reconciliation.json")" >> "$checks"
      else
        printf '%s\t%s\tn/a\tn/a (jq not installed)\n' meterflow "$n" >> "$checks"
      fi
    fi
  fi

  if [ "$pg_ok" = 1 ]; then
    runs=()
    for ((r = 1; r <= repeat; r++)); do
      say "postgres, $n events, run $r/$repeat (cluster start not timed)"
      log="$work/postgres-$n.out"
      if ! pg_virtualenv -v 15 bash "$bench/postgres/pipeline.sh" "$file" > "$log" 2>&1; then
        note "postgres failed at $n events (see $log)"
        runs=()
        break
      fi
      w=$(sed -n 's/^seconds=//p' "$log")
      k=$(awk '/VmHWM/ {print $2}' "$log")
      runs+=("$w - ${k:-0}")
    done
    if [ ${#runs[@]} -gt 0 ]; then
      read -r w c k <<< "$(best "${runs[@]}")"
      record postgres 'auto' "$n" "$w" - "$k"
      printf '%s\t%s\t%s\t%s\n' postgres "$n" "$(sed -n 's/.* accepted=\([0-9]*\).*/\1/p' "$log")" \
        "$(sed -n 's/.* total=\([0-9.]*\).*/\1/p' "$log")" >> "$checks"
    fi
  fi

  if [ "$duck_ok" = 1 ]; then
    runs=()
    for ((r = 1; r <= repeat; r++)); do
      say "duckdb, $n events, run $r/$repeat"
      log="$work/duckdb-$n.out"
      if ! time_run "$log" node "$bench/duckdb/pipeline.mjs" "$file" 2; then
        note "duckdb failed at $n events (see $log.err)"
        runs=()
        break
      fi
      runs+=("$wall $cpu_s $rss_kb")
    done
    if [ ${#runs[@]} -gt 0 ]; then
      read -r w c k <<< "$(best "${runs[@]}")"
      record duckdb 2 "$n" "$w" "$c" "$k"
      printf '%s\t%s\t%s\t%s\n' duckdb "$n" "$(sed -n 's/.* accepted=\([0-9]*\).*/\1/p' "$log")" \
        "$(sed -n 's/.* total=\([0-9.]*\).*/\1/p' "$log")" >> "$checks"
    fi
  fi
done

# --- report ----------------------------------------------------------------------------------
echo
echo "machine: $machine"
echo "engine: $revision"
echo "load average at end: $(cut -d' ' -f1-3 /proc/loadavg); best of $repeat run(s) per row"
echo
awk -F'\t' '
  { sys[NR] = $1; thr[NR] = $2; n[NR] = $3; s[NR] = $4; c[NR] = $5; k[NR] = $6
    if ($1 == "ceiling") ceil[$3] = $3 / $4 }
  END {
    fmt = "| %-9s | %7s | %10s | %8s | %10s | %7s | %9s | %8s | %10s |\n"
    printf fmt, "system", "threads", "events", "seconds", "events/s", "cpu s", "peak RSS", "B/event", "vs ceiling"
    printf "|-----------|---------|------------|----------|------------|---------|-----------|----------|------------|\n"
    for (i = 1; i <= NR; i++) {
      rate = n[i] / s[i]
      rss = (k[i] > 0) ? sprintf("%.0f MiB", k[i] / 1024) : "n/a"
      bpe = (k[i] > 0) ? sprintf("%.0f", k[i] * 1024 / n[i]) : "n/a"
      ratio = (n[i] in ceil) ? sprintf("%.3f", rate / ceil[n[i]]) : "n/a"
      printf fmt, sys[i], thr[i], n[i], sprintf("%.2f", s[i]), sprintf("%.0f", rate), c[i], rss, bpe, ratio
    }
  }' "$results"
echo
echo "cross-check (same data, same prices): accepted events and total billed (USD)"
awk -F'\t' '{ printf "  %-9s %10s events: accepted %s, total %s\n", $1, $2, $3, $4 }' "$checks"
if [ ${#notes[@]} -gt 0 ]; then
  echo
  echo "notes:"
  printf '  - %s\n' "${notes[@]}"
fi
echo
echo "postgres: wall time of the SQL pipeline (COPY included, cluster start excluded); peak RSS is"
echo "the backend's VmHWM (parallel workers and shared memory not counted); cpu not measured."
echo "ceiling total uses flat prices for every customer (it prices no tiers): it differs from"
echo "the others by the tiered customers' difference."

# --- streaming paths -------------------------------------------------------------------------
if [ "$streaming" = 1 ]; then
  if [ "$quick" = 1 ]; then
    ingest_args=(--rates "50000 200000" --seconds 2)
    stream_events=50000
  else
    ingest_args=()
    stream_events=200000
  fi
  run_streaming() {
    echo
    echo "== bench/$1"
    "$bench/$1" --no-build "${@:2}" || echo "bench/$1 failed (exit status $?); its output is above"
  }
  run_streaming ingest.sh "${ingest_args[@]}"
  run_streaming kafka.sh --events "$stream_events"
  run_streaming rerate.sh --events "$stream_events"
fi
