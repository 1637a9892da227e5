#!/usr/bin/env bash
# The full benchmark (issues 8 and 18) in one command: builds into build-bench/ and runs
# harmony_bench (capture overhead, replication throughput, delay, catch-up, snapshot, resources,
# the shell on a busy replica) on three-node loopback clusters.
# Results go to bench/results/<date>/: results.json, table.txt, delay.png, throughput.png.
#
#   scripts/bench.sh [--quick] [--wait-quiet [LOAD]] [--baseline [REF]] [harmony_bench options...]
#
# --quick            tiny sizes (seconds; the figures mean nothing), results under build-bench/
# --wait-quiet LOAD  wait (up to 30 min) until the 1-minute load average is below LOAD
#                    (default 1.5) before starting: figures from a busy machine are not meaningful
# --baseline REF     also build REF's harmonylite and libharmony (a git worktree under
#                    build-bench/baseline-src, removed afterwards; its build directory is kept
#                    for the next run) and run its clusters beside ours, scenario by scenario,
#                    as the "main" column with ratios. REF defaults to the commit issue 18's
#                    work started from (below); the machine is shared, so only ratios measured
#                    in the same run compare.
# --baseline-bin PATH  the baseline's harmonylite already built (e.g. main's build/harmonylite at
#                    the commit wanted; `PATH -version` names it): nothing is built for it
# --use-build DIR    run DIR's harmony_bench (and the harmonylite beside it) as built, e.g. a
#                    developer's build/ configured RelWithDebInfo: no build-bench/ of our own
# Other options go to harmony_bench (e.g. --skip-snapshot, --seconds 60, --only ours, --naive).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="$root/build-bench"
# main as issue 18's replication work started from it (h18-apply branched here).
default_baseline=434550f8d8ebc2f01987ac1d6c5ac97b1a803b87
baseline=""
use_build=""
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
    --use-build) use_build="$(cd "$2" && pwd)"; shift 2 ;;
    --baseline-bin)
      shift
      args+=(--baseline-bin "$1")
      export HARMONY_BENCH_BASELINE="$("$1" -version 2>/dev/null | head -1 || echo "$1")"
      shift
      ;;
    --baseline)
      shift
      if [ $# -gt 0 ] && [[ "$1" != --* ]]; then baseline="$1"; shift; else baseline="$default_baseline"; fi
      ;;
    *) args+=("$1"); shift ;;
  esac
done

command -v gnuplot >/dev/null || echo "bench: gnuplot not found (scripts/setup.sh installs gnuplot-nox): no plots"

# ccache when present: the baseline's unchanged files then cost nothing to build (its build
# directory sits at the same depth under its source as ours, so the relative paths match), nor
# do files a developer's build/ (configured as below) compiled already. The directory is left
# out of the hash so that build/ and build-bench/ share entries (only the debug info's
# compilation directory is then wrong, which no figure depends on).
launcher=()
if command -v ccache >/dev/null; then
  export CCACHE_BASEDIR="${CCACHE_BASEDIR:-$root}" CCACHE_NOHASHDIR=true
  export CCACHE_SLOPPINESS="${CCACHE_SLOPPINESS:-pch_defines,time_macros,include_file_mtime,include_file_ctime}"
  launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache -DCMAKE_C_COMPILER_LAUNCHER=ccache)
fi
# RelWithDebInfo (-O2 -g) since issue 18: perf and callgrind profiles of the very binaries
# measured need their symbols, and the build shares ccache entries with build/.
build_type=RelWithDebInfo
if [ -n "$use_build" ]; then
  bench_bin="$use_build/harmony_bench"
else
  cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=$build_type "${launcher[@]}" >/dev/null
  cmake --build "$build" -j"$(nproc)" --target harmonylite capture_bench harmony_bench
  bench_bin="$build/harmony_bench"
fi

if [ -n "$baseline" ]; then
  commit=$(git -C "$root" rev-parse --verify "$baseline^{commit}")
  src="$build/baseline-src"
  remove_worktree() { git -C "$root" worktree remove --force "$src" 2>/dev/null || rm -rf "$src"; }
  trap remove_worktree EXIT
  # Keep the baseline's build directory across runs (outside the worktree, moved in and out).
  saved="$build/baseline-build"
  remove_worktree
  git -C "$root" worktree prune
  git -C "$root" worktree add --detach "$src" "$commit" >/dev/null
  if [ -d "$saved" ]; then mv "$saved" "$src/build-bench"; fi
  cmake -S "$src" -B "$src/build-bench" -G Ninja -DCMAKE_BUILD_TYPE=$build_type "${launcher[@]}" >/dev/null
  cmake --build "$src/build-bench" -j"$(nproc)" --target harmonylite harmony
  rm -rf "$saved"
  mv "$src/build-bench" "$saved"
  args+=(--baseline-bin "$saved/harmonylite")
  export HARMONY_BENCH_BASELINE="$baseline ($commit)"
  remove_worktree
  trap - EXIT
fi

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
"$bench_bin" --out "$out" "${args[@]}"
echo "bench: load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
