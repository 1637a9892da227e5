#!/usr/bin/env bash
# Capture through the stock sqlite3 shell: `.load <build>/libharmony` and harmony_enable('Books')
# in one session, then writes from separate plain sessions that never load the extension (with
# PRAGMA trusted_schema=OFF, recursive_triggers on and off) are captured, harmony_status() shows
# them pending, and bad input gets a clear error. Usage: capture_shell.sh <build dir>
# Exits non-zero with a message naming the failed check.
set -u

BUILD="${1:?usage: capture_shell.sh <build dir>}"
BUILD="$(cd "$BUILD" 2>/dev/null && pwd)" || { echo "FAIL: build directory $1 not found"; exit 1; }
EXT="$BUILD/libharmony"
[ -f "$EXT.so" ] || { echo "FAIL: $EXT.so not found (build the 'harmony' target)"; exit 1; }
command -v sqlite3 >/dev/null || { echo "FAIL: sqlite3 shell not installed"; exit 1; }

# A sanitizer build's libharmony.so needs the ASan runtime loaded first in the host process.
# libstdc++ is preloaded too: the shell is a C program, and ASan resolves the real __cxa_throw
# at start-up, so without it the first C++ exception inside the extension aborts the shell.
EXT_ENV=()
if nm -D "$EXT.so" 2>/dev/null | grep -q __asan ||
   grep -q '^HARMONY_SANITIZE:BOOL=ON' "$BUILD/CMakeCache.txt" 2>/dev/null; then
  EXT_ENV=(env "LD_PRELOAD=$(gcc -print-file-name=libasan.so) $(g++ -print-file-name=libstdc++.so.6)"
           ASAN_OPTIONS=detect_leaks=0)
  echo "note: sanitizer build, loading the extension with ${EXT_ENV[*]}"
fi

TMP="$(mktemp -d /tmp/harmony-capture-shell-XXXXXX)"
trap 'rm -rf "$TMP"' EXIT
DB="$TMP/books.db"
FAILURES=0
CHECKS=0

fail() { echo "FAIL: $*"; FAILURES=$((FAILURES + 1)); }

# ext DB SQL...: a shell session that loads the extension first (each SQL is one argument).
ext() {
  local db="$1"; shift
  "${EXT_ENV[@]}" sqlite3 -batch "$db" ".load $EXT" "$@" 2>&1
}
# plain DB SQL: a shell session that never loads the extension.
plain() { sqlite3 -batch "$1" "$2" 2>&1; }

# expect NAME WANT CMD...: the command succeeds and prints exactly WANT.
expect() {
  local name="$1" want="$2"; shift 2
  local out rc
  out="$("$@" 2>&1)"; rc=$?
  CHECKS=$((CHECKS + 1))
  if [ $rc -ne 0 ] || [ "$out" != "$want" ]; then
    fail "$name: expected [$want] (exit 0), got [$out] (exit $rc)"
  fi
}
# expect_error NAME PATTERN... -- CMD...: the command fails and its output contains each PATTERN.
expect_error() {
  local name="$1"; shift
  local patterns=()
  while [ "$1" != "--" ]; do patterns+=("$1"); shift; done
  shift
  local out rc
  out="$("$@" 2>&1)"; rc=$?
  CHECKS=$((CHECKS + 1))
  if [ $rc -eq 0 ]; then fail "$name: expected an error, got exit 0 and [$out]"; return; fi
  if echo "$out" | grep -qi 'AddressSanitizer\|runtime error\|Segmentation'; then
    fail "$name: crashed or sanitizer report: [$out]"; return
  fi
  for p in "${patterns[@]}"; do
    if ! grep -qF -- "$p" <<<"$out"; then fail "$name: error [$out] does not mention [$p]"; fi
  done
}

status_field() { ext "$DB" "SELECT json_extract(harmony_status(), '$1');"; }

# --- set up like the seed walkthrough --------------------------------------------------------
plain "$DB" "CREATE TABLE Books (id INTEGER PRIMARY KEY, title TEXT NOT NULL, author TEXT,
  publication_year INTEGER);
INSERT INTO Books VALUES (1, 'The Hobbit', 'J.R.R. Tolkien', 1937);
CREATE TABLE Notes (body TEXT);
CREATE VIRTUAL TABLE Search USING fts5(body);" >/dev/null || { echo "FAIL: cannot create $DB"; exit 1; }

VERSION="$(sed -n 's/^CMAKE_PROJECT_VERSION:[A-Z]*=//p' "$BUILD/CMakeCache.txt" 2>/dev/null)"
if [ -n "$VERSION" ]; then
  expect "harmony_version() is the project version" "$VERSION" ext "$DB" "SELECT harmony_version();"
else
  CHECKS=$((CHECKS + 1))
  [ -n "$(ext "$DB" "SELECT harmony_version();")" ] || fail "harmony_version() is empty"
fi
expect "harmony_enable('Books') enables one table" "1" ext "$DB" "SELECT harmony_enable('Books');"
expect "harmony_enable is idempotent (any case)" "0" ext "$DB" "SELECT harmony_enable('books');"
expect "'*' skips what cannot be captured" "0" ext "$DB" "SELECT harmony_enable('*');"
expect "nothing pending after enabling" "0" status_field '$.pending'

# `.load ./libharmony` from the build directory, as in the README.
out="$(cd "$BUILD" && "${EXT_ENV[@]}" sqlite3 -batch "$DB" ".load ./libharmony" \
  "SELECT harmony_enable('Books');" 2>&1)"
CHECKS=$((CHECKS + 1))
[ "$out" = "0" ] || fail ".load ./libharmony from $BUILD: got [$out]"

# --- a separate plain session, trusted_schema=OFF, writes ------------------------------------
expect "plain sqlite3 with trusted_schema=OFF can insert" "" \
  plain "$DB" "PRAGMA trusted_schema=OFF; INSERT INTO Books VALUES (2, 'Dune', 'Frank Herbert', 1965);"
expect "harmony_status() shows pending 1" "1" status_field '$.pending'
expect "harmony_status() lists Books with pending 1" "Books|1" \
  ext "$DB" "SELECT json_extract(value, '$.name'), json_extract(value, '$.pending')
             FROM json_each(harmony_status(), '$.tables');"
expect "harmony_status() has the documented keys" "1|1|1|1|1" \
  ext "$DB" "SELECT json_type(s, '$.version') = 'text', json_type(s, '$.node_id') = 'integer',
                    json_type(s, '$.hlc') = 'integer', json_type(s, '$.tables') = 'array',
                    json_array_length(s, '$.problems') = 0 FROM (SELECT harmony_status() AS s);"

# Same row again, recursive_triggers ON (Debian's default for some builds) and OFF.
expect "update with recursive_triggers=ON" "" \
  plain "$DB" "PRAGMA recursive_triggers=ON; PRAGMA trusted_schema=OFF;
               UPDATE Books SET publication_year = 1966 WHERE id = 2;"
expect "update of the same row is still one pending change" "1" status_field '$.pending'
expect "delete with recursive_triggers=OFF" "" \
  plain "$DB" "PRAGMA recursive_triggers=OFF; DELETE FROM Books WHERE id = 1;"
expect "a delete is a pending change" "2" status_field '$.pending'

# A rolled-back transaction leaves no trace.
expect "rolled-back insert" "" \
  plain "$DB" "BEGIN; INSERT INTO Books VALUES (3, 'Emma', 'Jane Austen', 1815); ROLLBACK;"
expect "rollback left nothing pending" "2" status_field '$.pending'

# harmony_checksum answers with 32 hex digits.
expect "harmony_checksum('Books')" "32" ext "$DB" "SELECT length(harmony_checksum('Books'));"

# --- bad input: a SQL error naming the problem -------------------------------------------------
expect_error "unknown table" "no such table" "Nope" -- ext "$DB" "SELECT harmony_enable('Nope');"
expect_error "integer argument" "harmony_enable" "must be text" "integer" -- \
  ext "$DB" "SELECT harmony_enable(42);"
expect_error "NULL argument" "must be text" "NULL" -- ext "$DB" "SELECT harmony_enable(NULL);"
expect_error "unknown option" "unknown option" "'existing'" -- \
  ext "$DB" "SELECT harmony_enable('Books', 'all');"
expect_error "wrong argument count" "wrong number of arguments" -- \
  ext "$DB" "SELECT harmony_enable('Books', 'existing', 1);"
expect_error "table without a primary key" "\"Notes\"" "no PRIMARY KEY" -- \
  ext "$DB" "SELECT harmony_enable('Notes');"
expect_error "virtual table" "virtual table" -- ext "$DB" "SELECT harmony_enable('Search');"
expect_error "FTS5 shadow table" "shadow table" -- ext "$DB" "SELECT harmony_enable('Search_data');"
expect_error "sqlite_ table" "internal" -- ext "$DB" "SELECT harmony_enable('sqlite_schema');"
expect_error "our own table" "internal" -- ext "$DB" "SELECT harmony_enable('__harmony_meta');"
expect_error "disable with unpublished changes" "unpublished" "'discard'" -- \
  ext "$DB" "SELECT harmony_disable('Books');"
expect_error "disable of an unknown table" "no such table" -- \
  ext "$DB" "SELECT harmony_disable('Nope');"
expect_error "checksum of an unknown table" "no such table" -- \
  ext "$DB" "SELECT harmony_checksum('Nope');"

# Read-only: sqlite3 -readonly, and a 0444 file opened by an unprivileged user.
out="$("${EXT_ENV[@]}" sqlite3 -batch -readonly "$DB" ".load $EXT" \
  "SELECT json_extract(harmony_status(), '$.pending');" 2>&1)"
CHECKS=$((CHECKS + 1))
[ "$out" = "2" ] || fail "harmony_status() on a read-only connection: got [$out]"
expect_error "enable on a read-only connection" "read-only" -- \
  "${EXT_ENV[@]}" sqlite3 -batch -readonly "$DB" ".load $EXT" "SELECT harmony_enable('Books');"
expect_error "disable on a read-only connection" "read-only" -- \
  "${EXT_ENV[@]}" sqlite3 -batch -readonly "$DB" ".load $EXT" \
  "SELECT harmony_disable('Books', 'discard');"
RO="$TMP/ro"
mkdir "$RO" && cp "$DB" "$RO/ro.db" && chmod 0755 "$TMP" "$RO" && chmod 0444 "$RO/ro.db" &&
  chmod 0555 "$RO"
as_user=()
if [ "$(id -u)" = 0 ]; then
  # root ignores file modes: run the shell as nobody, if this system can.
  if command -v setpriv >/dev/null; then
    as_user=(setpriv --reuid=65534 --regid=65534 --clear-groups)
  else
    echo "note: running as root without setpriv: 0444 check skipped"
  fi
fi
if [ "$(id -u)" != 0 ] || [ ${#as_user[@]} -gt 0 ]; then
  expect_error "enable on a 0444 file" "read-only" -- \
    "${as_user[@]}" "${EXT_ENV[@]}" sqlite3 -batch "$RO/ro.db" ".load $EXT" \
    "SELECT harmony_enable('Books');"
  expect_error "plain write to a 0444 file fails as SQLite says" "readonly" -- \
    "${as_user[@]}" sqlite3 -batch "$RO/ro.db" "INSERT INTO Books VALUES (9, 'x', 'y', 1);"
fi
chmod 0755 "$RO"

# Discard works, and afterwards the table is plain again.
expect "disable with 'discard'" "1" ext "$DB" "SELECT harmony_disable('Books', 'discard');"
expect "no triggers left" "0" plain "$DB" "SELECT count(*) FROM sqlite_schema WHERE type = 'trigger';"
expect "writes still work after disabling" "" plain "$DB" "INSERT INTO Books VALUES (4, 'x', 'y', 1);"

if [ $FAILURES -ne 0 ]; then
  echo "capture_shell: $FAILURES of $CHECKS checks failed"
  exit 1
fi
echo "capture_shell: all $CHECKS checks passed"
