// SQLite files for tests that run the shared/ and replicator/ code without harmonylite: the
// Books schema most of them share, a database with capture installed as the replicator leaves it
// after start-up, the stock sqlite3 shell as an application's writer, reads on a fresh
// connection, and write times chosen by the test so that version order needs no sleeping.
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

// Write times chosen by the test instead of read off the wall clock. The capture triggers log
// each change with the wall-clock ms of its statement and the fold turns the latest logged ms
// into the row's version, so two writes a few ms apart on two nodes get versions in that order.
// Tests that need that order stamp each write with stamp() instead of sleeping between writes.
class WriteClock {
 public:
  // Sets the logged time of every change `db` has not folded yet to the next ms of this clock.
  void stamp(Db& db);
  void stamp(const std::string& db_path);

 private:
  // The fold never lets a logged ms pass the wall clock (a clock stepped back must not issue
  // versions from the future), so the test's times run in the past: one minute back leaves
  // 60 000 writes of room, and versions issued before the test do not exist (fresh databases).
  static constexpr int64_t kStartBehindWallClockMs = 60'000;
  int64_t last_ms_ = 0;
};

}  // namespace harmony::test
