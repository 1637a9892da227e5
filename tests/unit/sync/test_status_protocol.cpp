// The cluster status message (replicator/sync/status_protocol.hpp): built from counters, round
// trip through CBOR and a sync reply, and untrusted bytes refused with a reason - never a crash,
// never an allocation sized by what the message claims.
#include <catch2/catch.hpp>

#include <nlohmann/json.hpp>

#include "cbor_messages.hpp"
#include "replicator/sync/status_protocol.hpp"
#include "replicator/sync/sync_protocol.hpp"

using namespace harmony;
using json = nlohmann::json;

namespace {

std::string refusal(const std::string& bytes) {
  return refusal_of([&] { decode_status(bytes); });
}

}  // namespace

TEST_CASE("a node's status comes from its counters and round-trips", "[status]") {
  ReplicatorStats stats;
  stats.db_ok = true;
  stats.nats_connected = true;
  stats.capture_installed = true;
  stats.pending_rows = 3;
  stats.conflicts = 2;
  stats.update_stream("harmonylite-changes-1", [](StreamProgress& p) {
    p.position = 5;
    p.last_seq = 9;
    p.held_rows = 4;
  });
  stats.observe_clock_skew(7, 1500, 1000);
  NodeStatus s = node_status(stats, 1, "nats://127.0.0.1:4222", 1'000'000);
  CHECK(s.healthy);
  CHECK(s.held_rows == 4);
  NodeStatus back = decode_status(encode_status(s));
  CHECK(back.node == 1);
  CHECK(back.address == "nats://127.0.0.1:4222");
  CHECK(back.pending_rows == 3);
  CHECK(back.conflicts == 2);
  REQUIRE(back.streams.size() == 1);
  CHECK(back.streams[0].position == 5);
  CHECK(back.streams[0].last_seq == 9);
  REQUIRE(back.skews.size() == 1);
  CHECK(back.skews[0].node == 7);

  // Inside a sync reply: a Status request names no table, the reply carries the bytes.
  SyncRequest rq{SyncKind::Status, 1};
  CHECK(decode_request(encode_request(rq)).kind == SyncKind::Status);
  SyncReply r;
  r.node = 1;
  r.status = encode_status(s);
  CHECK(decode_status(decode_reply(SyncKind::Status, encode_reply(SyncKind::Status, r)).status)
            .pending_rows == 3);

  stats.update_stream("harmonylite-changes-1", [](StreamProgress& p) {
    p.paused = true;
    p.pause_reason = "missing sequences";
  });
  stats.nats_connected = false;
  s = node_status(stats, 1, "", 0);
  CHECK_FALSE(s.healthy);
  CHECK(s.problem == "NATS not connected; harmonylite-changes-1 paused: missing sequences");
}

TEST_CASE("status bytes from the wire are bounded and checked", "[status]") {
  CHECK(refusal(std::string(kMaxStatusBytes + 1, 'x')).find("exceeds") != std::string::npos);
  // The bounded CBOR parser refuses anything but a map at the top.
  CHECK(refusal(cbor(json::array())).find("not a CBOR map") != std::string::npos);
  ReplicatorStats stats;
  json good = json::from_cbor(encode_status(node_status(stats, 1, "a", 0)));
  json j = good;
  j.erase("pending");
  CHECK(refusal(cbor(j)) == "status: missing field \"pending\"");
  j = good;
  j["node"] = -1;
  CHECK(refusal(cbor(j)) == "status: node is not a non-negative integer");
  j = good;
  j["streams"] = json::array();
  for (size_t i = 0; i <= kMaxStatusStreams; ++i) j["streams"].push_back(json::object());
  CHECK(refusal(cbor(j)).find("more than 256") != std::string::npos);
  j = good;
  j["addr"] = std::string(10'000, 'a');
  CHECK(decode_status(cbor(j)).address.size() == kMaxStatusText);
}
