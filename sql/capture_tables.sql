-- Per-table capture storage. {log}: append-only change log written by the triggers (one cheap
-- b-tree append per captured row; the trigger computes nothing). {rows}: one row per primary key
-- with its version (HLC + node), tombstone flag and dirty (not yet published) flag, maintained by
-- the replicator when it folds the log. Key columns have no declared type (values are kept
-- exactly as the source table holds them) and the source PK's collation, so key equality and
-- grouping are the same as in the source table (e.g. NOCASE keys).
CREATE TABLE IF NOT EXISTS {log} (
  seq INTEGER PRIMARY KEY,
  {log_keys},
  ms INTEGER NOT NULL,
  weak INTEGER
);
CREATE TABLE IF NOT EXISTS {rows} (
  {rows_keys},
  version INTEGER NOT NULL,
  node INTEGER NOT NULL,
  deleted INTEGER NOT NULL,
  dirty INTEGER NOT NULL,
  PRIMARY KEY ({key_list})
) WITHOUT ROWID;
-- The publisher reads pending rows oldest first, a batch at a time: indexing only the dirty rows
-- by version makes each batch cost its own size, not the size of the whole backlog.
DROP INDEX IF EXISTS {old_dirty_index};
CREATE INDEX IF NOT EXISTS {dirty_index} ON {rows} (version) WHERE dirty;
