/* An application using harmonylite from C with the system SQLite.
 *
 * What an app does at start-up: load libharmony, enable replication for its tables, set a busy
 * timeout; then it writes as usual and can ask harmony_status() how replication is doing. The
 * harmonylite replicator runs beside the app on the same database file and does the rest.
 *
 * Build and run (Debian: apt-get install libsqlite3-dev):
 *   cc -Wall -o app app.c -lsqlite3
 *   ./app /path/to/libharmony /path/to/data.db "a note"
 *
 * Run by tests/integration/test_hosts.cpp with that build line, so it keeps working.
 */
#include <sqlite3.h>
#include <stdio.h>

/* Runs a statement that returns one text value (or none) and prints it after `label`. */
static int print_value(sqlite3* db, const char* label, const char* sql) {
  sqlite3_stmt* stmt = NULL;
  int rc = sqlite3_prepare_v2(db, sql, -1, &stmt, NULL);
  if (rc == SQLITE_OK) rc = sqlite3_step(stmt);
  if (rc == SQLITE_ROW) {
    printf("%s: %s\n", label, (const char*)sqlite3_column_text(stmt, 0));
    rc = SQLITE_OK;
  } else if (rc == SQLITE_DONE) {
    rc = SQLITE_OK;
  }
  if (rc != SQLITE_OK) fprintf(stderr, "%s: %s\n", label, sqlite3_errmsg(db));
  sqlite3_finalize(stmt);
  return rc;
}

int main(int argc, char** argv) {
  if (argc != 4) {
    fprintf(stderr, "usage: %s <path to libharmony> <database> <note text>\n", argv[0]);
    return 2;
  }
  sqlite3* db = NULL;
  if (sqlite3_open(argv[2], &db) != SQLITE_OK) {
    fprintf(stderr, "open %s: %s\n", argv[2], sqlite3_errmsg(db));
    sqlite3_close(db);
    return 1;
  }
  /* The replicator applies other nodes' changes in short write transactions on this same file,
   * so a write of ours can find the lock taken for a moment: wait up to 5 s instead of failing
   * with SQLITE_BUSY. */
  sqlite3_busy_timeout(db, 5000);

  /* Load the extension once per connection. Only the C API is enabled, not SQL load_extension(),
   * so SQL text cannot load libraries. */
  char* err = NULL;
  sqlite3_db_config(db, SQLITE_DBCONFIG_ENABLE_LOAD_EXTENSION, 1, NULL);
  if (sqlite3_load_extension(db, argv[1], NULL, &err) != SQLITE_OK) {
    fprintf(stderr, "loading %s: %s\n", argv[1], err ? err : sqlite3_errmsg(db));
    sqlite3_free(err);
    sqlite3_close(db);
    return 1;
  }

  int rc = print_value(db, "harmony_version", "SELECT harmony_version()");
  if (rc == SQLITE_OK)
    rc = sqlite3_exec(
        db, "CREATE TABLE IF NOT EXISTS notes (id INTEGER PRIMARY KEY, body TEXT NOT NULL)", NULL,
        NULL, &err);
  /* Installs the capture triggers (0 when the table is already replicated). After this, every
   * write to notes is replicated, from any connection, with or without the extension. */
  if (rc == SQLITE_OK) rc = print_value(db, "harmony_enable", "SELECT harmony_enable('notes')");

  /* BEGIN IMMEDIATE takes the write lock up front, so the busy timeout covers the whole
   * transaction. The note is bound, never spliced into the SQL. */
  if (rc == SQLITE_OK) rc = sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, &err);
  if (rc == SQLITE_OK) {
    sqlite3_stmt* insert = NULL;
    rc = sqlite3_prepare_v2(db, "INSERT INTO notes (body) VALUES (?)", -1, &insert, NULL);
    if (rc == SQLITE_OK) rc = sqlite3_bind_text(insert, 1, argv[3], -1, SQLITE_TRANSIENT);
    if (rc == SQLITE_OK) rc = sqlite3_step(insert) == SQLITE_DONE ? SQLITE_OK : SQLITE_ERROR;
    sqlite3_finalize(insert);
    rc = sqlite3_exec(db, rc == SQLITE_OK ? "COMMIT" : "ROLLBACK", NULL, NULL, NULL) == SQLITE_OK
             ? rc
             : SQLITE_ERROR;
  }
  if (rc == SQLITE_OK) rc = print_value(db, "harmony_status", "SELECT harmony_status()");

  if (rc != SQLITE_OK) fprintf(stderr, "error: %s\n", err ? err : sqlite3_errmsg(db));
  sqlite3_free(err);
  sqlite3_close(db);
  return rc == SQLITE_OK ? 0 : 1;
}
