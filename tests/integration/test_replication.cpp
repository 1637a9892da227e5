// End-to-end replication with real harmonylite processes, embedded nats-server clusters, real
// SQLite files and the stock sqlite3 shell: HarmonyLite's e2e scenarios 1-4 and 6-9, whole
// transactions, kill -9, NATS outages, duplicates and garbage on the wire.
#include <nats/nats.h>
#include <catch2/catch.hpp>

#include <thread>

#include <fmt/format.h>

#include "replicator/wire/codec.hpp"
#include "replicator/wire/wire.hpp"
#include "tests/support/cluster.hpp"

using namespace harmony;
using namespace harmony::test;

namespace {

void start_and_wait(TestCluster& c) {
  c.start_all();
  for (int i = 0; i < c.size(); ++i) REQUIRE(c.wait_ready(i));
}

// Publishes a raw message into a stream, as a foreign client would.
void raw_publish(const std::string& url, const std::string& subject, const std::string& payload,
                 const std::vector<std::pair<std::string, std::string>>& headers) {
  natsConnection* nc = nullptr;
  REQUIRE(natsConnection_ConnectTo(&nc, url.c_str()) == NATS_OK);
  jsCtx* js = nullptr;
  REQUIRE(natsConnection_JetStream(&js, nc, nullptr) == NATS_OK);
  natsMsg* m = nullptr;
  REQUIRE(natsMsg_Create(&m, subject.c_str(), nullptr, payload.data(),
                         static_cast<int>(payload.size())) == NATS_OK);
  for (const auto& [k, v] : headers) natsMsgHeader_Set(m, k.c_str(), v.c_str());
  jsPubAck* pa = nullptr;
  CHECK(js_PublishMsg(&pa, js, m, nullptr, nullptr) == NATS_OK);
  jsPubAck_Destroy(pa);
  natsMsg_Destroy(m);
  jsCtx_Destroy(js);
  natsConnection_Destroy(nc);
}

std::string nats_url_of(TestCluster& c, int i) {
  return c.query_text(i, "SELECT value FROM __harmony_meta WHERE key='runtime_nats_url'");
}

// Deletes every consumer of `stream`, as a server that goes down takes the consumers placed on
// it along, once the stream lists `expected` of them (a node may still be creating its own).
// Returns how many were deleted.
int delete_all_consumers(const std::string& url, const std::string& stream, int expected) {
  natsConnection* nc = nullptr;
  REQUIRE(natsConnection_ConnectTo(&nc, url.c_str()) == NATS_OK);
  jsCtx* js = nullptr;
  REQUIRE(natsConnection_JetStream(&js, nc, nullptr) == NATS_OK);
  jsConsumerNamesList* names = nullptr;
  const bool listed = wait_until(
      [&] {
        jsConsumerNamesList_Destroy(names);
        names = nullptr;
        return js_ConsumerNames(&names, js, stream.c_str(), nullptr, nullptr) == NATS_OK &&
               names->Count == expected;
      },
      10s);
  int deleted = 0;
  if (listed)
    for (int i = 0; i < names->Count; ++i)
      if (js_DeleteConsumer(js, stream.c_str(), names->List[i], nullptr, nullptr) == NATS_OK)
        ++deleted;
  jsConsumerNamesList_Destroy(names);
  jsCtx_Destroy(js);
  natsConnection_Destroy(nc);
  return deleted;
}
}  // namespace

TEST_CASE("insert, update, delete, several tables and volume reach every node",
          "[replication][smoke]") {
  TestCluster c;
  start_and_wait(c);
  INFO(c.all_logs());
  // Scenario 1: INSERT
  c.exec(0,
         "INSERT INTO Books (title, author, publication_year) VALUES ('Pride and Prejudice', "
         "'Jane Austen', 1813)");
  REQUIRE(wait_until(
      [&] {
        return c.query_int(1, "SELECT count(*) FROM Books WHERE title='Pride and Prejudice'") == 1;
      },
      10s));
  REQUIRE(wait_until([&] { return c.query_int(2, "SELECT count(*) FROM Books WHERE id=1") == 1; },
                     10s));
  // Scenario 2: UPDATE
  c.exec(0, "UPDATE Books SET title='Updated Title' WHERE id=1");
  REQUIRE(wait_until(
      [&] {
        return c.query_text(1, "SELECT title FROM Books WHERE id=1") == "Updated Title" &&
               c.query_text(2, "SELECT title FROM Books WHERE id=1") == "Updated Title";
      },
      10s));
  // Scenario 3: DELETE
  c.exec(0, "DELETE FROM Books WHERE id=1");
  REQUIRE(wait_until(
      [&] {
        return c.query_int(1, "SELECT count(*) FROM Books") == 0 &&
               c.query_int(2, "SELECT count(*) FROM Books") == 0;
      },
      10s));
  // Scenario 7: several tables
  c.exec(0,
         "INSERT INTO Books (title, author) VALUES ('Dune', 'Frank Herbert'); INSERT INTO "
         "Authors (name, birth_year) VALUES ('Frank Herbert', 1920);");
  REQUIRE(wait_until(
      [&] {
        return c.query_int(1, "SELECT count(*) FROM Authors WHERE name='Frank Herbert'") == 1 &&
               c.query_int(2, "SELECT count(*) FROM Books WHERE title='Dune'") == 1;
      },
      10s));
  // Scenario 8: 100 sequential inserts (separate shell sessions, separate transactions)
  for (int i = 0; i < 100; ++i)
    c.exec(0, fmt::format("INSERT INTO Books (id, title, author) VALUES ({}, 'Volume {}', 'V')",
                          1000 + i, i));
  REQUIRE(wait_until(
      [&] {
        return c.query_int(1, "SELECT count(*) FROM Books WHERE id >= 1000") == 100 &&
               c.query_int(2, "SELECT count(*) FROM Books WHERE id >= 1000") == 100;
      },
      30s));
  REQUIRE(c.wait_converged());
  CHECK(c.query_int(1, "SELECT count(*) FROM __harmony_dead_letters") == 0);
}

TEST_CASE("concurrent updates of one row end identical everywhere (LWW)", "[replication]") {
  TestCluster c;
  start_and_wait(c);
  INFO(c.all_logs());
  c.exec(0, "INSERT INTO Books (id, title, author) VALUES (1, 'Original', 'A')");
  REQUIRE(wait_until(
      [&] {
        return c.query_int(1, "SELECT count(*) FROM Books") == 1 &&
               c.query_int(2, "SELECT count(*) FROM Books") == 1;
      },
      10s));
  // Scenario 4: node 2 writes 100 ms after node 1, so its version is newer and wins.
  std::thread t1([&] { c.exec(0, "UPDATE Books SET title='Node1 Update' WHERE id=1"); });
  std::this_thread::sleep_for(100ms);
  std::thread t2([&] { c.exec(1, "UPDATE Books SET title='Node2 Update' WHERE id=1"); });
  t1.join();
  t2.join();
  REQUIRE(c.wait_converged());
  for (int i = 0; i < 3; ++i)
    CHECK(c.query_text(i, "SELECT title FROM Books WHERE id=1") == "Node2 Update");
  // Truly simultaneous writes on all three nodes: one of them wins on every node.
  for (int round = 0; round < 5; ++round) {
    std::vector<std::thread> ts;
    for (int i = 0; i < 3; ++i)
      ts.emplace_back([&, i] {
        c.exec(i, fmt::format("UPDATE Books SET title='r{} n{}' WHERE id=1", round, i));
      });
    for (auto& t : ts) t.join();
  }
  REQUIRE(c.wait_converged());
}

TEST_CASE("a multi-row transaction appears whole on replicas", "[replication]") {
  TestCluster c(ClusterOptions{.nodes = 2});
  start_and_wait(c);
  INFO(c.all_logs());
  std::atomic<bool> done{false};
  std::atomic<int64_t> partial{-1};
  std::thread reader([&] {
    while (!done) {
      int64_t n = c.query_int(1, "SELECT count(*) FROM Books");
      if (n != 0 && n != 2000 && n != -1) partial = n;
    }
  });
  c.exec(0,
         "BEGIN; WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM s WHERE i<2000) "
         "INSERT INTO Books(title, author) SELECT 'bulk '||i, 'x' FROM s; COMMIT;");
  bool arrived =
      wait_until([&] { return c.query_int(1, "SELECT count(*) FROM Books") == 2000; }, 20s);
  done = true;
  reader.join();
  REQUIRE(arrived);
  CHECK(partial == -1);
}

TEST_CASE("a replicator restarted after kill -9 catches up without loss or double apply",
          "[replication][smoke]") {
  // Three replicas: a killed node takes its nats-server down with it, the streams keep a quorum.
  TestCluster c(ClusterOptions{.replicas = 3});
  start_and_wait(c);
  INFO(c.all_logs());
  c.exec(0, "INSERT INTO Books (title, author) VALUES ('before', 'x')");
  REQUIRE(c.wait_converged());
  // Scenario 6: node 3 is away while node 1 writes.
  c.kill9(2);
  for (int i = 0; i < 50; ++i)
    c.exec(0, fmt::format("INSERT INTO Books (title, author) VALUES ('while away {}', 'x')", i));
  c.exec(1, "UPDATE Books SET author='edited on node 2' WHERE title='before'");
  // Up to ~10 s when the killed node's server led the stream (JetStream re-elects a leader).
  REQUIRE(wait_until([&] { return c.query_int(1, "SELECT count(*) FROM Books") == 51; }, 30s));
  // Writes on node 3 itself while its replicator is down are captured and sent later.
  c.exec(2, "INSERT INTO Authors (name) VALUES ('written while down')");
  c.start(2);
  REQUIRE(c.wait_ready(2));
  REQUIRE(c.wait_converged(30s));
  CHECK(c.query_int(2, "SELECT count(*) FROM Books") == 51);
  CHECK(c.query_int(0, "SELECT count(*) FROM Authors WHERE name='written while down'") == 1);
  // kill -9 of the publisher side while it writes a burst: nothing lost.
  std::thread writer([&] {
    for (int i = 0; i < 30; ++i)
      c.exec(0, fmt::format("INSERT INTO Books (title, author) VALUES ('burst {}', 'x')", i));
  });
  std::this_thread::sleep_for(300ms);
  c.kill9(0);
  writer.join();
  c.start(0);
  REQUIRE(c.wait_ready(0));
  REQUIRE(c.wait_converged(30s));
  CHECK(c.query_int(1, "SELECT count(*) FROM Books WHERE title LIKE 'burst %'") == 30);
  CHECK(c.query_int(2, "SELECT count(*) FROM __harmony_dead_letters") == 0);
}

TEST_CASE("publish = false keeps local changes home and still applies others", "[replication]") {
  TestCluster c;
  start_and_wait(c);
  INFO(c.all_logs());
  // Scenario 9
  REQUIRE(c.stop(1) == 0);
  c.set_node_config(1, "publish = false");
  c.start(1);
  REQUIRE(c.wait_ready(1));
  c.exec(1, "INSERT INTO Books (id, title, author) VALUES (200, 'only on node 2', 'x')");
  c.exec(0, "INSERT INTO Books (id, title, author) VALUES (100, 'from node 1', 'x')");
  REQUIRE(wait_until(
      [&] { return c.query_int(1, "SELECT count(*) FROM Books WHERE title='from node 1'") == 1; },
      10s));
  std::this_thread::sleep_for(2s);
  CHECK(c.query_int(0, "SELECT count(*) FROM Books WHERE title='only on node 2'") == 0);
  CHECK(c.pending(1) == 1);  // kept, not discarded
  // Publishing again later sends what was kept.
  REQUIRE(c.stop(1) == 0);
  c.set_node_config(1, "");
  c.start(1);
  REQUIRE(wait_until(
      [&] {
        return c.query_int(0, "SELECT count(*) FROM Books WHERE title='only on node 2'") == 1;
      },
      20s));
}

TEST_CASE("garbage and duplicates on the wire: dead letters, no effect, later changes apply",
          "[replication][smoke]") {
  TestCluster c(ClusterOptions{.nodes = 2});
  start_and_wait(c);
  INFO(c.all_logs());
  c.exec(0, "INSERT INTO Books (id, title, author) VALUES (1, 'first', 'x')");
  REQUIRE(c.wait_converged());
  std::string url = nats_url_of(c, 1);
  REQUIRE_FALSE(url.empty());
  raw_publish(url, "harmonylite-change-log-1", "this is not a batch", {});
  raw_publish(url, "harmonylite-change-log-1", std::string("\x01\x28\xb5\x2f\xfd garbage", 11),
              {{kHeaderOrigin, "99"}, {kHeaderBatch, "1"}, {kHeaderPart, "1/1"}});
  // A duplicate of a real batch (an older version of row 1) changes nothing.
  Batch old;
  old.origin_node = 1;
  old.batch_id = 999;
  old.tables.push_back({"Books", "", {"id", "title", "author", "publication_year"}, {"id"}, 0});
  old.rows.push_back({0, 5, false, {int64_t{1}}, {int64_t{1}, Text{"stale"}, Text{"x"}, Null{}}});
  raw_publish(url, "harmonylite-change-log-1", encode_batch(old, true),
              {{kHeaderOrigin, "1"}, {kHeaderBatch, "999"}, {kHeaderPart, "1/1"}});
  c.exec(0, "INSERT INTO Books (id, title, author) VALUES (2, 'after garbage', 'x')");
  REQUIRE(wait_until([&] { return c.query_int(1, "SELECT count(*) FROM Books WHERE id=2") == 1; },
                     10s));
  CHECK(c.query_text(1, "SELECT title FROM Books WHERE id=1") == "first");
  CHECK(c.query_int(1, "SELECT count(*) FROM __harmony_dead_letters") == 2);
  CHECK(c.running(0));
  CHECK(c.running(1));
}

TEST_CASE("SIGTERM stops a node and its nats-server within seconds", "[replication]") {
  TestCluster c(ClusterOptions{.nodes = 1});
  start_and_wait(c);
  pid_t pid = c.process(0)->pid();
  auto t0 = std::chrono::steady_clock::now();
  CHECK(c.stop(0) == 0);
  CHECK(std::chrono::steady_clock::now() - t0 < 10s);
  // No nats-server child of it is left.
  auto r = run_command({"pgrep", "-P", std::to_string(pid)});
  CHECK(r.output.empty());
}

TEST_CASE("dns:// cluster peers are expanded into routes and the cluster replicates",
          "[replication]") {
  TestCluster c(ClusterOptions{.nodes = 2, .dns_peers = true});
  start_and_wait(c);
  INFO(c.all_logs());
  c.exec(0, "INSERT INTO Books (id, title, author) VALUES (1, 'Routed by name', 'x')");
  REQUIRE(wait_until([&] { return c.query_int(1, "SELECT count(*) FROM Books") == 1; }, 20s));
  CHECK_THAT(c.log(0), Catch::Contains("routes [nats://127.0.0.1:"));
}

TEST_CASE("a node whose stream consumer is lost receives again within seconds", "[replication]") {
  // nats-server 2.9 places each node's ephemeral consumer on a random server of the stream; when
  // that server stops, the consumer is gone and delivers nothing. Deleting the consumers plays
  // that loss without depending on where they were placed.
  TestCluster c(ClusterOptions{.nodes = 2});
  start_and_wait(c);
  INFO(c.all_logs());
  c.exec(0, "INSERT INTO Books (title, author) VALUES ('before', 'x')");
  REQUIRE(c.wait_converged());
  REQUIRE(delete_all_consumers(nats_url_of(c, 0), "harmonylite-changes-1", 2) == 2);

  // Writes right away: the stream holds more than node 2 has seen.
  const auto written = std::chrono::steady_clock::now();
  c.exec(0, "INSERT INTO Books (title, author) VALUES ('after the loss', 'x')");
  REQUIRE(wait_until(
      [&] {
        return c.query_int(1, "SELECT count(*) FROM Books WHERE title='after the loss'") == 1;
      },
      30s));
  const auto took = std::chrono::steady_clock::now() - written;
  INFO("visible on node 2 after "
       << std::chrono::duration_cast<std::chrono::milliseconds>(took).count() << " ms");
  CHECK(took < 6s);

  // Idle: the consumers are lost while nothing is written; the next write arrives promptly.
  REQUIRE(delete_all_consumers(nats_url_of(c, 0), "harmonylite-changes-1", 2) == 2);
  std::this_thread::sleep_for(5s);
  const auto idle_write = std::chrono::steady_clock::now();
  c.exec(0, "INSERT INTO Books (title, author) VALUES ('after an idle loss', 'x')");
  REQUIRE(wait_until(
      [&] {
        return c.query_int(1, "SELECT count(*) FROM Books WHERE title='after an idle loss'") == 1;
      },
      30s));
  const auto idle_took = std::chrono::steady_clock::now() - idle_write;
  INFO("visible on node 2 after "
       << std::chrono::duration_cast<std::chrono::milliseconds>(idle_took).count() << " ms");
  CHECK(idle_took < 2s);
}
