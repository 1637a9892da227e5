// SQLite files for tests that run the shared/ and replicator/ code without harmonylite: the
// Books schema most of them share, a database with capture installed as the replicator leaves it
// after start-up, the stock sqlite3 shell as an application's writer, and reads on a fresh
// connection.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "shared/sqlite_db.hpp"
#include "tests/support/support.hpp"

namespace harmony::test {

// Books as HarmonyLite's e2e tests have it, in WAL mode like the replicator's databases.
inline constexpr const char* kBooksSchema =
    "PRAGMA journal_mode=WAL; CREATE TABLE Books (id INTEGER PRIMARY KEY, title TEXT NOT NULL, "
    "author TEXT, publication_year INTEGER);";

// Creates `name` in `dir` with `schema`, the capture tables, node id `node` and capture on
// `tables` (every eligible table when empty); returns its path.
std::string make_captured_db(const TempDir& dir, const std::string& name, uint64_t node,
                             const std::string& schema = kBooksSchema,
                             const std::vector<std::string>& tables = {});

// Runs `sql` through the stock sqlite3 shell (a connection that never loaded libharmony) and
// requires it to succeed.
void shell_ok(const std::string& db_path, const std::string& sql);

// A fresh connection that waits for a running publisher's or consumer's locks, as an
// application would, and one value read on such a connection (query_int: -1 when there is no
// row or the value is no integer).
Db open_reader(const std::string& db_path);
int64_t query_int(const std::string& db_path, const std::string& sql);
std::string query_text(const std::string& db_path, const std::string& sql);  // "<none>" if no row

}  // namespace harmony::test
