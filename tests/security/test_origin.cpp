// Issue 14 item 5: who may speak for a node, and versions that cannot overflow. Against real
// 2-node clusters a raw NATS client (any program allowed to publish on the change subjects)
// publishes batches claiming another node's origin: with a cluster key ([nats]
// cluster_key_file) they must be dead-lettered as unauthenticated, not applied, while the
// nodes' own changes still replicate; an origin no node can have (0, above 2^63-1) is
// dead-lettered by the header check with or without a key. A database whose stored clock is
// INT64_MAX must not issue a version that wraps: folding and start-up refuse it with a clear
// message (the versions already stored could not be exceeded).
#include <nats/nats.h>

#include <catch2/catch.hpp>

#include <climits>
#include <memory>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "shared/capture.hpp"
#include "shared/capture_registry.hpp"
#include "shared/fold.hpp"
#include "shared/hlc.hpp"
#include "shared/meta_store.hpp"
#include "tests/support/cluster.hpp"
#include "tests/support/raw_nats.hpp"
#include "tests/support/replicate.hpp"
#include "tests/support/support.hpp"

using namespace harmony;
using namespace harmony::test;
using json = nlohmann::json;

namespace {

constexpr const char* kSubject = "harmonylite-change-log-1";
constexpr const char* kStream = "harmonylite-changes-1";

using Headers = NatsHeaders;

// Publishes into the change subject; the stream sequence the message got (0: refused).
struct RawClient : RawNatsClient {
  using RawNatsClient::RawNatsClient;
  uint64_t publish(const std::string& payload, const Headers& headers) {
    return RawNatsClient::publish(kSubject, payload, headers).seq;
  }
};

Headers part_headers(const std::string& origin, uint64_t batch) {
  return {{"Harmony-Origin", origin},
          {"Harmony-Batch", std::to_string(batch)},
          {"Harmony-Part", "1/1"}};
}

// A plain (uncompressed) frame of one Books row, in the codec's CBOR layout.
std::string books_frame(json origin, uint64_t batch, int64_t id, const std::string& title) {
  const int64_t hlc = hlc_from_ms(wall_clock_ms());
  json body = {{"v", 1},
               {"o", std::move(origin)},
               {"b", batch},
               {"t", json::array({{{"n", "Books"},
                                   {"h", ""},
                                   {"c", {"id", "title", "author", "publication_year"}},
                                   {"k", {"id"}}}})},
               {"r", json::array({json::array({0, hlc, 0, json::array({id}),
                                               json::array({id, title, "forger", nullptr})})})}};
  auto cbor = json::to_cbor(body);
  return std::string(1, '\0') + std::string(cbor.begin(), cbor.end());
}

std::string nats_url_of(TestCluster& c, int i) {
  return c.query_text(i, "SELECT value FROM __harmony_meta WHERE key='runtime_nats_url'");
}

std::string dead_letter_reason(TestCluster& c, int node, uint64_t seq) {
  return c.query_text(node, fmt::format("SELECT group_concat(reason, ' | ') FROM "
                                        "__harmony_dead_letters WHERE stream='{}' AND seq={}",
                                        kStream, seq));
}

int64_t books_with(TestCluster& c, int node, int64_t id) {
  return c.query_int(node, fmt::format("SELECT count(*) FROM Books WHERE id = {}", id));
}

}  // namespace

TEST_CASE("with a cluster key, a batch forged with node 1's origin is dead-lettered, not applied",
          "[security][origin]") {
  TempDir keys("origin-key");
  const std::string key = write_cluster_key_file(keys.file("cluster.key"));
  TestCluster c(
      ClusterOptions{.nodes = 2, .nats_extra = fmt::format("cluster_key_file = \"{}\"\n", key)});
  c.start_all();
  REQUIRE(c.wait_ready(0));
  REQUIRE(c.wait_ready(1));
  INFO(c.all_logs());

  // The nodes' own changes replicate with the key.
  c.exec(0, "INSERT INTO Books (id, title, author) VALUES (1, 'Dune', 'Frank Herbert')");
  c.exec(1, "INSERT INTO Authors (id, name) VALUES (1, 'Frank Herbert')");
  REQUIRE(c.wait_converged());
  REQUIRE(books_with(c, 1, 1) == 1);

  RawClient raw(nats_url_of(c, 1));
  const std::string node1 = std::to_string(c.node_id(0));
  // Claims node 1 with a batch id node 1 never issued: without a key node 2 applies it.
  const uint64_t untagged = raw.publish(books_frame(c.node_id(0), 1'000'000, 500, "forged"),
                                        part_headers(node1, 1'000'000));
  // A tag made without the key.
  Headers forged_tag = part_headers(node1, 1'000'001);
  forged_tag.push_back({"Harmony-Auth", "hmac-sha256-v1:" + std::string(64, '0')});
  const uint64_t bad_tag =
      raw.publish(books_frame(c.node_id(0), 1'000'001, 501, "forged tag"), forged_tag);
  REQUIRE(untagged > 0);
  REQUIRE(bad_tag > 0);

  // A real change from node 1 after them: once it arrived, the forged ones were read.
  c.exec(0, "INSERT INTO Books (id, title, author) VALUES (2, 'Emma', 'Jane Austen')");
  REQUIRE(c.wait_converged());
  REQUIRE(wait_until([&] { return books_with(c, 1, 2) == 1; }, 30s));

  CHECK(books_with(c, 1, 500) == 0);  // main: 1 - applied on node 2 as if node 1 wrote it
  CHECK(books_with(c, 1, 501) == 0);
  CHECK(books_with(c, 0, 500) == 0);
  for (int node = 0; node < 2; ++node) {
    CHECK_THAT(dead_letter_reason(c, node, untagged),
               Catch::Contains("cannot be authenticated: no Harmony-Auth header"));
    CHECK_THAT(dead_letter_reason(c, node, bad_tag),
               Catch::Contains("cannot be authenticated: the tag does not match"));
  }
  CHECK(c.running(0));
  CHECK(c.running(1));
}

TEST_CASE("an origin no node can have (0, above 2^63-1) is dead-lettered at the header check",
          "[security][origin]") {
  TestCluster c(ClusterOptions{.nodes = 2});
  c.start_all();
  REQUIRE(c.wait_ready(0));
  REQUIRE(c.wait_ready(1));
  INFO(c.all_logs());

  RawClient raw(nats_url_of(c, 1));
  const uint64_t zero = raw.publish(books_frame(0, 1, 600, "origin 0"), part_headers("0", 1));
  // 2^63: a uint64 the header parser took; SQLite would record it as node -9223372036854775808.
  const uint64_t two63 = uint64_t{1} << 63;
  const uint64_t big = raw.publish(books_frame(two63, 1, 601, "origin 2^63"),
                                   part_headers(std::to_string(two63), 1));
  const uint64_t max = raw.publish(books_frame(UINT64_MAX, 1, 602, "origin 2^64-1"),
                                   part_headers(std::to_string(UINT64_MAX), 1));
  REQUIRE(zero > 0);
  REQUIRE(big > 0);
  REQUIRE(max > 0);

  c.exec(0, "INSERT INTO Books (id, title, author) VALUES (3, 'Ulysses', 'James Joyce')");
  REQUIRE(c.wait_converged());
  REQUIRE(wait_until([&] { return books_with(c, 1, 3) == 1; }, 30s));

  for (int node = 0; node < 2; ++node) {
    CHECK(books_with(c, node, 600) == 0);
    CHECK(books_with(c, node, 601) == 0);  // main: applied, recorded under a negative node id
    CHECK(books_with(c, node, 602) == 0);  // main: applied, recorded as node -1
    CHECK_THAT(dead_letter_reason(c, node, zero), Catch::Contains("bad Harmony-Origin header"));
    CHECK_THAT(dead_letter_reason(c, node, big),
               Catch::Contains("bad Harmony-Origin header \"9223372036854775808\""));
    CHECK_THAT(dead_letter_reason(c, node, max),
               Catch::Contains("bad Harmony-Origin header \"18446744073709551615\""));
  }
}

TEST_CASE("a stored clock of INT64_MAX is refused, never wrapped: fold and start-up say so",
          "[security][origin][hlc]") {
  TestCluster c(ClusterOptions{.nodes = 1});
  {
    Db db = open_test_db(c.db(0));
    ensure_base_schema(db);
    enable_table(db, "Books");
    store_clock(db, INT64_MAX);
    db.exec("INSERT INTO Books (id, title, author) VALUES (1, 'Dune', 'Frank Herbert')");
    // Folding would issue the next version after the stored clock: main wrapped it to a
    // version below every stored one (last + 1 on INT64_MAX).
    std::string outcome;
    try {
      const auto tables = captured_tables(db);
      fold_all(db, tables, 1);
      auto v = db.query_value("SELECT max(version) FROM " + tables.at(0).rows);
      outcome = fmt::format("folded: clock now {}, row version {}", load_clock(db),
                            v && std::holds_alternative<int64_t>(*v) ? std::get<int64_t>(*v) : 0);
    } catch (const std::exception& e) {
      outcome = std::string("refused: ") + e.what();
    }
    INFO(outcome);
    CHECK_THAT(outcome, Catch::StartsWith("refused: the stored clock (__harmony_meta key 'hlc' = "
                                          "9223372036854775807) is outside the range"));
  }
  // The replicator refuses to start on it and says why (instead of issuing wrapped versions).
  c.start(0);
  const int rc = c.process(0)->wait(20s);
  INFO(c.log(0));
  CHECK(rc != INT_MIN);  // exited by itself
  CHECK(rc != 0);
  CHECK_THAT(c.log(0), Catch::Contains("the stored clock (__harmony_meta key 'hlc' = "
                                       "9223372036854775807) is outside the range"));
}
