// A node whose database file is recreated keeps its node id (it comes from the config) but loses
// the batch counter kept in the file. Its new batches must not reuse the ids (and so the
// Nats-Msg-Ids) of the batches it published before: JetStream drops a message whose id it saw
// within the duplicate window (2 min by default) and acknowledges it as a duplicate, so the
// rebuilt node's first writes would never reach anyone.
#include <catch2/catch.hpp>

#include <cstdio>

#include "tests/support/cluster.hpp"
#include "tests/support/support.hpp"

using namespace harmony::test;
using namespace std::chrono_literals;

TEST_CASE("a rebuilt node's new writes reach the others (batch ids are not reused)",
          "[converge][rebuild]") {
  TestCluster c(ClusterOptions{.nodes = 2});
  c.start_all();
  REQUIRE(c.wait_ready(0));
  REQUIRE(c.wait_ready(1));
  INFO(c.all_logs());
  // Several batches from node 1 before its rebuild (one transaction each).
  for (int id = 1; id <= 3; ++id) {
    c.exec(0, "INSERT INTO Books (id, title, author) VALUES (" + std::to_string(id) +
                  ", 'before', 'a')");
    REQUIRE(wait_until([&] { return c.query_int(1, "SELECT count(*) FROM Books") == id; }, 20s));
  }

  // Node 1 is rebuilt: file deleted, schema created again, started (well within the window).
  REQUIRE(c.stop(0) == 0);
  for (const char* suffix : {"", "-wal", "-shm"}) std::remove((c.db(0) + suffix).c_str());
  c.exec(0,
         "CREATE TABLE Books (id INTEGER PRIMARY KEY AUTOINCREMENT, title TEXT NOT NULL, "
         "author TEXT NOT NULL, publication_year INTEGER);"
         "CREATE TABLE Authors (id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT NOT NULL, "
         "birth_year INTEGER);");
  c.start(0);
  REQUIRE(c.wait_ready(0));
  // It replays its own old rows from the stream...
  REQUIRE(wait_until([&] { return c.query_int(0, "SELECT count(*) FROM Books") == 3; }, 30s));
  // ...and its new writes, one batch each, reach node 2.
  for (int id = 10; id <= 12; ++id)
    c.exec(0, "INSERT INTO Books (id, title, author) VALUES (" + std::to_string(id) +
                  ", 'after rebuild', 'b')");
  CHECK(wait_until([&] { return c.query_int(1, "SELECT count(*) FROM Books") == 6; }, 20s));
  CHECK(c.wait_converged());
}
