#!/usr/bin/env bash
# Creates the walkthrough's demo databases /tmp/harmonylite-{1,2,3}.db, each with the sample
# Books table and the same seven books (HarmonyLite's examples/run-cluster.sh data).
# Safe to re-run: it refuses while a harmonylite process still uses them, otherwise it starts
# over (databases, their -wal/-shm files and the embedded NATS stores next to them).
set -euo pipefail
DIR=${HARMONY_DEMO_DIR:-/tmp}

if pgrep -f "harmonylite .*-config .*node-[123]-config.toml" >/dev/null 2>&1; then
  echo "create-databases: harmonylite demo nodes are still running; stop them first:" >&2
  pgrep -af "harmonylite .*-config" >&2 || true
  exit 1
fi

for n in 1 2 3; do
  db="$DIR/harmonylite-$n.db"
  rm -rf "$db" "$db-wal" "$db-shm" "$db-nats" "$DIR/nats-$n"
  sqlite3 "$db" >/dev/null <<'SQL'
PRAGMA journal_mode = WAL;
CREATE TABLE Books (
  id INTEGER PRIMARY KEY,
  title TEXT NOT NULL,
  author TEXT NOT NULL,
  publication_year INTEGER
);
INSERT INTO Books (title, author, publication_year) VALUES
  ('The Hitchhiker''s Guide to the Galaxy', 'Douglas Adams', 1979),
  ('The Lord of the Rings', 'J.R.R. Tolkien', 1954),
  ('Harry Potter and the Sorcerer''s Stone', 'J.K. Rowling', 1997),
  ('The Catcher in the Rye', 'J.D. Salinger', 1951),
  ('To Kill a Mockingbird', 'Harper Lee', 1960),
  ('1984', 'George Orwell', 1949),
  ('The Great Gatsby', 'F. Scott Fitzgerald', 1925);
SQL
  echo "created $db ($(sqlite3 "$db" 'SELECT count(*) FROM Books') books)"
done
