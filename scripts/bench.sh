#!/usr/bin/env bash
# The full benchmark (issue 8) in one command: builds Release into build-bench/ and runs
# harmony_bench (capture overhead, replication throughput, delay, catch-up, snapshot, resources;
# ours vs the naive HarmonyLite-structured mode) on a three-node loopback cluster.
# Results go to bench/results/<date>/: results.json, table.txt, delay.png, throughput.png.
#
#   scripts/bench.sh [--quick] [--wait-quiet [LOAD]] [harmony_bench options...]
#
# --quick            tiny sizes (seconds; the figures mean nothing), results under build-bench/
# --wait-quiet LOAD  wait (up to 30 min) until the 1-minute load average is below LOAD
#                    (default 1.5) before starting: figures from a busy machine are not meaningful
# Other options go to harmony_bench (e.g. --skip-snapshot, --seconds 60, --only ours).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="$root/build-bench"
quick=0
wait_load=""
args=()
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) quick=1; args+=("--quick"); shift ;;
    --wait-quiet)
      shift
      if [ $# -gt 0 ] && [[ "$1" =~ ^[0-9.]+$ ]]; then wait_load="$1"; shift; else wait_load=1.5; fi
      ;;
    *) args+=("$1"); shift ;;
  esac
done

command -v gnuplot >/dev/null || echo "bench: gnuplot not found (scripts/setup.sh installs gnuplot-nox): no plots"

cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$build" -j"$(nproc)" --target harmonylite capture_bench harmony_bench

if [ -n "$wait_load" ]; then
  for _ in $(seq 1 180); do
    load=$(cut -d' ' -f1 /proc/loadavg)
    awk -v l="$load" -v w="$wait_load" 'BEGIN { exit !(l < w) }' && break
    echo "bench: load average $load >= $wait_load, waiting"
    sleep 10
  done
fi

if [ "$quick" = 1 ]; then
  out="$build/bench-results/quick"
else
  out="$root/bench/results/$(date +%Y-%m-%d)"
fi
mkdir -p "$out"
echo "bench: load average before: $(cut -d' ' -f1-3 /proc/loadavg); results in $out"
"$build/harmony_bench" --out "$out" "${args[@]}"
echo "bench: load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
