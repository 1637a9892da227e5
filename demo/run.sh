#!/usr/bin/env bash
# The README's main job: performs the whole walkthrough of HarmonyLite's demo page by itself,
# with the seed's own commands, run from build/:
#   create the demo databases, start three nodes, insert on node 1 and read it on 2 and 3,
#   update one book on nodes 1 and 2 at once and check one title wins everywhere, stop node 3,
#   take a snapshot with node 1, insert while node 3 is away, restart node 3 and find the book.
# Each step prints PASS/FAIL; the end prints a content checksum per node. Everything started
# here is stopped on exit. Exit status: 0 when every step passed.
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${HARMONY_BUILD_DIR:-$ROOT/build}
LOGS=${HARMONY_DEMO_LOGS:-/tmp/harmonylite-demo-logs}
STEP_TIMEOUT=${HARMONY_DEMO_TIMEOUT:-30}   # seconds to wait for a step's effect
FAILED=0
declare -A PID

say()  { printf '\n\033[1m== %s\033[0m\n' "$*"; }
pass() { printf '   \033[32mPASS\033[0m %s\n' "$*"; }
fail() { printf '   \033[31mFAIL\033[0m %s\n' "$*"; FAILED=1; }
run()  { printf '   $ %s\n' "$*"; "$@"; }

cleanup() {
  for n in 3 2 1; do
    if [ -n "${PID[$n]:-}" ] && kill -0 "${PID[$n]}" 2>/dev/null; then
      kill -TERM "${PID[$n]}" 2>/dev/null
    fi
  done
  for n in 3 2 1; do
    [ -n "${PID[$n]:-}" ] && wait "${PID[$n]}" 2>/dev/null
  done
}
trap cleanup EXIT

# wait_for <seconds> <command...>: polls until the command succeeds.
wait_for() {
  local limit=$1; shift
  local deadline=$(( $(date +%s%N) / 1000000 + limit * 1000 ))
  while [ $(( $(date +%s%N) / 1000000 )) -lt $deadline ]; do
    if "$@" >/dev/null 2>&1; then return 0; fi
    sleep 0.05
  done
  return 1
}
has_row() { [ "$(sqlite3 "$1" "$2")" = "$3" ]; }

# The seed's three start commands, verbatim (from build/, logs to $LOGS).
start_node() {
  local n=$1
  case $n in
    1) ./harmonylite -config examples/node-1-config.toml -cluster-addr localhost:4221 >>"$LOGS/node-1.log" 2>&1 & ;;
    2) ./harmonylite -config examples/node-2-config.toml -cluster-addr localhost:4222 -cluster-peers 'nats://localhost:4221/' >>"$LOGS/node-2.log" 2>&1 & ;;
    3) ./harmonylite -config examples/node-3-config.toml -cluster-addr localhost:4223 -cluster-peers 'nats://localhost:4221/,nats://localhost:4222/' >>"$LOGS/node-3.log" 2>&1 & ;;
  esac
  PID[$n]=$!
}
node_ready() { grep -q "is replicating" "$LOGS/node-$1.log"; }

say "Build"
if [ ! -x "$BUILD/harmonylite" ] || [ ! -f "$BUILD/libharmony.so" ]; then
  cmake -S "$ROOT" -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null && cmake --build "$BUILD" -j "$(nproc)" || { fail "build"; exit 1; }
fi
pass "build/harmonylite and build/libharmony.so are there"

say "Create the demo databases with sample book data"
"$ROOT/demo/create-databases.sh" || { fail "creating databases"; exit 1; }
rm -rf "$LOGS" && mkdir -p "$LOGS"
pass "three databases with the same seven books"

cd "$BUILD"
say "Start the three-node cluster (the seed's commands)"
for n in 1 2 3; do start_node $n; printf '   started node %s (pid %s), log %s\n' $n "${PID[$n]}" "$LOGS/node-$n.log"; done
ok=1
for n in 1 2 3; do wait_for 60 node_ready $n || { fail "node $n did not come up; see $LOGS/node-$n.log"; tail -5 "$LOGS/node-$n.log"; ok=0; }; done
[ $ok = 1 ] && pass "all three nodes replicating" || exit 1

say "Testing replication: insert a new book on node 1"
start_ms=$(( $(date +%s%N) / 1000000 ))
run sqlite3 /tmp/harmonylite-1.db "INSERT INTO Books (title, author, publication_year) VALUES ('Dune', 'Frank Herbert', 1965);"
for n in 2 3; do
  if wait_for "$STEP_TIMEOUT" has_row /tmp/harmonylite-$n.db "SELECT count(*) FROM Books WHERE title='Dune';" 1; then
    pass "node $n has Dune after $(( $(date +%s%N) / 1000000 - start_ms )) ms: $(sqlite3 /tmp/harmonylite-$n.db "SELECT * FROM Books WHERE title='Dune';")"
  else
    fail "node $n does not have Dune"
  fi
done

say "Concurrent write handling: update the same book on nodes 1 and 2 at once"
BOOK_ID=$(sqlite3 /tmp/harmonylite-1.db "SELECT id FROM Books LIMIT 1;")
echo "   BOOK_ID=$BOOK_ID"
# Both updates start together. The demo gives each shell a busy timeout, as applications should
# have: an application write can meet the replicator's (millisecond-long) apply transaction.
sqlite3 -cmd ".timeout 2000" /tmp/harmonylite-1.db "UPDATE Books SET title='Updated on Node 1' WHERE id=$BOOK_ID;" &
u1=$!
sqlite3 -cmd ".timeout 2000" /tmp/harmonylite-2.db "UPDATE Books SET title='Updated on Node 2' WHERE id=$BOOK_ID;" &
u2=$!
wait $u1 && wait $u2 && pass "both updates committed" || fail "an update failed"
same_title() {
  local t1 t2 t3
  t1=$(sqlite3 /tmp/harmonylite-1.db "SELECT title FROM Books WHERE id=$BOOK_ID;")
  t2=$(sqlite3 /tmp/harmonylite-2.db "SELECT title FROM Books WHERE id=$BOOK_ID;")
  t3=$(sqlite3 /tmp/harmonylite-3.db "SELECT title FROM Books WHERE id=$BOOK_ID;")
  [ "$t1" = "$t2" ] && [ "$t2" = "$t3" ] && [ "${t1#Updated on Node }" != "$t1" ]
}
if wait_for "$STEP_TIMEOUT" same_title; then
  pass "all three nodes show '$(sqlite3 /tmp/harmonylite-3.db "SELECT title FROM Books WHERE id=$BOOK_ID;")' (the newer write by hybrid logical clock)"
else
  fail "titles differ:"; for n in 1 2 3; do sqlite3 /tmp/harmonylite-$n.db "SELECT title FROM Books WHERE id=$BOOK_ID;"; done
fi

say "Snapshots and recovery: stop node 3"
kill -TERM "${PID[3]}"; wait "${PID[3]}"; rc=$?; unset 'PID[3]'
[ $rc -eq 0 ] && pass "node 3 stopped cleanly" || fail "node 3 exited with $rc"

say "Take a snapshot with node 1"
if run ./harmonylite -config examples/node-1-config.toml -save-snapshot >>"$LOGS/save-snapshot.log" 2>&1; then
  pass "snapshot saved ($(grep -Eo 'snapshot [^ ]+ .*(saved|uploaded).*' "$LOGS/save-snapshot.log" | tail -1))"
else
  fail "-save-snapshot failed:"; tail -5 "$LOGS/save-snapshot.log"
fi

say "Make a change that node 3 will miss while offline"
run sqlite3 /tmp/harmonylite-1.db "INSERT INTO Books (title, author, publication_year) VALUES ('New book while offline', 'Some Author', 2023);"
wait_for "$STEP_TIMEOUT" has_row /tmp/harmonylite-2.db "SELECT count(*) FROM Books WHERE title='New book while offline';" 1 \
  && pass "node 2 has it" || fail "node 2 does not have it"

say "Restart node 3: it recovers and catches up with the missed change"
start_node 3
wait_for 60 node_ready 3 || fail "node 3 did not come back; see $LOGS/node-3.log"
if wait_for "$STEP_TIMEOUT" has_row /tmp/harmonylite-3.db "SELECT title FROM Books WHERE title='New book while offline';" "New book while offline"; then
  pass "node 3: $(sqlite3 /tmp/harmonylite-3.db "SELECT title FROM Books WHERE title='New book while offline';")"
else
  fail "node 3 does not have the new book"
fi

say "Content checksum per node"
sums=()
for n in 1 2 3; do
  s=$(sqlite3 /tmp/harmonylite-$n.db ".load ./libharmony" "SELECT harmony_checksum('Books');" 2>&1)
  sums+=("$s")
  printf '   node %s  %s  (%s books)\n' $n "$s" "$(sqlite3 /tmp/harmonylite-$n.db 'SELECT count(*) FROM Books')"
done
if [ "${sums[0]}" = "${sums[1]}" ] && [ "${sums[1]}" = "${sums[2]}" ]; then pass "identical on all nodes"; else fail "checksums differ"; fi

say "Stop everything"
cleanup
pass "all nodes stopped"
if [ $FAILED -eq 0 ]; then printf '\n\033[32mAll steps PASS\033[0m\n'; else printf '\n\033[31mSome steps FAILED\033[0m (logs in %s)\n' "$LOGS"; fi
exit $FAILED
