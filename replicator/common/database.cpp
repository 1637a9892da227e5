// Opening the user's database and retrying write transactions (see database.hpp).
#include "replicator/common/database.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <thread>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "replicator/common/stats.hpp"

namespace harmony {

bool configure_sqlite_library() {
  return sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0) == SQLITE_OK;
}

// Short busy timeout: the retry loop below does the waiting, so it can log and stop.
constexpr int kBusyTimeoutMs = 200;

void check_database_path(const std::string& path) {
  struct stat st {};
  if (stat(path.c_str(), &st) != 0) {
    const int err = errno;
    if (err != ENOENT)
      throw Error(fmt::format("cannot access database {}: {}", path, std::strerror(err)));
    throw Error(fmt::format(
        "database {} does not exist. harmonylite replicates an existing SQLite database: create "
        "it first, e.g. sqlite3 {} \"CREATE TABLE Books (id INTEGER PRIMARY KEY, title TEXT)\"",
        path, path));
  }
  if (!S_ISREG(st.st_mode))
    throw Error(fmt::format("database path {} is not a regular file", path));
  if (access(path.c_str(), R_OK | W_OK) != 0)
    throw Error(fmt::format("database {} is not readable and writable by this user: {}", path,
                            std::strerror(errno)));
  // WAL mode keeps two files beside the database (-wal, -shm); SQLite must be able to create
  // them, or every read fails later with a vaguer "unable to open database file".
  const auto slash = path.find_last_of('/');
  const std::string dir =
      slash == std::string::npos ? "." : (slash == 0 ? "/" : path.substr(0, slash));
  if (access(dir.c_str(), W_OK | X_OK) != 0)
    throw Error(fmt::format(
        "directory {} of database {} is not writable by this user ({}): SQLite needs to create "
        "{}-wal and {}-shm there",
        dir, path, std::strerror(errno), path, path));
}

Db open_database(const std::string& path) {
  check_database_path(path);
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
                       const char* what, WriteLockMeter* lock_meter) {
  using clock = std::chrono::steady_clock;
  auto started = clock::now();
  auto last_log = started;
  int delay_ms = 5;
  bool storage_failed = false;  // the last attempt hit a full disk or an I/O error
  while (true) {
    std::string storage_error;
    try {
      Transaction tx(db, Transaction::Kind::Immediate);
      const auto locked = clock::now();  // BEGIN IMMEDIATE took the write lock
      body();
      tx.commit();
      if (lock_meter) lock_meter->add(clock::now() - locked, wall_clock_ms());
      if (storage_failed) spdlog::info("{}: the database accepts writes again; continuing", what);
      return true;
    } catch (const SqliteError& e) {
      if (!is_transient(e)) throw;
      if (!e.busy()) storage_error = e.what();
    }
    if (stop) return false;
    auto now = clock::now();
    if (!storage_error.empty()) {
      // Nothing was written (the transaction rolled back): wait for space or for the device,
      // then redo the whole transaction. Logged at once, then every 30 s while it lasts.
      if (!storage_failed) {
        started = now;
        delay_ms = 100;
      }
      if (!storage_failed || now - last_log > std::chrono::seconds(30)) {
        last_log = now;
        const auto secs = std::chrono::duration_cast<std::chrono::seconds>(now - started).count();
        spdlog::error(
            "{}: cannot write to the database{}: {}. Nothing is lost: the changes wait and are "
            "written once the cause is gone (free disk space, check the device); retrying every "
            "few seconds",
            what, secs > 0 ? fmt::format(" for {} s", secs) : std::string(), storage_error);
      }
      storage_failed = true;
      std::this_thread::sleep_for(std::chrono::milliseconds(delay_ms));
      delay_ms = std::min(delay_ms * 2, 5000);
      continue;
    }
    if (storage_failed) {  // from a full disk to a lock: count the wait from here
      storage_failed = false;
      started = last_log = now;
      delay_ms = 5;
    }
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
