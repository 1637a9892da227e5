// How the replicator opens and writes the user's database: existence and format checks with
// errors that say what to do, WAL mode, and write transactions that wait out application
// writers (SQLITE_BUSY) with backoff and a log line instead of failing.
#pragma once
#include <atomic>
#include <functional>
#include <string>

#include "shared/sqlite_db.hpp"

namespace harmony {

// Opens an existing database for the replicator. Throws Error with a user-facing message when
// the file is missing, not a database, or read-only.
Db open_database(const std::string& path);

// Runs `body` inside BEGIN IMMEDIATE ... COMMIT, retrying the whole transaction while the
// database is locked by another writer. Returns false only when `stop` became true first.
bool write_transaction(Db& db, const std::atomic<bool>& stop, const std::function<void()>& body,
                       const char* what);

}  // namespace harmony
