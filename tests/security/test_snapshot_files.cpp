// Files and snapshots are untrusted (issue 14): a snapshot.json naming a file outside the
// directory store. Each test plants the attack and checks it is refused and that nothing
// outside is touched.
#include <sys/stat.h>
#include <unistd.h>

#include <catch2/catch.hpp>

#include <cstdint>
#include <filesystem>
#include <limits>
#include <string>

#include <nlohmann/json.hpp>

#include "replicator/snapshot/object_store.hpp"
#include "replicator/snapshot/snapshot.hpp"
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

