// Db::cached (shared/sqlite_db.hpp): statements kept per connection for the SQL every transaction
// runs. Each use leaves the statement reset, a kept statement survives schema changes, and
// nothing kept stands in the way of DETACH or closing the connection.
#include <catch2/catch.hpp>

#include <string>

#include "shared/sqlite_db.hpp"
#include "tests/support/support.hpp"

using namespace harmony;
using harmony::test::TempDir;

namespace {
// Statements of `db` that have been stepped and not reset.
int active_statements(const Db& db) {
  int n = 0;
  for (sqlite3_stmt* s = sqlite3_next_stmt(db.handle(), nullptr); s;
       s = sqlite3_next_stmt(db.handle(), s))
    if (sqlite3_stmt_busy(s)) ++n;
  return n;
}
int prepared_statements(const Db& db) {
  int n = 0;
  for (sqlite3_stmt* s = sqlite3_next_stmt(db.handle(), nullptr); s;
       s = sqlite3_next_stmt(db.handle(), s))
    ++n;
  return n;
}
}  // namespace

TEST_CASE("a cached statement is prepared once and reset after each use", "[sqlite_db]") {
  TempDir dir;
  Db db = Db::open(dir.path() + "/c.db", SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE);
  db.exec("CREATE TABLE kv(k TEXT PRIMARY KEY, v); INSERT INTO kv VALUES ('a', 1), ('b', 2)");
  const char* sql = "SELECT v FROM kv WHERE k = ?1";
  sqlite3_stmt* first = nullptr;
  for (const char* k : {"a", "b", "a"}) {
    auto s = db.cached(sql);
    if (!first) first = s->get();
    CHECK(s->get() == first);
    s->bind(1, std::string_view(k));
    REQUIRE(s->step());  // a row: the statement is active until the use ends
    CHECK(active_statements(db) == 1);
  }
  CHECK(active_statements(db) == 0);
  CHECK(prepared_statements(db) == 1);
  {
    Transaction tx(db);
    CHECK(db.in_transaction());
    tx.commit();
  }
  CHECK_FALSE(db.in_transaction());
  CHECK(prepared_statements(db) == 3);  // the SELECT, BEGIN IMMEDIATE, COMMIT
  CHECK(active_statements(db) == 0);
}

TEST_CASE("a cached statement survives a schema change, DETACH and a full cache", "[sqlite_db]") {
  TempDir dir;
  Db db = Db::open(dir.path() + "/c.db", SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE);
  db.exec("CREATE TABLE kv(k TEXT PRIMARY KEY, v)");
  const char* insert = "INSERT INTO kv(k, v) VALUES (?1, ?2)";
  db.cached(insert)->bind(1, std::string_view("a")).bind(2, int64_t{1}).run();
  // Schema changes under the kept statement: SQLite re-prepares it on its next step.
  db.exec("ALTER TABLE kv ADD COLUMN extra DEFAULT 'x'; CREATE INDEX kv_v ON kv(v)");
  db.exec("ATTACH '" + dir.path() + "/other.db' AS other; CREATE TABLE other.t(x)");
  db.cached(insert)->bind(1, std::string_view("b")).bind(2, int64_t{2}).run();
  db.exec("DETACH other");  // nothing kept is active on it
  CHECK(db.query_int("SELECT count(*) FROM kv WHERE extra = 'x'") == 2);
  // Beyond kMaxCachedStatements, statements are prepared per use and finalized after it.
  for (size_t i = 0; i < kMaxCachedStatements + 4; ++i)
    CHECK(db.cached("SELECT " + std::to_string(i))->step());
  CHECK(prepared_statements(db) == static_cast<int>(kMaxCachedStatements));
  // Closing with kept statements closes the connection (not a zombie waiting for them).
  sqlite3* handle = db.handle();
  Db moved = std::move(db);
  CHECK(moved.handle() == handle);
  moved = Db();
  SUCCEED("closed");
}
