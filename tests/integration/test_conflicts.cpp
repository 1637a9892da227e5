// Three real nodes and a UNIQUE race (issue 15 case 5): nodes 1 and 2 give the same e-mail to
// different rows without hearing from each other. Every node ends with the same single row (the
// greater version's), nothing stays held, and the loser is in a conflict log.
#include <fmt/format.h>
#include <catch2/catch.hpp>

#include "tests/support/cluster.hpp"
#include "tests/support/http.hpp"
#include "tests/support/support.hpp"

using namespace harmony::test;
using namespace std::chrono_literals;

namespace {
int64_t logged_all(TestCluster& c) {
  int64_t n = 0;
  for (int i = 0; i < c.size(); ++i)
    n += c.query_int(i, "SELECT count(*) FROM __harmony_conflicts");
  return n;
}
}  // namespace

TEST_CASE("a UNIQUE race between two nodes ends with one row everywhere, the loser logged",
          "[conflicts]") {
  ClusterOptions o;
  o.schema = "CREATE TABLE Users (id INTEGER PRIMARY KEY, email TEXT NOT NULL UNIQUE, name TEXT);";
  TestCluster c(o);
  std::vector<int> metrics_port;
  for (int i = 0; i < c.size(); ++i) {
    metrics_port.push_back(free_port());
    c.set_node_sections(
        i, fmt::format("[prometheus]\nenable = true\nbind = \"127.0.0.1:{}\"\n", metrics_port[i]));
  }
  c.start_all();
  for (int i = 0; i < c.size(); ++i) REQUIRE(c.wait_ready(i));
  INFO(c.all_logs());
  // Node 2 is stopped while both write: neither can have seen the other's row.
  REQUIRE(c.stop(1) == 0);
  c.exec(0, "INSERT INTO Users VALUES (1, 'same@example.com', 'on node 1')");
  // (Node 2's server may host the stream: nothing need reach node 3 before node 2 is back.)
  c.exec(1, "INSERT INTO Users VALUES (2, 'same@example.com', 'on node 2')");  // later: wins
  c.start(1);
  REQUIRE(c.wait_ready(1));
  REQUIRE(wait_until(
      [&] {
        for (int i = 0; i < c.size(); ++i)
          if (c.query_int(i, "SELECT count(*) FROM Users WHERE id = 2") != 1 ||
              c.query_int(i, "SELECT count(*) FROM Users") != 1 ||
              c.query_int(i, "SELECT count(*) FROM __harmony_held") != 0)
            return false;
        return true;
      },
      30s));
  REQUIRE(c.wait_converged());
  INFO(c.all_logs());
  int64_t logged = 0;
  for (int i = 0; i < c.size(); ++i) {
    INFO("node " << i + 1);
    CHECK(c.query_int(i, "SELECT count(*) FROM __harmony_dead_letters") == 0);
    logged += c.query_int(i,
                          "SELECT count(*) FROM __harmony_conflicts WHERE kind = 'unique' AND "
                          "json_extract(loser_values, '$.name') = 'on node 1'");
  }
  CHECK(logged >= 1);
  // The metric counts what the logs hold (each node counts the rows it recorded).
  int64_t counted = 0;
  for (int i = 0; i < c.size(); ++i) {
    const std::string body = http_get(metrics_port[i], "/metrics").body;
    const auto at = body.find("\nharmonylite_conflicts_total{");
    REQUIRE(at != std::string::npos);
    counted += std::stoll(body.substr(body.find("} ", at) + 2));
  }
  CHECK(counted == logged_all(c));
}
