-- Capture triggers for one table. Plain SQL only (no extension function, virtual table or
-- pragma function), so connections that never loaded libharmony, with trusted_schema=OFF, can
-- write. Each fired row appends (key, wall-clock ms) to {log}; versions are assigned later, in
-- commit order, when the replicator folds the log (see shared/fold.cpp).
DROP TRIGGER IF EXISTS {trg_ins};
CREATE TRIGGER {trg_ins} AFTER INSERT ON {table}
WHEN NOT EXISTS (SELECT 1 FROM __harmony_mute)
BEGIN
  INSERT INTO {log} ({key_list}, ms) VALUES ({new_keys}, {now_ms});
END;
-- One trigger for every UPDATE (no "UPDATE OF" column list: `SET rowid = ...` changes an
-- INTEGER PRIMARY KEY without naming it). An UPDATE that changes the primary key also logs the
-- old key, which the fold then finds gone and turns into a tombstone on every replica. One
-- INSERT for both (old key first, then the new one): a second statement would open {log} again.
DROP TRIGGER IF EXISTS {trg_updk};
DROP TRIGGER IF EXISTS {trg_upd};
CREATE TRIGGER {trg_upd} AFTER UPDATE ON {table}
WHEN NOT EXISTS (SELECT 1 FROM __harmony_mute)
BEGIN
  INSERT INTO {log} ({key_list}, ms)
    SELECT {old_keys}, {now_ms} WHERE {old_ne_new} UNION ALL SELECT {new_keys}, {now_ms};
END;
DROP TRIGGER IF EXISTS {trg_del};
CREATE TRIGGER {trg_del} AFTER DELETE ON {table}
WHEN NOT EXISTS (SELECT 1 FROM __harmony_mute)
BEGIN
  INSERT INTO {log} ({key_list}, ms) VALUES ({old_keys}, {now_ms});
END;
