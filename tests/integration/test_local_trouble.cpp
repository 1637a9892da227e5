// Local trouble with the user's database, running the real harmonylite binary: missing, not a
// database, read-only (file mode as user nobody, since root ignores modes; directory; read-only
// mount), locked by another connection for ~10 s, and a full disk (a small tmpfs). Each gives a
// clear error (exit 1 at start-up) or a logged wait, never a crash or a corrupted file, and
// replication resumes by itself once the cause is gone.
#include <sys/stat.h>
#include <sys/statvfs.h>

#include <catch2/catch.hpp>

#include <cerrno>
#include <climits>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <thread>

#include <fmt/format.h>

#include "shared/sqlite_db.hpp"
#include "tests/support/cluster.hpp"

using namespace harmony;
using namespace harmony::test;

namespace {

constexpr const char* kSchema =
    "CREATE TABLE Books (id INTEGER PRIMARY KEY, title TEXT NOT NULL, author TEXT NOT NULL, "
    "publication_year INTEGER);";

void make_database(const std::string& path) {
  Db db = Db::open(path, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE);
  db.exec("PRAGMA journal_mode=WAL");
  db.exec(kSchema);
}

std::string config_for(const std::string& db, int node, const std::string& nats) {
  return fmt::format(
      "db_path = \"{}\"\nnode_id = {}\n[replication_log]\nshards = 1\nreplicas = 1\n"
      "[snapshot]\nenabled = false\n[nats]\n{}\nreconnect_wait_seconds = 1\n",
      db, node, nats);
}

// Runs harmonylite on `db` until it exits (start-up failures need no NATS: they come first).
CommandResult run_on(const TempDir& dir, const std::string& db, bool as_nobody = false) {
  const std::string cfg = dir.file(fmt::format("c{}.toml", std::rand()));
  write_file(cfg, config_for(db, 1, fmt::format("store_dir = \"{}\"", dir.file("nats"))));
  chmod(cfg.c_str(), 0644);
  std::vector<std::string> argv;
  if (as_nobody) argv = {"setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"};
  argv.insert(argv.end(), {harmonylite_path(), "-config", cfg});
  return run_command(argv, 30s);
}

bool mount_tmpfs(const std::string& dir, const std::string& size) {
  return run_command({"mount", "-t", "tmpfs", "-o", "size=" + size, "tmpfs", dir}).exit_code == 0;
}

// A mount point that is unmounted on destruction (declare it before the processes that use it,
// so they are stopped first).
class Mounted {
 public:
  explicit Mounted(std::string dir) : dir_(std::move(dir)) {}
  ~Mounted() {
    for (int i = 0; i < 50; ++i) {
      if (run_command({"umount", dir_}).exit_code == 0) return;
      std::this_thread::sleep_for(100ms);
    }
    run_command({"umount", "-l", dir_});
  }
  Mounted(const Mounted&) = delete;
  Mounted& operator=(const Mounted&) = delete;

 private:
  std::string dir_;
};

bool logged(const std::string& log_path, const std::string& text) {
  return read_file(log_path).find(text) != std::string::npos;
}

int64_t query_int(const std::string& db_path, const std::string& sql) {
  Db db = Db::open(db_path, SQLITE_OPEN_READONLY);
  db.set_busy_timeout(2000);
  return db.query_int(sql, -1);
}

std::string integrity(const std::string& db_path) {
  Db db = Db::open(db_path, SQLITE_OPEN_READONLY);
  db.set_busy_timeout(2000);
  auto v = db.query_value("PRAGMA integrity_check");
  return v && std::holds_alternative<Text>(*v) ? std::get<Text>(*v).bytes : "?";
}

}  // namespace

TEST_CASE("start-up: missing, not a database, read-only: a clear error and exit 1",
          "[localtrouble]") {
  TempDir dir("trouble");
  chmod(dir.path().c_str(), 0755);  // user nobody must reach the config and databases

  SECTION("missing database: says how to create one") {
    auto r = run_on(dir, dir.file("missing.db"));
    INFO(r.output);
    CHECK(r.exit_code == 1);
    CHECK_THAT(r.output, Catch::Contains("missing.db does not exist"));
    CHECK_THAT(r.output, Catch::Contains("create it first, e.g. sqlite3"));
    CHECK_FALSE(std::filesystem::exists(dir.file("missing.db")));  // not created by us
  }
  SECTION("a text file") {
    write_file(dir.file("notes.db"), "these are my notes, not a database\n");
    auto r = run_on(dir, dir.file("notes.db"));
    INFO(r.output);
    CHECK(r.exit_code == 1);
    CHECK_THAT(r.output, Catch::Contains("notes.db is not a usable SQLite database"));
    CHECK_THAT(r.output, Catch::Contains("file is not a database"));
    CHECK(read_file(dir.file("notes.db")) == "these are my notes, not a database\n");
  }
  SECTION("a directory") {
    std::filesystem::create_directory(dir.file("adir.db"));
    auto r = run_on(dir, dir.file("adir.db"));
    INFO(r.output);
    CHECK(r.exit_code == 1);
    CHECK_THAT(r.output, Catch::Contains("is not a regular file"));
  }
  SECTION("read-only file (0444), as user nobody") {
    make_database(dir.file("ro.db"));
    chmod(dir.file("ro.db").c_str(), 0444);
    auto r = run_on(dir, dir.file("ro.db"), true);
    INFO(r.output);
    CHECK(r.exit_code == 1);
    CHECK_THAT(r.output, Catch::Contains(
                             "ro.db is not readable and writable by this user: Permission denied"));
  }
  SECTION("writable file in a read-only directory (no room for -wal, -shm), as user nobody") {
    const std::string sub = dir.file("rodir");
    std::filesystem::create_directory(sub);
    make_database(sub + "/db.db");
    std::filesystem::remove(sub + "/db.db-wal");
    std::filesystem::remove(sub + "/db.db-shm");
    chmod((sub + "/db.db").c_str(), 0666);
    chmod(sub.c_str(), 0755);
    auto r = run_on(dir, sub + "/db.db", true);
    INFO(r.output);
    CHECK(r.exit_code == 1);
    CHECK_THAT(r.output, Catch::Contains("rodir of database"));
    CHECK_THAT(r.output, Catch::Contains("is not writable by this user"));
    CHECK_THAT(r.output, Catch::Contains("db.db-wal"));
  }
  SECTION("a directory this user cannot enter, as user nobody") {
    const std::string sub = dir.file("private");
    std::filesystem::create_directory(sub);
    make_database(sub + "/db.db");
    chmod(sub.c_str(), 0700);
    auto r = run_on(dir, sub + "/db.db", true);
    INFO(r.output);
    CHECK(r.exit_code == 1);
    CHECK_THAT(r.output, Catch::Contains("cannot access database"));
    CHECK_THAT(r.output, Catch::Contains("Permission denied"));
  }
  SECTION("read-only mount (even root cannot write)") {
    const std::string sub = dir.file("romount");
    std::filesystem::create_directory(sub);
    make_database(sub + "/db.db");
    if (run_command({"mount", "--bind", sub, sub}).exit_code != 0) {
      WARN("cannot bind-mount here (needs CAP_SYS_ADMIN): read-only mount case not run");
      return;
    }
    Mounted mounted(sub);
    REQUIRE(run_command({"mount", "-o", "remount,bind,ro", sub}).exit_code == 0);
    auto r = run_on(dir, sub + "/db.db");
    INFO(r.output);
    CHECK(r.exit_code == 1);
    CHECK_THAT(r.output, Catch::Contains("Read-only file system"));
  }
}

TEST_CASE("a database locked by another connection for 10 s: the replicator waits, then applies",
          "[localtrouble]") {
  TestCluster c(ClusterOptions{.nodes = 2});
  c.start_all();
  REQUIRE(c.wait_ready(0));
  REQUIRE(c.wait_ready(1));
  INFO(c.all_logs());
  c.exec(0, "INSERT INTO Books (id, title, author) VALUES (1, 'before the lock', 'x')");
  REQUIRE(c.wait_converged());

  {
    Db holder = Db::open(c.db(1), SQLITE_OPEN_READWRITE);
    holder.set_busy_timeout(5000);
    holder.exec("BEGIN EXCLUSIVE");
    // Written inside the long transaction: captured, published once it commits.
    holder.exec("INSERT INTO Books (id, title, author) VALUES (2, 'written under the lock', 'y')");
    for (int i = 0; i < 20; ++i)
      c.exec(0, fmt::format("INSERT INTO Books (id, title, author) VALUES ({}, 'while locked', "
                            "'n1')",
                            100 + i));
    std::this_thread::sleep_for(10s);
    CHECK(c.running(1));
    CHECK_THAT(c.log(1), Catch::Contains("database is locked by another writer for"));
    CHECK_THAT(c.log(1), Catch::Contains("s; waiting"));
    holder.exec("COMMIT");
  }
  REQUIRE(c.wait_converged(30s));
  CHECK(c.query_int(1, "SELECT count(*) FROM Books WHERE title='while locked'") == 20);
  CHECK(c.query_int(0, "SELECT count(*) FROM Books WHERE title='written under the lock'") == 1);
  CHECK(c.query_int(1, "SELECT count(*) FROM __harmony_dead_letters") == 0);
  CHECK(c.query_text(1, "PRAGMA integrity_check") == "ok");
  CHECK(c.running(0));
  CHECK(c.running(1));
}

TEST_CASE("a full disk: clear errors, nothing corrupted, everything applied once space is free",
          "[localtrouble]") {
  TempDir dir("diskfull");
  const std::string full = dir.file("full");
  std::filesystem::create_directory(full);
  if (!mount_tmpfs(full, "4m")) {
    WARN("cannot mount a tmpfs here (needs CAP_SYS_ADMIN): disk-full case not run");
    return;
  }
  Mounted mounted(full);  // destroyed last: after the processes and connections below

  const int port = free_port();
  auto nats = start_external_nats(dir, port);
  const std::string urls = fmt::format("urls = [\"nats://127.0.0.1:{}\"]", port);
  const std::string db1 = dir.file("node-1.db"), db2 = full + "/node-2.db";
  make_database(db1);
  make_database(db2);
  write_file(dir.file("node-1.toml"), config_for(db1, 1, urls));
  write_file(dir.file("node-2.toml"), config_for(db2, 2, urls));
  const std::string log1 = dir.file("node-1.log"), log2 = dir.file("node-2.log");
  Process node1({harmonylite_path(), "-config", dir.file("node-1.toml")}, log1);
  Process node2({harmonylite_path(), "-config", dir.file("node-2.toml")}, log2);
  REQUIRE(wait_until([&] { return logged(log1, "is replicating"); }, 30s));
  REQUIRE(wait_until([&] { return logged(log2, "is replicating"); }, 30s));
  INFO(read_file(log1) + "\n----- node 2 -----\n" + read_file(log2));

  sqlite_shell(db1, "INSERT INTO Books (id, title, author) VALUES (1, 'before', 'x')");
  REQUIRE(wait_until([&] { return query_int(db2, "SELECT count(*) FROM Books") == 1; }, 10s));

  // Fill the tmpfs to the last byte.
  const std::string filler = full + "/filler";
  {
    std::FILE* f = std::fopen(filler.c_str(), "wb");
    REQUIRE(f);
    std::string chunk(64 * 1024, 'f');
    while (std::fwrite(chunk.data(), 1, chunk.size(), f) == chunk.size()) {
    }
    std::fclose(f);
    struct statvfs vfs {};
    REQUIRE(statvfs(full.c_str(), &vfs) == 0);
    REQUIRE(vfs.f_bavail == 0);
  }
  // Node 1's application writes ~1.5 MB that node 2 must store; node 2's application writes too.
  for (int i = 0; i < 30; ++i)
    sqlite_shell(db1, fmt::format("INSERT INTO Books (id, title, author) VALUES ({}, 'during', "
                                  "hex(randomblob(25000)))",
                                  100 + i));
  auto app = sqlite_shell(db2,
                          "INSERT INTO Books (id, title, author) VALUES (2, 'app', "
                          "hex(randomblob(500000)))");
  CHECK(app.exit_code != 0);
  CHECK_THAT(app.output, Catch::Contains("database or disk is full"));
  REQUIRE(wait_until([&] { return logged(log2, "cannot write to the database"); }, 20s));
  CHECK_THAT(read_file(log2), Catch::Contains("database or disk is full"));
  std::this_thread::sleep_for(3s);  // a few retries later: still alive, nothing half-written
  CHECK(node2.running());
  // Transactions that still fitted in the WAL's old space went in whole; the rest waits.
  CHECK(query_int(db2, "SELECT count(*) FROM Books WHERE title='during'") < 30);
  CHECK(integrity(db2) == "ok");

  // Space comes back: everything is applied, and node 2's application can write again.
  std::filesystem::remove(filler);
  REQUIRE(wait_until(
      [&] { return query_int(db2, "SELECT count(*) FROM Books WHERE title='during'") == 30; },
      30s));
  CHECK(logged(log2, "the database accepts writes again"));
  auto again = sqlite_shell(db2, "INSERT INTO Books (id, title, author) VALUES (3, 'after', 'y')");
  CHECK(again.exit_code == 0);
  REQUIRE(wait_until(
      [&] { return query_int(db1, "SELECT count(*) FROM Books WHERE title='after'") == 1; }, 15s));
  CHECK(integrity(db2) == "ok");
  CHECK(query_int(db2, "SELECT count(*) FROM __harmony_dead_letters") == 0);
  CHECK(node1.running());
  CHECK(node2.running());
  CHECK(node2.stop(20s) == 0);
  CHECK(node1.stop(20s) == 0);
  CHECK(integrity(db2) == "ok");
}
