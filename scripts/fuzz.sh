#!/usr/bin/env bash
# Builds the libFuzzer targets (tests/fuzz) with clang, ASan and UBSan, then runs each for a
# given time, one process each, one after the other (the build machines are small), and
# reports the line coverage its corpus reaches in the code under test (llvm-cov).
#
#   scripts/fuzz.sh [seconds per target (default 600)] [decode|config ...]
#
# New inputs go to <build>/fuzz/corpus-<name> (seeded from tests/fuzz/corpus/<name>, which is
# left untouched), findings to <build>/fuzz/artifacts-<name>/, the fuzzer's output to
# <build>/fuzz/fuzz_<name>.log. Replay a finding with: <build>/fuzz/fuzz_<name> <file>.
# Build directories: $HARMONY_FUZZ_BUILD (default build-fuzz in the repository) and, for
# coverage, the same name with -cov appended. HARMONY_FUZZ_COVERAGE=0 skips the coverage step.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
build=${HARMONY_FUZZ_BUILD:-$root/build-fuzz}
seconds=${1:-600}
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(decode config)

configure() {  # <build dir> [extra cmake args]
  local dir=$1
  shift
  cmake -S "$root" -B "$dir" -G Ninja -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ \
    -DCMAKE_BUILD_TYPE=RelWithDebInfo -DHARMONY_FUZZ=ON "$@" >/dev/null
  cmake --build "$dir" -j2 --target $(printf 'fuzz_%s ' "${targets[@]}")
}
configure "$build"

status=0
for t in "${targets[@]}"; do
  bin="$build/fuzz/fuzz_$t"
  corpus="$build/fuzz/corpus-$t"
  artifacts="$build/fuzz/artifacts-$t/"
  log="$build/fuzz/fuzz_$t.log"
  mkdir -p "$corpus" "$artifacts"
  echo "== fuzz_$t for ${seconds}s (log $log)"
  if "$bin" -max_total_time="$seconds" -print_final_stats=1 -artifact_prefix="$artifacts" \
    -dict="$root/tests/fuzz/$t.dict" "$corpus" "$root/tests/fuzz/corpus/$t" >"$log" 2>&1; then
    grep -E '^#[0-9]+ +(INITED|DONE)|^stat::(number_of_executed_units|peak_rss_mb)' "$log" || true
  else
    status=1
    echo "fuzz_$t found a problem: see $log and $artifacts" >&2
    grep -E 'ERROR|SUMMARY|property violated|runtime error|Test unit written' "$log" >&2 || true
  fi
done

if [ "${HARMONY_FUZZ_COVERAGE:-1}" != 0 ]; then
  cov="$build-cov"
  configure "$cov" -DHARMONY_FUZZ_COVERAGE=ON
  declare -A sources=([decode]="replicator/wire/codec.cpp replicator/wire/wire.cpp"
                      [config]="replicator/config/config.cpp")
  for t in "${targets[@]}"; do
    rm -f "$cov"/fuzz/$t-*.profraw
    LLVM_PROFILE_FILE="$cov/fuzz/$t-%p.profraw" "$cov/fuzz/fuzz_$t" -runs=0 \
      "$build/fuzz/corpus-$t" "$root/tests/fuzz/corpus/$t" >/dev/null 2>&1 || true
    llvm-profdata merge -sparse "$cov"/fuzz/$t-*.profraw -o "$cov/fuzz/$t.profdata"
    echo "== line coverage of the fuzz_$t corpus"
    # shellcheck disable=SC2086
    llvm-cov report "$cov/fuzz/fuzz_$t" -instr-profile="$cov/fuzz/$t.profdata" \
      $(printf "$root/%s " ${sources[$t]})
  done
fi
exit $status
