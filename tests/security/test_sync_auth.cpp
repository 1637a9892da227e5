// Anti-entropy and -status requests from outsiders (issue 14 item 5, issue 19): with a cluster
// key ([nats] cluster_key_file) a node answers only requests tagged with the key. A raw NATS
// client, as any program allowed to publish on the sync subjects could be, asks a keyed cluster
// for a node's status, its table digests and the content of a row - untagged and with a tag made
// without the key - and must get no answer at all; the same request tagged with the key is
// answered, which shows the forged ones were well formed and refused for their tag alone.
#include <catch2/catch.hpp>

#include <fmt/format.h>

#include "replicator/sync/sync_protocol.hpp"
#include "replicator/wire/message_auth.hpp"
#include "replicator/wire/wire.hpp"
#include "tests/support/cluster.hpp"
#include "tests/support/raw_nats.hpp"
#include "tests/support/support.hpp"

using namespace harmony;
using namespace harmony::test;

namespace {

// The sync subject of the default [nats] subject_prefix: every node answers on it.
constexpr const char* kSyncAll = "harmonylite-change-log-sync.all";
// A node id no member has: the outsider's claim.
constexpr uint64_t kOutsider = 4242;
// Long enough for a loaded machine to answer a request it accepts (an answer takes ms).
constexpr int64_t kAnswerWaitMs = 1500;

SyncRequest request_of(SyncKind kind) {
  SyncRequest r{kind, kOutsider};
  if (kind == SyncKind::Rows) {
    r.table = "Books";
    r.keys = {{Value{int64_t{1}}}};
  }
  return r;
}

}  // namespace

TEST_CASE("with a cluster key, status, digest and row requests without a valid tag get no answer",
          "[security][sync]") {
  TempDir keys("sync-key");
  const std::string key_file = write_cluster_key_file(keys.file("cluster.key"));
  TestCluster c(ClusterOptions{.nodes = 2,
                               .nats_extra = fmt::format("cluster_key_file = \"{}\"\n", key_file)});
  c.start_all();
  REQUIRE(c.wait_ready(0));
  REQUIRE(c.wait_ready(1));
  INFO(c.all_logs());
  c.exec(0, "INSERT INTO Books (id, title, author) VALUES (1, 'Dune', 'Frank Herbert')");
  REQUIRE(c.wait_converged());

  RawNatsClient raw(
      c.query_text(1, "SELECT value FROM __harmony_meta WHERE key='runtime_nats_url'"));
  const ClusterKey key = load_cluster_key(key_file);
  const NatsHeaders untagged = {{kHeaderOrigin, std::to_string(kOutsider)}};
  NatsHeaders wrong_tag = untagged;
  wrong_tag.push_back({kHeaderAuth, "hmac-sha256-v1:" + std::string(64, '0')});

  for (const SyncKind kind : {SyncKind::Status, SyncKind::Roots, SyncKind::Rows}) {
    const std::string body = encode_request(request_of(kind));
    {
      INFO("sync kind " << static_cast<int>(kind));
      CHECK_FALSE(raw.request(kSyncAll, body, untagged, kAnswerWaitMs));
      CHECK_FALSE(raw.request(kSyncAll, body, wrong_tag, kAnswerWaitMs));

      NatsHeaders tagged = untagged;
      tagged.push_back({kHeaderAuth, sync_auth_tag(key, kOutsider, kind, false, body)});
      const auto answer = raw.request(kSyncAll, body, tagged, kAnswerWaitMs);
      REQUIRE(answer);
      const SyncReply reply = decode_reply(kind, *answer);
      CHECK(reply.error.empty());
      if (kind == SyncKind::Status) CHECK_FALSE(reply.status.empty());
      if (kind == SyncKind::Roots) CHECK_FALSE(reply.tables.empty());
      if (kind == SyncKind::Rows) CHECK(reply.frames.size() == 1);
    }
  }
  // Refusals are logged, and the nodes carry on.
  CHECK_THAT(c.all_logs(), Catch::Contains(fmt::format("request from node {} refused", kOutsider)));
  CHECK(c.running(0));
  CHECK(c.running(1));
}
