#!/usr/bin/env python3
"""An application using harmonylite from Python's standard sqlite3 module.

What an app does at start-up: load libharmony, enable replication for its tables, set a busy
timeout; then it writes as usual and can ask harmony_status() how replication is doing.
The harmonylite replicator runs beside the app on the same database file and does the rest.

    python3 app.py /path/to/libharmony /path/to/data.db "a note"

Run by tests/integration/test_hosts.cpp, so it keeps working.
"""
import json
import sqlite3
import sys


def main() -> int:
    if len(sys.argv) != 4:
        print("usage: app.py <path to libharmony> <database> <note text>", file=sys.stderr)
        return 2
    extension, database, text = sys.argv[1:4]

    # timeout=5.0 is SQLite's busy timeout: the replicator applies other nodes' changes in short
    # write transactions on this same file, so a write of ours can find the lock taken for a
    # moment. Wait for it instead of failing with "database is locked".
    # isolation_level=None: we open transactions ourselves (BEGIN IMMEDIATE below).
    db = sqlite3.connect(database, timeout=5.0, isolation_level=None)

    # Load the extension once per connection. Debian's python3 allows it; some builds (macOS
    # system Python) are compiled without enable_load_extension.
    db.enable_load_extension(True)
    db.load_extension(extension)  # entry point sqlite3_harmony_init, found from the file name
    db.enable_load_extension(False)
    print("harmony_version:", db.execute("SELECT harmony_version()").fetchone()[0])

    db.execute("CREATE TABLE IF NOT EXISTS notes (id INTEGER PRIMARY KEY, body TEXT NOT NULL)")
    # Installs the capture triggers (0 when the table is already replicated). After this, every
    # write to notes is replicated, from any connection, with or without the extension.
    print("harmony_enable:", db.execute("SELECT harmony_enable('notes')").fetchone()[0])

    # BEGIN IMMEDIATE takes the write lock up front, so the busy timeout covers the whole
    # transaction instead of failing at the first write.
    db.execute("BEGIN IMMEDIATE")
    db.execute("INSERT INTO notes (body) VALUES (?)", (text,))
    db.execute("COMMIT")

    status = json.loads(db.execute("SELECT harmony_status()").fetchone()[0])
    print("node_id:", status["node_id"], "pending:", status["pending"])
    print("harmony_status:", json.dumps(status, sort_keys=True))
    db.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
