#!/usr/bin/env bash
# Builds harmonylite and runs the whole test suite under ctest, twice: a normal build in build/
# and an AddressSanitizer + UndefinedBehaviorSanitizer build in build-asan/.
#   scripts/test.sh            both builds
#   scripts/test.sh --fast     normal build only
#   extra arguments after -- go to ctest (e.g. -- -R capture)
set -euo pipefail
cd "$(dirname "$0")/.."
JOBS=$(nproc)
FAST=0
CTEST_ARGS=()
while [ $# -gt 0 ]; do
  case "$1" in
    --fast) FAST=1 ;;
    --) shift; CTEST_ARGS=("$@"); break ;;
    *) echo "usage: scripts/test.sh [--fast] [-- ctest args]" >&2; exit 2 ;;
  esac
  shift
done

run_suite() {
  local dir=$1; shift
  echo "== configure + build ($dir)"
  cmake -S . -B "$dir" -G Ninja "$@" >/dev/null
  cmake --build "$dir" -j "$JOBS"
  echo "== ctest ($dir)"
  ctest --test-dir "$dir" --output-on-failure -j "$JOBS" "${CTEST_ARGS[@]}"
}

start=$(date +%s)
run_suite build -DCMAKE_BUILD_TYPE=RelWithDebInfo
if [ "$FAST" -eq 0 ]; then
  # The sanitizer build checks memory errors and undefined behaviour in the same tests.
  export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1
  export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
  # The benchmark smoke tests only time things (and take 3x longer under ASan): normal build only.
  CTEST_ARGS=(-LE bench "${CTEST_ARGS[@]}")
  run_suite build-asan -DCMAKE_BUILD_TYPE=Debug -DHARMONY_SANITIZE=ON
fi
echo "== all tests passed in $(( $(date +%s) - start )) s"
