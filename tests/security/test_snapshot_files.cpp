// Files and snapshots are untrusted (issue 14 items 9-11): a snapshot.json naming a file outside
// the directory store, symlinks planted where the store or the embedded nats-server writes its
// generated files, a store directory others can write to, and a snapshot file carrying its own
// triggers, views or a clock far in the future. Each test plants the attack and checks it is
// refused (or defused) and that nothing outside is touched.
#include <sys/stat.h>
#include <unistd.h>

#include <catch2/catch.hpp>

#include <cstdint>
#include <filesystem>
#include <limits>
#include <string>

#include <nlohmann/json.hpp>

#include "replicator/nats/nats_server.hpp"
#include "replicator/nats/nats_server_config.hpp"
#include "replicator/snapshot/object_store.hpp"
#include "replicator/snapshot/snapshot.hpp"
#include "shared/sqlite_db.hpp"
#include "tests/support/db_fixture.hpp"
#include "tests/support/support.hpp"

using namespace harmony;
using namespace harmony::test;
namespace fs = std::filesystem;

namespace {

const char* kBooks =
    "PRAGMA journal_mode=WAL; CREATE TABLE Books (id INTEGER PRIMARY KEY, title TEXT NOT NULL, "
    "author TEXT);";

// A store in `dir`/store holding one good snapshot; returns the snapshot's metadata.
SnapshotMeta store_one_snapshot(const TempDir& dir, FileSnapshotStore& store) {
  auto db = make_captured_db(dir, "a.db", 1, kBooks);
  shell_ok(db, "INSERT INTO Books VALUES (1,'Dune','Herbert')");
  auto meta = make_snapshot_file(db, dir.file("s1.db"));
  store.put(dir.file("s1.db"), meta);
  return meta;
}

// Rewrites the store's snapshot.json to name `data_file`, keeping its metadata.
void plant_snapshot_json(const std::string& store_dir, const std::string& data_file) {
  auto j = nlohmann::json::parse(read_file(store_dir + "/snapshot.json"));
  j["file"] = data_file;
  fs::remove(store_dir + "/snapshot.json");
  write_file(store_dir + "/snapshot.json", j.dump(2));
}

bool is_regular_not_link(const std::string& path) {
  return fs::is_regular_file(fs::symlink_status(path));
}

fs::perms perms_of(const std::string& path) {
  return fs::status(path).permissions() & fs::perms::mask;
}

}  // namespace

// ---- item 10: the data file named by snapshot.json -------------------------------------------

TEST_CASE("snapshot store: a snapshot.json naming a file outside the store is refused",
          "[security][snapshot-files]") {
  TempDir dir("sec-store-traversal");
  FileSnapshotStore store(dir.file("store"));
  store_one_snapshot(dir, store);
  const std::string victim = dir.file("victim.txt");
  write_file(victim, "precious");
  auto db = dir.file("a.db");
  auto m2 = make_snapshot_file(db, dir.file("s2.db"));

  SECTION("a relative path climbing out") {
    plant_snapshot_json(dir.file("store"), "../victim.txt");
    // -save-snapshot replaces the old snapshot: it must not delete what snapshot.json names.
    CHECK_THROWS_WITH(store.put(dir.file("s2.db"), m2), Catch::Contains("../victim.txt"));
    REQUIRE(fs::exists(victim));  // on main: deleted by the put
    CHECK(read_file(victim) == "precious");
    CHECK_THROWS_WITH(store.get(dir.file("out.db")), Catch::Contains("../victim.txt"));
    CHECK_FALSE(fs::exists(dir.file("out.db")));
    CHECK(read_file(victim) == "precious");
  }
  SECTION("an absolute path") {
    plant_snapshot_json(dir.file("store"), victim);
    CHECK_THROWS_WITH(store.put(dir.file("s2.db"), m2), Catch::Contains(victim));
    CHECK(read_file(victim) == "precious");
    CHECK_THROWS_WITH(store.get(dir.file("out.db")), Catch::Contains(victim));
    CHECK(read_file(victim) == "precious");
  }
  SECTION("a name of another shape inside the store") {
    write_file(dir.file("store/keep.txt"), "mine");
    plant_snapshot_json(dir.file("store"), "keep.txt");
    CHECK_THROWS_WITH(store.put(dir.file("s2.db"), m2), Catch::Contains("keep.txt"));
    CHECK(read_file(dir.file("store/keep.txt")) == "mine");
  }
}

// ---- item 11: symlinks, modes and the store directory's owner --------------------------------

TEST_CASE("snapshot store: a symlink planted at snapshot.json is replaced, not followed",
          "[security][snapshot-files]") {
  TempDir dir("sec-store-symlink");
  FileSnapshotStore store(dir.file("store"));
  store_one_snapshot(dir, store);
  const std::string victim = dir.file("victim.txt");
  write_file(victim, "precious");
  fs::remove(dir.file("store/snapshot.json"));
  fs::create_symlink(victim, dir.file("store/snapshot.json"));
  auto m2 = make_snapshot_file(dir.file("a.db"), dir.file("s2.db"));
  store.put(dir.file("s2.db"), m2);
  CHECK(read_file(victim) == "precious");
  CHECK(is_regular_not_link(dir.file("store/snapshot.json")));
  CHECK(store.info()->sha256 == m2.sha256);
}

TEST_CASE("snapshot store: the directory is created private and its files are 0600",
          "[security][snapshot-files]") {
  TempDir dir("sec-store-modes");
  FileSnapshotStore store(dir.file("store"));
  store_one_snapshot(dir, store);
  const auto owner_rw = fs::perms::owner_read | fs::perms::owner_write;
  CHECK(perms_of(dir.file("store/snapshot.json")) == owner_rw);
  CHECK(perms_of(store.current_data_file()) == owner_rw);
  CHECK((perms_of(dir.file("store")) & (fs::perms::group_write | fs::perms::others_write)) ==
        fs::perms::none);
  // What get() downloads is private as well.
  store.get(dir.file("out.db"));
  CHECK(perms_of(dir.file("out.db")) == owner_rw);
}

TEST_CASE("snapshot store: a directory others can write to, or owned by someone else, is refused",
          "[security][snapshot-files]") {
  TempDir dir("sec-store-perms");
  fs::create_directory(dir.file("store"));
  auto db = make_captured_db(dir, "a.db", 1, kBooks);
  auto meta = make_snapshot_file(db, dir.file("s1.db"));
  FileSnapshotStore store(dir.file("store"));

  SECTION("world-writable") {
    ::chmod(dir.file("store").c_str(), 0777);
    REQUIRE_THROWS_WITH(store.put(dir.file("s1.db"), meta), Catch::Contains("writable"));
    CHECK(fs::is_empty(dir.file("store")));
  }
  SECTION("group-writable") {
    ::chmod(dir.file("store").c_str(), 0770);
    REQUIRE_THROWS_WITH(store.put(dir.file("s1.db"), meta),
                        Catch::Contains(dir.file("store")) && Catch::Contains("writable"));
    CHECK(fs::is_empty(dir.file("store")));
  }
  SECTION("owned by another user") {
    if (::geteuid() != 0) return;  // only root can give a directory away
    ::chmod(dir.file("store").c_str(), 0755);
    REQUIRE(::chown(dir.file("store").c_str(), 65534, 65534) == 0);
    REQUIRE_THROWS_WITH(store.put(dir.file("s1.db"), meta), Catch::Contains("owned by"));
    CHECK(fs::is_empty(dir.file("store")));
  }
  SECTION("a snapshot already there is not read from such a directory") {
    ::chmod(dir.file("store").c_str(), 0700);
    store.put(dir.file("s1.db"), meta);
    ::chmod(dir.file("store").c_str(), 0777);
    REQUIRE_THROWS_WITH(store.get(dir.file("out.db")), Catch::Contains("writable"));
    CHECK_FALSE(fs::exists(dir.file("out.db")));
  }
}

TEST_CASE("nats config: a symlink planted at the generated config is replaced, not followed",
          "[security][snapshot-files]") {
  TempDir dir("sec-nats-config-link");
  const std::string victim = dir.file("victim.txt");
  const std::string victim2 = dir.file("victim2.txt");
  write_file(victim, "precious");
  write_file(victim2, "precious too");
  const std::string config = dir.file("harmonylite-nats-server.conf");
  const std::string copy = dir.file("harmonylite-server-config.conf");
  fs::create_symlink(victim, config);
  fs::create_symlink(victim2, copy);
  write_server_config({"authorization { password: \"secret\" }\n", copy, "port: 1\n"}, config);
  CHECK(read_file(victim) == "precious");
  CHECK(read_file(victim2) == "precious too");
  CHECK(is_regular_not_link(config));
  CHECK(is_regular_not_link(copy));
  CHECK(read_file(config) == "authorization { password: \"secret\" }\n");
  CHECK(perms_of(config) == (fs::perms::owner_read | fs::perms::owner_write));
}

TEST_CASE("embedded nats-server: symlinks planted in its store directory are not followed",
          "[security][snapshot-files]") {
  TempDir dir("sec-nats-links");
  EmbeddedServerOptions o;
  o.server_name = "sec-links";
  o.store_dir = dir.file("store");
  o.user = "harmonylite";
  o.password = "planted-secret";
  fs::create_directories(o.store_dir);
  const std::string victim_conf = dir.file("victim-conf.txt");
  const std::string victim_out = dir.file("victim-out.txt");
  write_file(victim_conf, "precious");
  write_file(victim_out, "precious output");
  fs::create_symlink(victim_conf, o.store_dir + "/harmonylite-nats-server.conf");
  fs::create_symlink(victim_out, o.store_dir + "/nats-server.out");
  {
    EmbeddedServer server(o);
    server.start(std::chrono::seconds(10));
    server.stop();
  }
  CHECK(read_file(victim_conf) == "precious");        // on main: the config, password included
  CHECK(read_file(victim_out) == "precious output");  // on main: truncated
  CHECK(is_regular_not_link(o.store_dir + "/harmonylite-nats-server.conf"));
  CHECK(is_regular_not_link(o.store_dir + "/nats-server.out"));
}

// ---- item 9: a restore does not trust the snapshot's content ----------------------------------

namespace {

// A live database and a snapshot of another node, ready to be tampered with.
struct RestoreSetup {
  TempDir dir{"sec-restore"};
  std::string live = make_captured_db(dir, "live.db", 2, kBooks);
  std::string snap;
  RestoreOptions ro;
  RestoreSetup() {
    auto src = make_captured_db(dir, "src.db", 1, kBooks);
    shell_ok(src, "INSERT INTO Books VALUES (1,'Dune','Herbert')");
    snap = dir.file("snap.db");
    make_snapshot_file(src, snap);
    ro.node = 2;
  }
  int64_t live_schema_count(const std::string& where) const {
    return query_int(live, "SELECT count(*) FROM sqlite_schema WHERE " + where);
  }
};

}  // namespace

TEST_CASE("restore refuses a snapshot carrying its own trigger", "[security][snapshot-files]") {
  RestoreSetup s;
  const int64_t triggers_before = s.live_schema_count("type = 'trigger'");
  shell_ok(s.snap,
           "CREATE TABLE Loot (x); CREATE TRIGGER evil AFTER INSERT ON Books BEGIN "
           "INSERT INTO Loot VALUES (new.title); END;");
  CHECK_THROWS_WITH(restore_into(s.live, s.snap, s.ro),
                    Catch::Contains("evil") && Catch::Contains("trigger"));
  CHECK(s.live_schema_count("name = 'evil'") == 0);
  CHECK(s.live_schema_count("name = 'Loot'") == 0);
  CHECK(s.live_schema_count("type = 'trigger'") == triggers_before);
  CHECK(query_int(s.live, "SELECT count(*) FROM Books") == 0);
}

TEST_CASE("restore installs this build's capture triggers, whatever the snapshot holds",
          "[security][snapshot-files]") {
  RestoreSetup s;
  // Same name as one of ours, different body (or another build's version of it).
  std::string ours, original_sql;
  {
    Db db = Db::open(s.snap);
    auto q = db.prepare("SELECT name, sql FROM sqlite_schema WHERE type = 'trigger' LIMIT 1");
    REQUIRE(q.step());
    ours = q.column_text(0);
    original_sql = q.column_text(1);
    db.exec("CREATE TABLE Loot (x); DROP TRIGGER " + quote_ident(ours) + "; CREATE TRIGGER " +
            quote_ident(ours) + " AFTER INSERT ON Books BEGIN INSERT INTO Loot VALUES (1); END;");
  }
  restore_into(s.live, s.snap, s.ro);
  CHECK(query_text(s.live, "SELECT sql FROM sqlite_schema WHERE name = '" + ours + "'") ==
        original_sql);
  shell_ok(s.live, "INSERT INTO Books VALUES (2, 'after restore', 'x');");
  CHECK(query_int(s.live, "SELECT count(*) FROM Loot") == 0);
}

TEST_CASE("restore refuses a snapshot carrying a view", "[security][snapshot-files]") {
  RestoreSetup s;
  shell_ok(s.snap, "CREATE VIEW v AS SELECT * FROM Books;");
  CHECK_THROWS_WITH(restore_into(s.live, s.snap, s.ro),
                    Catch::Contains("view") && Catch::Contains("\"v\""));
  CHECK(s.live_schema_count("name = 'v'") == 0);
}

TEST_CASE("restore refuses a snapshot whose clock is far in the future",
          "[security][snapshot-files]") {
  RestoreSetup s;
  const int64_t hlc_before = query_int(s.live, "SELECT value FROM __harmony_meta WHERE key='hlc'");
  shell_ok(s.snap,
           "INSERT OR REPLACE INTO __harmony_meta (key, value) VALUES ('hlc', "
           "9223372036854775807);");
  CHECK_THROWS_WITH(restore_into(s.live, s.snap, s.ro), Catch::Contains("clock"));
  CHECK(query_int(s.live, "SELECT value FROM __harmony_meta WHERE key='hlc'") == hlc_before);
  CHECK(query_int(s.live, "SELECT count(*) FROM Books") == 0);
}

TEST_CASE("restore refuses a damaged snapshot file", "[security][snapshot-files]") {
  RestoreSetup s;
  // A row that breaks its table's CHECK constraint (written before the constraint was edited
  // into the schema): quick_check reports it.
  shell_ok(s.snap,
           "CREATE TABLE Extra (x); INSERT INTO Extra VALUES (1); PRAGMA writable_schema = ON; "
           "UPDATE sqlite_schema SET sql = 'CREATE TABLE Extra (x CHECK (x > 5))' "
           "WHERE name = 'Extra';");
  CHECK_THROWS_WITH(restore_into(s.live, s.snap, s.ro), Catch::Contains("quick_check"));
  CHECK(s.live_schema_count("name = 'Extra'") == 0);
}

TEST_CASE("restore still accepts an untampered snapshot", "[security][snapshot-files]") {
  RestoreSetup s;
  auto report = restore_into(s.live, s.snap, s.ro);
  CHECK_FALSE(report.interrupted);
  CHECK(query_int(s.live, "SELECT count(*) FROM Books") == 1);
}
