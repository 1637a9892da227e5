// NATS outages with an external nats-server (the [nats] urls mode): the server is stopped while
// applications keep writing, then restarted on the same store; nothing is lost.
#include <catch2/catch.hpp>

#include <climits>
#include <thread>

#include <fmt/format.h>

#include "tests/support/cluster.hpp"

using namespace harmony::test;

TEST_CASE("NATS down while applications write: everything arrives after it returns", "[outage]") {
  TempDir natsdir("nats");
  int port = free_port();
  auto nats = start_external_nats(natsdir, port);
  ClusterOptions o;
  o.nodes = 2;
  o.external_nats_url = fmt::format("nats://127.0.0.1:{}", port);
  TestCluster c(o);
  c.start_all();
  REQUIRE(c.wait_ready(0));
  REQUIRE(c.wait_ready(1));
  INFO(c.all_logs());
  c.exec(0, "INSERT INTO Books (id, title, author) VALUES (1, 'before outage', 'x')");
  REQUIRE(c.wait_converged());

  REQUIRE(nats->stop(10s) != INT_MIN);  // nats-server exits 1 on SIGTERM
  for (int i = 0; i < 40; ++i) {
    c.exec(0,
           fmt::format("INSERT INTO Books (id, title, author) VALUES ({}, 'during outage', 'n1')",
                       100 + i));
    c.exec(1,
           fmt::format("INSERT INTO Authors (id, name) VALUES ({}, 'during outage n2')", 100 + i));
  }
  c.exec(0, "UPDATE Books SET title='updated during outage' WHERE id=1");
  std::this_thread::sleep_for(3s);
  CHECK(c.pending(0) == 41);
  CHECK(c.pending(1) == 40);
  CHECK(c.running(0));
  CHECK(c.running(1));

  nats = start_external_nats(natsdir, port);
  // Generous: under ASan a stalled subscription is noticed after 10 s and publishes back off.
  REQUIRE(c.wait_converged(120s));
  CHECK(c.query_int(1, "SELECT count(*) FROM Books") == 41);
  CHECK(c.query_int(0, "SELECT count(*) FROM Authors") == 40);
  CHECK(c.query_text(1, "SELECT title FROM Books WHERE id=1") == "updated during outage");
  CHECK(c.log(0).find("failed") != std::string::npos);  // the outage was reported, not silent
}
