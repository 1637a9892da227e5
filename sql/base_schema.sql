-- Objects every harmonylite database holds, created by harmony_enable() or by the replicator.
-- All names start with __harmony_ and are never captured.

-- Node-local settings: node_id, hlc (highest version seen or issued), format, next_batch_id.
CREATE TABLE IF NOT EXISTS __harmony_meta (key TEXT PRIMARY KEY, value) WITHOUT ROWID;

-- Registry of captured tables. Per-table objects are named by `id`, not by table name.
CREATE TABLE IF NOT EXISTS __harmony_tables (
  id INTEGER PRIMARY KEY,
  name TEXT NOT NULL UNIQUE COLLATE NOCASE,
  enabled_at_ms INTEGER NOT NULL
);

-- Capture mute: the replicator inserts a row at the start of each apply transaction and deletes
-- it before COMMIT. SQLite has one writer, so no application connection ever sees it non-empty.
CREATE TABLE IF NOT EXISTS __harmony_mute (flag INTEGER);

-- Last stream sequence applied, per stream; advanced in the same transaction as the apply.
CREATE TABLE IF NOT EXISTS __harmony_positions (
  stream TEXT PRIMARY KEY,
  seq INTEGER NOT NULL
) WITHOUT ROWID;

-- Changes that could not be applied (poison messages, unknown tables, constraint violations).
CREATE TABLE IF NOT EXISTS __harmony_dead_letters (
  id INTEGER PRIMARY KEY,
  at_ms INTEGER NOT NULL,
  stream TEXT,
  seq INTEGER,
  origin_node INTEGER,
  batch_id INTEGER,
  table_name TEXT,
  reason TEXT NOT NULL,
  payload BLOB
);

-- Received rows that cannot be applied yet (their table or a column does not exist here yet, their
-- version is too far ahead of this node's clock, a constraint refuses them for now). Kept, never
-- dropped, and retried when the schema changes and periodically; `payload` is a one-table batch
-- in the wire format holding only the rows still waiting.
CREATE TABLE IF NOT EXISTS __harmony_held (
  id INTEGER PRIMARY KEY,
  at_ms INTEGER NOT NULL,
  stream TEXT NOT NULL,
  seq INTEGER NOT NULL,
  origin_node INTEGER NOT NULL,
  batch_id INTEGER NOT NULL,
  table_name TEXT NOT NULL,
  kind TEXT NOT NULL,
  reason TEXT NOT NULL,
  row_count INTEGER NOT NULL,
  attempts INTEGER NOT NULL DEFAULT 0,
  payload BLOB NOT NULL
);

-- The conflict log: rows that last-writer-wins or a UNIQUE race made lose while this node held a
-- concurrent change of its own (shared/conflict_log.hpp defines "concurrent"). Read it with a plain
-- SELECT; docs/operations.md "Conflicts". kind: overwritten | removed | discarded | unique.
-- `key` is a JSON array of the primary key values, `loser_values` a JSON object of the losing
-- row (NULL when the loser was a delete). Bounded by [conflicts] max_rows and max_age (default
-- the newest 10,000 rows, at most 30 days).
CREATE TABLE IF NOT EXISTS __harmony_conflicts (
  id INTEGER PRIMARY KEY,
  at_ms INTEGER NOT NULL,
  table_name TEXT NOT NULL,
  kind TEXT NOT NULL,
  key TEXT NOT NULL,
  loser_values TEXT,
  loser_hlc INTEGER NOT NULL,
  loser_node INTEGER NOT NULL,
  winner_hlc INTEGER NOT NULL,
  winner_node INTEGER NOT NULL,
  winner_deleted INTEGER NOT NULL
);
