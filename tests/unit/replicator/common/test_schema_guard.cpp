// Schema hashes and previous hashes in __harmony_meta. (What a consumer does with rows from
// another schema version: tests/unit/replicator/receive/test_held_rows.cpp.)
#include <catch2/catch.hpp>

#include "replicator/common/schema_guard.hpp"
#include "replicator/wire/codec.hpp"
#include "shared/capture.hpp"
#include "shared/hlc.hpp"
#include "tests/support/db_fixture.hpp"
#include "tests/support/fake_stream.hpp"
#include "tests/support/runner.hpp"
#include "tests/support/support.hpp"

using namespace harmony;
using namespace harmony::test;

namespace {

// A database with capture on Books and its hashes recorded, as the replicator leaves it after
// start-up.
std::string make_db(const TempDir& dir, const std::string& name, uint64_t node) {
  std::string path = make_captured_db(dir, name, node);
  Db db = Db::open(path);
  record_schema_hashes(db, captured_tables(db));
  return path;
}

}  // namespace

TEST_CASE("schema hashes: columns, types and key count, previous hashes are remembered",
          "[schema]") {
  TempDir dir("schema");
  auto path = make_db(dir, "a.db", 1);
  Db db = Db::open(path);
  const std::string h0 = describe_table(db, "Books").schema_hash();
  CHECK(recorded_schema_hashes(db).at("books") == h0);
  CHECK(recorded_previous_hashes(db).empty());
  // Indexes and row data do not change the hash; columns do.
  db.exec("CREATE INDEX books_title ON Books(title); INSERT INTO Books VALUES (1,'a','b',1)");
  CHECK(describe_table(db, "Books").schema_hash() == h0);
  db.exec("ALTER TABLE Books ADD COLUMN rating INTEGER");
  const std::string h1 = describe_table(db, "Books").schema_hash();
  CHECK(h1 != h0);

  // Before anyone recorded the change, the recorded hash already counts as previous.
  auto local = LocalSchema::load(db);
  REQUIRE(local.find("BOOKS"));
  CHECK(local.find("books")->hash == h1);
  CHECK(local.find("Books")->previous == std::vector<std::string>{h0});

  std::vector<std::string> changed;
  {
    Transaction tx(db);
    changed = record_schema_hashes(db, captured_tables(db));
    tx.commit();
  }
  CHECK(changed == std::vector<std::string>{"Books"});
  CHECK(recorded_previous_hashes(db).at("books") == std::vector<std::string>{h0});
  {
    Transaction tx(db);
    CHECK(record_schema_hashes(db, captured_tables(db)).empty());  // nothing new
    tx.commit();
  }
  db.exec("ALTER TABLE Books ADD COLUMN isbn TEXT");
  const std::string h2 = describe_table(db, "Books").schema_hash();
  {
    Transaction tx(db);
    record_schema_hashes(db, captured_tables(db));
    tx.commit();
  }
  local = LocalSchema::load(db);
  CHECK(local.find("Books")->hash == h2);
  CHECK(local.find("Books")->previous == std::vector<std::string>{h1, h0});
  CHECK(local.by_name().count("Books") == 1);
}
