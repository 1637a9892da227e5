// A node whose stream position was trimmed away while it was down (issue 16): with no usable
// snapshot it starts anyway, from the streams' first retained sequences, and anti-entropy fills
// the gap from its peers (rows with their versions; its own unpublished rows kept and
// published). /health says "degraded" with the gap until a round with every reachable peer finds
// nothing missing, then "healthy". A running node whose consumer meets such a hole (it was too
// slow, or stopped) reads on the same way instead of pausing the stream. Three real nodes on one
// external nats-server (a node's embedded server would take the stream down with it),
// max_entries small, rounds every second.
#include <fmt/format.h>
#include <catch2/catch.hpp>

#include <chrono>

#include <signal.h>

#include <nlohmann/json.hpp>

#include "tests/support/cluster.hpp"
#include "tests/support/http.hpp"
#include "tests/support/support.hpp"

using namespace harmony::test;
using namespace std::chrono_literals;

namespace {

// The stream keeps this many messages: the writes below (one message each) trim far past it.
constexpr int64_t kMaxEntries = 20;
constexpr int kWritesWhileDown = 120;
// Enough bytes that a stalled reader cannot have them all buffered: 400 rows of 32 KB.
constexpr int kBigWritesWhileStalled = 400;
constexpr int kBigValueBytes = 16 * 1024;  // hex() doubles it

// Node i's log since its latest start (the cluster keeps one log per node across starts).
std::string latest_log(const TestCluster& c, int i) {
  const std::string log = c.log(i);
  const size_t at = log.rfind("===== start =====");
  return at == std::string::npos ? log : log.substr(at);
}

bool log_has(const TestCluster& c, int i, const std::string& text) {
  return latest_log(c, i).find(text) != std::string::npos;
}

std::string health_status(const TestCluster& c, int i) {
  const HttpResult r = http_get(c.health_port(i), "/health");
  if (r.status != 200) return "http " + std::to_string(r.status);
  return nlohmann::json::parse(r.body).value("status", "");
}

// Three running nodes on one external nats-server whose stream keeps kMaxEntries messages,
// anti-entropy rounds every second and no snapshots at all (a node must heal without one; on
// main it refused to start), converged on one row.
struct TrimmingCluster {
  TempDir natsdir{"trimnats"};
  int nats_port = free_port();
  std::unique_ptr<Process> nats = start_external_nats(natsdir, nats_port);
  TestCluster cluster{options(nats_port)};

  TrimmingCluster() {
    cluster.start_all();
    for (int i = 0; i < 3; ++i) REQUIRE(cluster.wait_ready(i));
    cluster.exec(0, "INSERT INTO Books (id, title, author) VALUES (1, 'before', 'a')");
    REQUIRE(cluster.wait_converged());
  }

  static ClusterOptions options(int nats_port) {
    ClusterOptions o;
    o.external_nats_url = fmt::format("nats://127.0.0.1:{}", nats_port);
    o.max_entries = kMaxEntries;
    o.separate_dirs = true;  // each database in a directory of its own, as applications keep them
    o.extra_config =
        "[anti_entropy]\ninterval = 1000\ndigest_check_rounds = 1\n[snapshot]\nenabled = "
        "false\n";
    return o;
  }
};

}  // namespace

TEST_CASE("a node whose stream position was trimmed away restarts and heals by anti-entropy",
          "[anti_entropy][trimmed]") {
  TrimmingCluster t;
  TestCluster& c = t.cluster;
  REQUIRE(c.stop(2) == 0);
  // Written on node 3 while its replicator is down: pending, must survive and reach the others.
  c.exec(2, "INSERT INTO Authors (id, name) VALUES (77, 'written while down')");
  // One transaction each, on two nodes: far more messages than the stream keeps.
  for (int id = 100; id < 100 + kWritesWhileDown; ++id)
    c.exec(id % 2,
           fmt::format("INSERT INTO Books (id, title, author) VALUES ({0}, 'b{0}', 'a')", id));
  c.exec(1, "UPDATE Books SET title = 'changed' WHERE id = 1");
  REQUIRE(wait_until([&] { return c.pending(0) == 0 && c.pending(1) == 0; }, 20s));

  c.start(2);
  const bool settled =
      wait_until([&] { return !c.running(2) || log_has(c, 2, "is replicating"); }, 30s, 100ms);
  INFO(latest_log(c, 2));
  REQUIRE(settled);
  REQUIRE(c.running(2));  // main: exit 1, "this node cannot catch up: ... are gone"
  CHECK(log_has(c, 2, "are gone"));
  CHECK(log_has(c, 2, "by anti-entropy"));
  // Its own pending row, published at start, makes the full stream drop one more message; when
  // that happens before its consumer read it, the consumer meets a second hole while running.
  // It reads on past that one too (the race stop 25 found: it paused there).
  CHECK_FALSE(log_has(c, 2, "This stream is paused"));
  REQUIRE(c.wait_ready(2));
  const bool rows_back = wait_until(
      [&] {
        return c.query_int(2, "SELECT count(*) FROM Books") == 1 + kWritesWhileDown &&
               c.query_int(0, "SELECT count(*) FROM Authors WHERE id = 77") == 1 &&
               c.query_int(1, "SELECT count(*) FROM Authors WHERE id = 77") == 1;
      },
      30s);
  INFO(c.all_logs());
  REQUIRE(rows_back);
  REQUIRE(c.wait_converged(30s));
  CHECK(c.query_text(2, "SELECT title FROM Books WHERE id = 1") == "changed");
  for (const char* table : {"Books", "Authors"})
    for (int i = 1; i < 3; ++i)
      CHECK(stored_digest_text(c, i, table) == stored_digest_text(c, 0, table));
  // The gap is reported until a round finds nothing missing here, then health clears.
  CHECK(wait_until([&] { return health_status(c, 2) == "healthy"; }, 20s));
  CHECK(log_has(c, 2, "gap"));
  CHECK(c.query_int(2,
                    "SELECT count(*) FROM __harmony_meta WHERE key = 'anti_entropy_gap' AND "
                    "value > 0") == 0);
}

TEST_CASE("a running node whose unread messages were trimmed reads on and heals by anti-entropy",
          "[anti_entropy][trimmed]") {
  TrimmingCluster t;
  TestCluster& c = t.cluster;
  // Node 3's replicator stops reading (SIGSTOP) while far more is written than the stream keeps
  // and than the server buffers for a stalled push consumer: when it reads on, the next
  // sequence it gets is far past its position. Main paused the stream there for good ("restart
  // harmonylite"); a running node now does what a restarting one does.
  const pid_t node3 = c.process(2)->pid();
  REQUIRE(kill(node3, SIGSTOP) == 0);
  struct ContinueOnExit {  // a failed REQUIRE below must not leave node 3 stopped
    pid_t pid;
    ~ContinueOnExit() { kill(pid, SIGCONT); }
  } continue_on_exit{node3};
  for (int id = 100; id < 100 + kBigWritesWhileStalled; ++id)
    c.exec(0, fmt::format("INSERT INTO Books (id, title, author) VALUES ({}, hex(randomblob({})), "
                          "'a')",
                          id, kBigValueBytes));
  REQUIRE(wait_until([&] { return c.pending(0) == 0; }, 30s));
  REQUIRE(kill(node3, SIGCONT) == 0);
  const bool read_on =
      wait_until([&] { return log_has(c, 2, "reading on, and anti-entropy brings"); }, 30s, 100ms);
  INFO(latest_log(c, 2));
  REQUIRE(read_on);
  CHECK_FALSE(log_has(c, 2, "This stream is paused"));
  REQUIRE(c.wait_converged(60s));
  CHECK(c.query_int(2, "SELECT count(*) FROM Books") == 1 + kBigWritesWhileStalled);
  CHECK(wait_until([&] { return health_status(c, 2) == "healthy"; }, 20s));
  CHECK(c.query_int(2,
                    "SELECT count(*) FROM __harmony_meta WHERE key = 'anti_entropy_gap' AND "
                    "value > 0") == 0);
}
