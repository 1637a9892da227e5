// Opening the user's database and retrying write transactions (see database.hpp).
#include "replicator/database.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <thread>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

namespace harmony {

// Short busy timeout: the retry loop below does the waiting, so it can log and stop.
constexpr int kBusyTimeoutMs = 200;

Db open_database(const std::string& path) {
  struct stat st {};
  if (stat(path.c_str(), &st) != 0)
    throw Error(fmt::format(
        "database {} does not exist. harmonylite replicates an existing SQLite database: create "
        "it first, e.g. sqlite3 {} \"CREATE TABLE Books (id INTEGER PRIMARY KEY, title TEXT)\"",
        path, path));
  if (!S_ISREG(st.st_mode))
    throw Error(fmt::format("database path {} is not a regular file", path));
  if (access(path.c_str(), R_OK | W_OK) != 0)
    throw Error(fmt::format("database {} is not readable and writable by this user", path));
  Db db = Db::open(path, SQLITE_OPEN_READWRITE);
  db.set_busy_timeout(kBusyTimeoutMs);
  try {
    db.query_int("SELECT count(*) FROM sqlite_schema");
  } catch (const SqliteError& e) {
    throw Error(fmt::format("{} is not a usable SQLite database: {}", path, e.what()));
  }
  // Our own writes may use NORMAL: a lost apply transaction loses its position update with it
  // and is fetched again; a lost publish acknowledgement only republishes (duplicates are safe).
  db.exec("PRAGMA synchronous = NORMAL");
  db.exec("PRAGMA foreign_keys = OFF");  // see README: apply order is the origin's, FKs were
                                         // checked there
  return db;
}

bool write_transaction(Db& db, const std::atomic<bool>& stop, const std::function<void()>& body,
                       const char* what) {
  using clock = std::chrono::steady_clock;
  auto started = clock::now();
  auto last_log = started;
  int delay_ms = 5;
  while (true) {
    try {
      Transaction tx(db, Transaction::Kind::Immediate);
      body();
      tx.commit();
      return true;
    } catch (const SqliteError& e) {
      if (!e.busy()) throw;
    }
    if (stop) return false;
    auto now = clock::now();
    if (now - last_log > std::chrono::seconds(5)) {
      last_log = now;
      spdlog::warn("{}: database is locked by another writer for {} s; waiting", what,
                   std::chrono::duration_cast<std::chrono::seconds>(now - started).count());
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(delay_ms));
    delay_ms = std::min(delay_ms * 2, 200);
  }
}

}  // namespace harmony
