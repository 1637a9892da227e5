#!/usr/bin/env bash
# Builds harmonylite and runs the test suite under ctest: every test on a normal build in build/,
# then the unit, SQL, security and [smoke] integration tests on an AddressSanitizer +
# UndefinedBehaviorSanitizer build in build-asan/.
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

# run_suite DIR "TARGETS" CMAKE_ARGS...: configure, build TARGETS (empty: all), run ctest.
run_suite() {
  local dir=$1 targets=$2
  shift 2
  local t0
  t0=$(date +%s)
  echo "== configure + build ($dir)"
  cmake -S . -B "$dir" -G Ninja "$@" >/dev/null
  # shellcheck disable=SC2086  # TARGETS is a word list
  cmake --build "$dir" -j "$JOBS" ${targets:+--target $targets}
  echo "== build ($dir) took $(( $(date +%s) - t0 )) s; ctest ($dir)"
  t0=$(date +%s)
  ctest --test-dir "$dir" --output-on-failure -j "$JOBS" "${CTEST_ARGS[@]}"
  echo "== ctest ($dir) took $(( $(date +%s) - t0 )) s"
}

# The targets the sanitizer run needs: the test executables that exist, and what they start.
asan_targets() {
  local targets="unit_tests integration_tests harmonylite harmony"
  if compgen -G "tests/security/*.cpp" >/dev/null; then targets="$targets security_tests"; fi
  echo "$targets"
}

start=$(date +%s)
run_suite build "" -DCMAKE_BUILD_TYPE=RelWithDebInfo
if [ "$FAST" -eq 0 ]; then
  # The sanitizer build checks memory errors and undefined behaviour on every unit, SQL and
  # security test and on the integration tests tagged [smoke] (one of each data path:
  # replication, restart, bad input, snapshot walkthrough, health, embedded server). Running every integration test a
  # second time under ASan doubled the suite for little: they mostly wait on processes. The
  # benchmarks and the soak harness only time things: not built here.
  export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1
  export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
  CTEST_ARGS=(-L 'unit|sql|smoke|security' "${CTEST_ARGS[@]}")
  run_suite build-asan "$(asan_targets)" \
    -DCMAKE_BUILD_TYPE=Debug -DHARMONY_SANITIZE=ON
fi
echo "== all tests passed in $(( $(date +%s) - start )) s"
