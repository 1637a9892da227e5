// Tombstone GC (issue 16, docs/anti-entropy.md "Tombstones"): three real nodes on one external
// nats-server, anti-entropy rounds and GC passes every half second. A delete-heavy workload leaves
// tombstones that are pruned once every member applied past them, on every node, with the digests
// equal and no deleted row back; a node stopped during the deletes holds pruning back while it is
// a member and converges without bringing a row back; a node dropped by member_retention whose
// stream position was trimmed away (it missed the deletes) loses the stale rows after healing.
#include <fmt/format.h>
#include <catch2/catch.hpp>

#include <chrono>

#include "tests/support/cluster.hpp"
#include "tests/support/support.hpp"

using namespace harmony::test;
using namespace std::chrono_literals;

namespace {

// [tombstones] last: a test appends its own keys of that table.
constexpr const char* kGcConfig =
    "[anti_entropy]\ninterval = 500\n[snapshot]\nenabled = false\n[tombstones]\ngc_interval = "
    "500\n";

// Tombstones of Books in node i's {rows}.
int64_t tombstones(const TestCluster& c, int i) {
  const int64_t id = c.query_int(i, "SELECT id FROM __harmony_tables WHERE name = 'Books'");
  return c.query_int(i, fmt::format("SELECT count(*) FROM __harmony_rows_{} WHERE deleted", id));
}

std::string digest_of(const TestCluster& c, int i) {
  return stored_digest_text(c, i, "Books");
}

size_t count_in_log(const TestCluster& c, int i, const std::string& text) {
  const std::string log = c.log(i);
  size_t n = 0;
  for (size_t at = log.find(text); at != std::string::npos; at = log.find(text, at + 1)) ++n;
  return n;
}

void insert_books(const TestCluster& c, int i, int from, int to) {
  c.exec(i, fmt::format("WITH RECURSIVE s(i) AS (SELECT {} UNION ALL SELECT i + 1 FROM s WHERE i "
                        "< {}) INSERT INTO Books (id, title, author) SELECT i, 'b' || i, 'a' "
                        "FROM s;",
                        from, to));
}

struct Cluster {
  TempDir natsdir{"gcnats"};
  int nats_port = free_port();
  std::unique_ptr<Process> nats = start_external_nats(natsdir, nats_port);
  std::unique_ptr<TestCluster> c;
  explicit Cluster(const std::string& extra = "", int64_t max_entries = 100000) {
    ClusterOptions o;
    o.external_nats_url = fmt::format("nats://127.0.0.1:{}", nats_port);
    o.max_entries = max_entries;
    o.extra_config = std::string(kGcConfig) + extra;
    c = std::make_unique<TestCluster>(o);
    c->start_all();
    for (int i = 0; i < 3; ++i) REQUIRE(c->wait_ready(i));
  }
};

}  // namespace

TEST_CASE("tombstones are pruned on every node once all applied past them and nothing comes back",
          "[tombstone_gc]") {
  Cluster k;
  TestCluster& c = *k.c;
  insert_books(c, 0, 1, 2000);
  REQUIRE(c.wait_converged());
  c.exec(1, "DELETE FROM Books WHERE id <= 1500");
  REQUIRE(c.wait_converged());
  int64_t before[3];
  for (int i = 0; i < 3; ++i) before[i] = tombstones(c, i);
  // A later write moves every clock past the deletes' versions (an idle cluster's marks stay at
  // the last version issued, so the newest tombstone would wait for the next write).
  c.exec(2, "INSERT INTO Authors (id, name) VALUES (1, 'after')");
  const bool pruned = wait_until(
      [&] { return tombstones(c, 0) == 0 && tombstones(c, 1) == 0 && tombstones(c, 2) == 0; }, 30s,
      200ms);
  int64_t after[3];
  for (int i = 0; i < 3; ++i) after[i] = tombstones(c, i);
  WARN(fmt::format("tombstones per node before pruning {}/{}/{}, after {}/{}/{}", before[0],
                   before[1], before[2], after[0], after[1], after[2]));
  INFO(c.all_logs());
  for (int i = 0; i < 3; ++i) CHECK(before[i] == 1500);
  REQUIRE(pruned);
  REQUIRE(c.wait_converged());
  for (int i = 0; i < 3; ++i) {
    CHECK(c.query_int(i, "SELECT count(*) FROM Books") == 500);
    CHECK(c.query_int(i, "SELECT count(*) FROM Books WHERE id <= 1500") == 0);
    CHECK(c.query_int(i, "SELECT count(*) FROM __harmony_digest_keys") ==
          c.query_int(i, "SELECT sum(rows) FROM __harmony_digest_chunks"));
    CHECK(digest_of(c, i) == digest_of(c, 0));
    CHECK(count_in_log(c, i, "tombstone GC: pruned") > 0);
  }
  // More rounds after pruning bring nothing back.
  const size_t rounds = count_in_log(c, 0, "tombstone GC: pruned");
  REQUIRE(
      wait_until([&] { return count_in_log(c, 0, "tombstone GC: pruned") >= rounds + 3; }, 20s));
  for (int i = 0; i < 3; ++i)
    CHECK(c.query_int(i, "SELECT count(*) FROM Books WHERE id <= 1500") == 0);
}

TEST_CASE("a member stopped during the deletes holds pruning back and brings no row back",
          "[tombstone_gc]") {
  Cluster k;
  TestCluster& c = *k.c;
  insert_books(c, 0, 1, 2000);
  REQUIRE(c.wait_converged());
  // Every node has a horizon (so all three reported marks and know each other) before node 3
  // stops.
  for (int i = 0; i < 3; ++i)
    REQUIRE(wait_until([&] { return count_in_log(c, i, "horizon advanced") > 0; }, 20s));
  REQUIRE(c.stop(2) == 0);
  c.exec(1, "DELETE FROM Books WHERE id <= 1500");
  c.exec(0, "INSERT INTO Authors (id, name) VALUES (1, 'after')");
  REQUIRE(wait_until([&] { return c.pending(0) == 0 && c.pending(1) == 0; }, 20s));
  // Passes keep running on nodes 1 and 2; node 3 is a member whose mark is behind: none prunes.
  const size_t passes = count_in_log(c, 0, "tombstone GC: pruned");
  REQUIRE(
      wait_until([&] { return count_in_log(c, 0, "tombstone GC: pruned") >= passes + 4; }, 20s));
  const int64_t held0 = tombstones(c, 0), held1 = tombstones(c, 1);
  CHECK(held0 == 1500);
  CHECK(held1 == 1500);
  c.start(2);
  REQUIRE(c.wait_ready(2));
  REQUIRE(c.wait_converged());
  c.exec(2, "INSERT INTO Authors (id, name) VALUES (2, 'back')");
  const bool pruned = wait_until(
      [&] { return tombstones(c, 0) == 0 && tombstones(c, 1) == 0 && tombstones(c, 2) == 0; }, 30s,
      200ms);
  WARN(
      fmt::format("while node 3 was down: {}/{} tombstones kept on nodes 1/2; after it came "
                  "back: {}/{}/{}",
                  held0, held1, tombstones(c, 0), tombstones(c, 1), tombstones(c, 2)));
  INFO(c.all_logs());
  REQUIRE(pruned);
  REQUIRE(c.wait_converged());
  for (int i = 0; i < 3; ++i) {
    CHECK(c.query_int(i, "SELECT count(*) FROM Books") == 500);
    CHECK(digest_of(c, i) == digest_of(c, 0));
  }
}

TEST_CASE("a dropped member behind a trimmed stream loses the rows deleted and pruned meanwhile",
          "[tombstone_gc][trimmed]") {
  // Node 3 is dropped 3 s after it was last seen; the stream keeps 20 messages.
  Cluster k("member_retention = 3000\n", 20);
  TestCluster& c = *k.c;
  insert_books(c, 0, 1, 200);
  REQUIRE(c.wait_converged());
  REQUIRE(c.stop(2) == 0);
  c.exec(1, "DELETE FROM Books WHERE id <= 150");
  for (int id = 1000; id < 1060; ++id)  // one message each: trims far past node 3's position
    c.exec(id % 2, fmt::format("INSERT INTO Books (id, title, author) VALUES ({0}, 'b', 'a')", id));
  REQUIRE(wait_until([&] { return c.pending(0) == 0 && c.pending(1) == 0; }, 20s));
  REQUIRE(wait_until([&] { return count_in_log(c, 0, "dropped from the membership") > 0; }, 20s));
  REQUIRE(wait_until([&] { return tombstones(c, 0) == 0 && tombstones(c, 1) == 0; }, 20s, 200ms));
  CHECK(c.query_int(2, "SELECT count(*) FROM Books WHERE id <= 150") == 150);  // still stale
  c.start(2);
  REQUIRE(c.wait_ready(2));
  const bool healed = wait_until(
      [&] {
        return c.query_int(2, "SELECT count(*) FROM Books WHERE id <= 150") == 0 &&
               c.query_int(2, "SELECT count(*) FROM Books") == 110;
      },
      30s, 200ms);
  INFO(c.all_logs());
  REQUIRE(healed);
  REQUIRE(c.wait_converged());
  for (int i = 0; i < 3; ++i) {
    CHECK(c.query_int(i, "SELECT count(*) FROM Books WHERE id <= 150") == 0);
    CHECK(c.query_int(i, "SELECT count(*) FROM Books") == 110);
  }
  CHECK(wait_until([&] { return digest_of(c, 2) == digest_of(c, 0); }, 10s));
  CHECK(count_in_log(c, 2, "deleted and pruned below its tombstone horizon") > 0);
}
