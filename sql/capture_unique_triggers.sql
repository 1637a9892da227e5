-- Extra triggers for tables with UNIQUE constraints besides the primary key. REPLACE conflict
-- resolution can delete *other* rows that hold the same unique values, and SQLite fires DELETE
-- triggers for those only when recursive_triggers is ON. Before each INSERT/UPDATE we note the
-- keys of rows that could be replaced as "weak" log entries: the fold turns a weak entry into a
-- tombstone only if that row is really gone, and ignores it otherwise (INSERT OR IGNORE, errors).
-- Each comparison uses the UNIQUE index's own collation, so it matches what conflicts and can
-- use that index. UNIQUE indexes on expressions are not covered (harmony_status() says so).
DROP TRIGGER IF EXISTS {trg_bins};
CREATE TRIGGER {trg_bins} BEFORE INSERT ON {table}
WHEN NOT EXISTS (SELECT 1 FROM __harmony_mute)
BEGIN
  INSERT INTO {log} ({key_list}, ms, weak)
    SELECT {pk_cols}, {now_ms}, 1 FROM {table} WHERE {unique_match};
END;
DROP TRIGGER IF EXISTS {trg_bupd};
CREATE TRIGGER {trg_bupd} BEFORE UPDATE OF {unique_cols} ON {table}
WHEN NOT EXISTS (SELECT 1 FROM __harmony_mute)
BEGIN
  INSERT INTO {log} ({key_list}, ms, weak)
    SELECT {pk_cols}, {now_ms}, 1 FROM {table} WHERE ({unique_match}) AND NOT ({pk_is_old});
END;
