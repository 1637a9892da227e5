// Issue 14 item 8: __harmony_dead_letters is bounded. Anyone who can publish into a change stream
// can make every replicator store what it cannot decode; without a bound a flood of garbage
// grows every node's database without limit. A real node with a small [dead_letters] bound is
// flooded with undecodable messages from a plain NATS client: the table must stay within the
// configured rows and bytes, the oldest rows must be the ones pruned, and health and metrics
// must show the pruned count.
#include <nats/nats.h>

#include <catch2/catch.hpp>

#include <memory>
#include <random>
#include <string>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "replicator/wire/wire.hpp"
#include "tests/support/cluster.hpp"
#include "tests/support/http.hpp"
#include "tests/support/raw_nats.hpp"

using namespace harmony;
using namespace harmony::test;

namespace {

constexpr const char* kSubject = "harmonylite-change-log-1";
constexpr const char* kStream = "harmonylite-changes-1";

// The flood: more messages than the bound allows, each a 2 KiB body of random bytes (not a
// frame of any codec), so every one is dead-lettered with its payload.
constexpr int kFlood = 120;
constexpr size_t kGarbageBytes = 2048;
constexpr int64_t kMaxRows = 40;
// Less than kMaxRows of these rows (~2.1 KiB each): the byte bound is the one that bites first.
constexpr int64_t kMaxBytes = 48 * 1024;

// Publishes one-part messages from a made-up origin, as any program that can publish into the
// stream could.
struct RawPublisher : RawNatsClient {
  using RawNatsClient::RawNatsClient;
  uint64_t publish(const std::string& payload, uint64_t batch) {
    const auto ack = RawNatsClient::publish(
        kSubject, payload,
        {{kHeaderOrigin, "424242"}, {kHeaderBatch, std::to_string(batch)}, {kHeaderPart, "1/1"}});
    REQUIRE(ack.seq > 0);
    return ack.seq;
  }
};

// The bytes a dead-letter row accounts for (shared/dead_letters.hpp says the same).
constexpr const char* kRowBytesSql =
    "coalesce(length(payload),0) + length(reason) + coalesce(length(stream),0) + "
    "coalesce(length(table_name),0)";

// The value of the one sample of metric `name` in a Prometheus text body ("" when absent).
std::string sample(const std::string& body, const std::string& name) {
  for (size_t at = body.find(name + "{"); at != std::string::npos;
       at = body.find(name + "{", at + 1)) {
    if (at > 0 && body[at - 1] != '\n') continue;
    const size_t end = body.find('\n', at);
    const std::string line = body.substr(at, end - at);
    return line.substr(line.rfind(' ') + 1);
  }
  return "";
}

}  // namespace

TEST_CASE("dead letters: a flood of undecodable messages stays within max_rows and max_bytes",
          "[security][dead_letters]") {
  ClusterOptions o;
  o.nodes = 1;
  TestCluster c(o);
  const int metrics_port = free_port();
  c.set_node_sections(
      0, fmt::format("[snapshot]\nenabled = false\n[prometheus]\nenable = true\n"
                     "bind = \"127.0.0.1:{}\"\n[dead_letters]\nmax_rows = {}\nmax_bytes = {}\n",
                     metrics_port, kMaxRows, kMaxBytes));
  c.start(0);
  INFO(c.all_logs());
  REQUIRE(c.wait_ready(0));

  RawPublisher pub(
      c.query_text(0, "SELECT value FROM __harmony_meta WHERE key='runtime_nats_url'"));
  std::mt19937_64 rng(14);
  uint64_t last = 0;
  for (int i = 0; i < kFlood; ++i) {
    std::string garbage(kGarbageBytes, '\0');
    // 0xff first: no codec byte, so the frame is refused before anything is decoded.
    for (auto& ch : garbage) ch = static_cast<char>(rng() | 0x80);
    last = pub.publish(garbage, static_cast<uint64_t>(i) + 1);
  }
  // The node has read the whole flood (every message dead-lettered, the position past it).
  REQUIRE(wait_until(
      [&] {
        return c.query_int(0, fmt::format("SELECT coalesce(max(seq),0) FROM __harmony_positions "
                                          "WHERE stream='{}'",
                                          kStream)) >= static_cast<int64_t>(last);
      },
      30s));
  // Pruning follows the apply transactions that added dead letters (the node's next tick).
  const auto rows = [&] { return c.query_int(0, "SELECT count(*) FROM __harmony_dead_letters"); };
  const auto bytes = [&] {
    return c.query_int(
        0, fmt::format("SELECT coalesce(sum({}),0) FROM __harmony_dead_letters", kRowBytesSql));
  };
  const bool bounded = wait_until([&] { return rows() <= kMaxRows && bytes() <= kMaxBytes; }, 5s);
  INFO("dead letters stored: " << rows() << " rows, " << bytes() << " bytes (bound " << kMaxRows
                               << " rows, " << kMaxBytes << " bytes) after " << kFlood
                               << " undecodable messages");
  CHECK(bounded);
  CHECK(rows() > 0);  // pruned to the bound, not emptied
  // The oldest went first: what is left is the end of the flood.
  CHECK(c.query_int(0, "SELECT max(seq) FROM __harmony_dead_letters") ==
        static_cast<int64_t>(last));
  CHECK(c.query_int(0, "SELECT min(seq) FROM __harmony_dead_letters") >
        static_cast<int64_t>(last) - kFlood);

  // Counted: every pruned row in health and metrics; stored rows and bytes as gauges.
  const int64_t pruned = kFlood - rows();
  REQUIRE(wait_until(
      [&] {
        const auto h = http_get(c.health_port(0), "/health");
        if (h.status == 0) return false;
        const auto j = nlohmann::json::parse(h.body, nullptr, false);
        return j.is_object() && j.value("dead_letters_pruned", int64_t{-1}) == pruned &&
               j.value("dead_letters", int64_t{-1}) == rows() &&
               j.value("dead_letters_bytes", int64_t{-1}) == bytes();
      },
      5s));
  const auto metrics = http_get(metrics_port, "/metrics");
  REQUIRE(metrics.status == 200);
  INFO(metrics.body);
  CHECK(sample(metrics.body, "harmonylite_dead_letters_pruned_total") == std::to_string(pruned));
  CHECK(sample(metrics.body, "harmonylite_dead_letters_bytes") == std::to_string(bytes()));
  CHECK(sample(metrics.body, "harmonylite_dead_letters") == std::to_string(rows()));
  // One log line per prune round, not one per row.
  CHECK(c.log(0).find("dead letters pruned") != std::string::npos);
  CHECK(c.stop(0) == 0);
}
