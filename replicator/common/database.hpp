// How the replicator opens and writes the user's database: existence and format checks with
// errors that say what to do, WAL mode, and write transactions that wait out application
// writers (SQLITE_BUSY) and a full disk or failing storage with backoff and a log line instead
// of failing.
#pragma once
#include <atomic>
#include <functional>
#include <string>

#include "shared/sqlite_db.hpp"

namespace harmony {

// Once per replicator process, before any other SQLite call (the extension never does this: its
// host owns the library's configuration). Turns SQLite's memory statistics off: they take a
// global mutex and update counters around every allocation and free, and Debian's build has no
// lookaside (OMIT_LOOKASIDE), so each statement's cursors and records are allocations; that was
// ~8 % of the apply's instructions (docs/performance.md). Returns false when SQLite was already
// initialized (nothing changed then).
bool configure_sqlite_library();

// Throws Error naming what is wrong with `path` and what to do: missing, not a regular file, not
// readable and writable, a directory where SQLite cannot create -wal and -shm.
void check_database_path(const std::string& path);
// Opens an existing database for the replicator: check_database_path, then a user-facing error
// for a file that is not a database.
Db open_database(const std::string& path);

// Runs `body` inside BEGIN IMMEDIATE ... COMMIT, retrying the whole transaction while the
// database is locked by another writer, and, with a clear error logged and a backoff of up to
// 5 s, while the storage fails (storage_trouble in shared/sqlite_db.hpp). Returns false only when
// `stop` became true first. `lock_meter`: where the committed attempt's time from BEGIN
// IMMEDIATE to COMMIT is counted (the write-lock duty cycle of issue 18).
class WriteLockMeter;
bool write_transaction(Db& db, const std::atomic<bool>& stop, const std::function<void()>& body,
                       const char* what, WriteLockMeter* lock_meter = nullptr);

}  // namespace harmony
