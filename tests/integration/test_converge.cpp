// Three real nodes converge through everyday schema work (issue 15): a table created on one node
// first, rolling DROP / RENAME / ADD COLUMN in any order, a node rebuilt after an ALTER that
// replays the history, and an empty database file that gets its tables late. Nothing is
// dead-lettered and nothing is lost: rows wait (held) until this node can take them.
#include <fmt/format.h>
#include <catch2/catch.hpp>

#include <thread>

#include "tests/support/cluster.hpp"
#include "tests/support/support.hpp"

using namespace harmony::test;
using namespace std::chrono_literals;

namespace {

// The way the tests write: a fresh `sqlite3` shell per statement with every database in one
// directory, or as applications do, one connection per node kept open for the whole test with
// each database in a directory of its own (DDL then arrives through that open connection).
ClusterOptions as_users_write(bool apps) {
  ClusterOptions o;
  o.separate_dirs = apps;
  o.app_connections = apps;
  return o;
}

void start3(TestCluster& c) {
  c.start_all();
  for (int i = 0; i < c.size(); ++i) REQUIRE(c.wait_ready(i));
}

bool all_have(TestCluster& c, const std::string& sql, int64_t want,
              std::chrono::milliseconds timeout = 20s) {
  return wait_until(
      [&] {
        for (int i = 0; i < c.size(); ++i)
          if (c.query_int(i, sql) != want) return false;
        return true;
      },
      timeout);
}

void nothing_lost_or_waiting(TestCluster& c) {
  for (int i = 0; i < c.size(); ++i) {
    INFO("node " << i + 1);
    CHECK(c.query_int(i, "SELECT count(*) FROM __harmony_dead_letters") == 0);
    CHECK(wait_until([&] { return c.query_int(i, "SELECT count(*) FROM __harmony_held") == 0; },
                     15s));
  }
}

}  // namespace

TEST_CASE("a table created on one node first: every row reaches every node", "[converge]") {
  const bool apps = GENERATE(false, true);
  INFO((apps ? "long-lived app connections, separate directories" : "sqlite3 shell per statement"));
  TestCluster c(as_users_write(apps));
  start3(c);
  INFO(c.all_logs());
  c.exec(0, "CREATE TABLE newt (id INTEGER PRIMARY KEY, v TEXT); INSERT INTO newt VALUES (1, 'a')");
  std::this_thread::sleep_for(3s);
  c.exec(0, "INSERT INTO newt VALUES (2, 'b')");
  std::this_thread::sleep_for(1s);
  c.exec(1, "CREATE TABLE newt (id INTEGER PRIMARY KEY, v TEXT)");
  c.exec(2, "CREATE TABLE newt (id INTEGER PRIMARY KEY, v TEXT)");
  c.exec(0, "INSERT INTO newt VALUES (3, 'c')");
  REQUIRE(all_have(c, "SELECT count(*) FROM newt", 3));
  REQUIRE(c.wait_converged());
  nothing_lost_or_waiting(c);
}

TEST_CASE("rolling DROP COLUMN and RENAME COLUMN: no row is lost in either order", "[converge]") {
  const bool apps = GENERATE(false, true);
  INFO((apps ? "long-lived app connections, separate directories" : "sqlite3 shell per statement"));
  TestCluster c(as_users_write(apps));
  start3(c);
  INFO(c.all_logs());
  c.exec(0,
         "INSERT INTO Books (id, title, author, publication_year) VALUES (1, 'Dune', 'H', 1965)");
  REQUIRE(all_have(c, "SELECT count(*) FROM Books WHERE id=1", 1));

  // Node 1 goes first; node 2, still on the old schema, writes with the old columns.
  c.exec(0,
         "ALTER TABLE Books DROP COLUMN publication_year; "
         "ALTER TABLE Books RENAME COLUMN author TO writer");
  c.exec(0, "INSERT INTO Books (id, title, writer) VALUES (10, 'New', 'N')");
  c.exec(1,
         "INSERT INTO Books (id, title, author, publication_year) VALUES (20, 'Old', 'O', 1999)");
  c.exec(1, "UPDATE Books SET author = 'H2' WHERE id = 1");
  // Node 1 takes node 2's rows at once (renamed column mapped, dropped one left out); nodes 2
  // and 3 hold node 1's rows until they have `writer`.
  REQUIRE(wait_until([&] { return c.query_text(0, "SELECT writer FROM Books WHERE id=20") == "O"; },
                     20s));
  REQUIRE(wait_until([&] { return c.query_text(0, "SELECT writer FROM Books WHERE id=1") == "H2"; },
                     20s));
  REQUIRE(
      wait_until([&] { return c.query_int(1, "SELECT count(*) FROM __harmony_held") >= 1; }, 20s));
  CHECK(c.query_int(1, "SELECT count(*) FROM Books WHERE id=10") == 0);

  for (int i : {1, 2})
    c.exec(i,
           "ALTER TABLE Books DROP COLUMN publication_year; "
           "ALTER TABLE Books RENAME COLUMN author TO writer");
  REQUIRE(all_have(c, "SELECT count(*) FROM Books WHERE id IN (1, 10, 20)", 3));
  REQUIRE(all_have(c, "SELECT count(*) FROM Books WHERE id=10 AND writer='N'", 1));
  REQUIRE(all_have(c, "SELECT count(*) FROM Books WHERE id=20 AND writer='O'", 1));
  REQUIRE(all_have(c, "SELECT count(*) FROM Books WHERE id=1 AND writer='H2'", 1));
  REQUIRE(c.wait_converged());
  nothing_lost_or_waiting(c);
}

TEST_CASE("rolling ADD COLUMN: the old node's rows reset the new column everywhere alike",
          "[converge]") {
  TestCluster c;
  start3(c);
  INFO(c.all_logs());
  c.exec(0, "ALTER TABLE Books ADD COLUMN rating INTEGER DEFAULT 0");
  c.exec(0, "INSERT INTO Books (id, title, author, rating) VALUES (5, 'Rated', 'R', 5)");
  REQUIRE(
      wait_until([&] { return c.query_int(1, "SELECT count(*) FROM __harmony_held") == 1; }, 20s));
  // Node 2 (no `rating` yet) rewrites the row later: its version wins; the column takes its
  // default on node 1 as it will on node 2 once added.
  std::this_thread::sleep_for(50ms);
  c.exec(1,
         "INSERT INTO Books (id, title, author) VALUES (5, 'Rewritten', 'R2') "
         "ON CONFLICT(id) DO UPDATE SET title = excluded.title, author = excluded.author");
  REQUIRE(wait_until(
      [&] { return c.query_text(0, "SELECT title FROM Books WHERE id=5") == "Rewritten"; }, 20s));
  for (int i : {1, 2}) c.exec(i, "ALTER TABLE Books ADD COLUMN rating INTEGER DEFAULT 0");
  REQUIRE(
      all_have(c, "SELECT count(*) FROM Books WHERE id=5 AND title='Rewritten' AND rating=0", 1));
  REQUIRE(c.wait_converged());
  nothing_lost_or_waiting(c);
}

TEST_CASE(
    "a node rebuilt after an ALTER replays the history and an empty file gets its rows "
    "once its tables exist",
    "[converge]") {
  TestCluster c;
  start3(c);
  INFO(c.all_logs());
  c.exec(0, "INSERT INTO Books (id, title, author) VALUES (1, 'before', 'a')");
  REQUIRE(all_have(c, "SELECT count(*) FROM Books", 1));
  for (int i = 0; i < 3; ++i) c.exec(i, "ALTER TABLE Books ADD COLUMN rating INTEGER");
  c.exec(1, "INSERT INTO Books (id, title, author, rating) VALUES (2, 'after', 'b', 4)");
  REQUIRE(all_have(c, "SELECT count(*) FROM Books", 2));

  // Node 3 is rebuilt: its file deleted, recreated with the newer schema only, and started. It
  // replays the stream from sequence 1, rows from before the ALTER included.
  REQUIRE(c.stop(2) == 0);
  for (const char* suffix : {"", "-wal", "-shm"}) std::remove((c.db(2) + suffix).c_str());
  c.exec(2,
         "CREATE TABLE Books (id INTEGER PRIMARY KEY AUTOINCREMENT, title TEXT NOT NULL, "
         "author TEXT NOT NULL, publication_year INTEGER, rating INTEGER);"
         "CREATE TABLE Authors (id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT NOT NULL, "
         "birth_year INTEGER);");
  c.start(2);
  REQUIRE(c.wait_ready(2));
  REQUIRE(all_have(c, "SELECT count(*) FROM Books", 2));
  CHECK(c.query_int(2, "SELECT rating FROM Books WHERE id=2") == 4);

  // An empty file (no tables at all) joins: rows wait, then arrive once the tables exist.
  REQUIRE(c.stop(1) == 0);
  for (const char* suffix : {"", "-wal", "-shm"}) std::remove((c.db(1) + suffix).c_str());
  c.exec(1, "SELECT 1");  // creates the empty file
  c.start(1);
  // Not ready in the health sense (no table is captured: /health answers 503 and says so), but
  // it reads the stream and holds what it cannot apply yet.
  // (Until the replicator has created its tables the query fails: -1 then.)
  REQUIRE(wait_until(
      [&] {
        return c.query_int(1,
                           "SELECT coalesce((SELECT count(*) FROM pragma_table_list WHERE "
                           "name = '__harmony_held'), 0)") == 1 &&
               c.query_int(1, "SELECT count(*) FROM __harmony_held") > 0;
      },
      60s));
  CHECK(c.query_int(1, "SELECT count(*) FROM __harmony_dead_letters") == 0);
  c.exec(1,
         "CREATE TABLE Books (id INTEGER PRIMARY KEY AUTOINCREMENT, title TEXT NOT NULL, "
         "author TEXT NOT NULL, publication_year INTEGER, rating INTEGER);"
         "CREATE TABLE Authors (id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT NOT NULL, "
         "birth_year INTEGER);");
  REQUIRE(all_have(c, "SELECT count(*) FROM Books", 2));
  REQUIRE(c.wait_converged());
  nothing_lost_or_waiting(c);
}
