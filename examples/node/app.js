#!/usr/bin/env node
// An application using harmonylite from Node.js with better-sqlite3, which carries its own
// SQLite (not the system's libsqlite3): libharmony uses the host's SQLite through the
// extension API, so it loads here too.
//
// What an app does at start-up: load libharmony, enable replication for its tables, set a busy
// timeout; then it writes as usual and can ask harmony_status() how replication is doing. The
// harmonylite replicator runs beside the app on the same database file and does the rest.
//
//   npm install better-sqlite3@12
//   node app.js /path/to/libharmony /path/to/data.db "a note"
//
// Run by tests/integration/test_hosts.cpp, so it keeps working.
'use strict';
const Database = require('better-sqlite3');

function main() {
  if (process.argv.length !== 5) {
    console.error('usage: app.js <path to libharmony> <database> <note text>');
    return 2;
  }
  const [extension, database, text] = process.argv.slice(2);

  // timeout is SQLite's busy timeout (ms): the replicator applies other nodes' changes in short
  // write transactions on this same file, so a write of ours can find the lock taken for a
  // moment. Wait for it instead of failing with SQLITE_BUSY.
  const db = new Database(database, { timeout: 5000 });

  // Load the extension once per connection (entry point sqlite3_harmony_init).
  db.loadExtension(extension);
  console.log('harmony_version:', db.prepare('SELECT harmony_version()').pluck().get());
  console.log('sqlite_version:', db.prepare('SELECT sqlite_version()').pluck().get());

  db.exec('CREATE TABLE IF NOT EXISTS notes (id INTEGER PRIMARY KEY, body TEXT NOT NULL)');
  // Installs the capture triggers (0 when the table is already replicated). After this, every
  // write to notes is replicated, from any connection, with or without the extension.
  console.log('harmony_enable:', db.prepare("SELECT harmony_enable('notes')").pluck().get());

  // .immediate() takes the write lock up front (BEGIN IMMEDIATE), so the busy timeout covers the
  // whole transaction.
  const insert = db.prepare('INSERT INTO notes (body) VALUES (?)');
  db.transaction((body) => insert.run(body)).immediate(text);

  const status = JSON.parse(db.prepare('SELECT harmony_status()').pluck().get());
  console.log('node_id:', status.node_id, 'pending:', status.pending);
  console.log('harmony_status:', JSON.stringify(status));
  db.close();
  return 0;
}

process.exitCode = main();
