// The health endpoint's answer (replicator/ops/health.cpp) without HTTP: 200 only when the node
// replicates, HarmonyLite's fields and ours.
#include <catch2/catch.hpp>

#include "replicator/ops/health.hpp"
#include "shared/clock.hpp"

using namespace harmony;

TEST_CASE("health answer: 200 only with database, NATS and capture, HarmonyLite's fields",
          "[metrics][health]") {
  ReplicatorStats stats;
  DbProbe probe{true, true, 2};
  stats.nats_connected = true;
  const int64_t now = wall_clock_ms();
  auto a = health_report(stats, probe, 3, true, now + 5000);
  CHECK(a.healthy);
  const auto& j = a.body;
  CHECK(j["status"] == "healthy");
  CHECK(j["node_id"] == 3);
  CHECK(j["uptime_seconds"].get<int64_t>() >= 4);
  CHECK(j["db_connected"] == true);
  CHECK(j["nats_connected"] == true);
  CHECK(j["cdc_installed"] == true);
  CHECK(j["tables_tracked"] == 2);
  CHECK(j["last_replicated_event_timestamp"].is_null());  // never: null, not year 1
  CHECK(j["last_published_event_timestamp"].is_null());
  CHECK(j["version"].is_string());
  for (const char* k : {"pending_changes", "dead_letters", "streams", "schema", "nats_server"})
    CHECK(j.contains(k));

  stats.last_published_ms = 1700000000123;
  StreamProgress p;
  p.position = 3;
  p.last_seq = 5;
  stats.set_stream("s-1", p);
  stats.set_schema({{"Books", {"aaa", {"bbb"}}}});
  stats.set_nats_server({true, 4242, 1, "nats://127.0.0.1:4222"});
  a = health_report(stats, probe, 3, true, now);
  CHECK(a.body["last_published_event_timestamp"] == "2023-11-14T22:13:20.123Z");
  CHECK(a.body["streams"]["s-1"]["lag_messages"] == 2);
  CHECK(a.body["schema"]["tables"]["Books"]["hash"] == "aaa");
  CHECK(a.body["schema"]["tables"]["Books"]["previous"] == "bbb");
  CHECK(a.body["schema"]["status"] == "ok");
  CHECK(a.body["nats_server"]["pid"] == 4242);
  CHECK(a.body["nats_server"]["restarts"] == 1);

  stats.nats_connected = false;
  a = health_report(stats, probe, 3, true, now);
  CHECK_FALSE(a.healthy);
  CHECK(a.body["status"] == "unhealthy");
  stats.nats_connected = true;
  CHECK_FALSE(health_report(stats, DbProbe{true, false, 0}, 3, true, now).healthy);
  CHECK_FALSE(health_report(stats, DbProbe{false, false, 0}, 3, true, now).healthy);
  // Not detailed: the status only.
  a = health_report(stats, probe, 3, false, now);
  CHECK(a.body.size() == 1);
  CHECK(a.body["status"] == "healthy");
}

TEST_CASE("health: a paused stream makes the node unhealthy and the answer says why",
          "[metrics][health]") {
  ReplicatorStats stats;
  stats.nats_connected = true;
  const DbProbe probe{true, true, 1};
  const int64_t now = wall_clock_ms();
  StreamProgress flowing;
  flowing.position = 7;
  flowing.last_seq = 7;
  stats.set_stream("s-1", flowing);
  REQUIRE(health_report(stats, probe, 1, true, now).healthy);

  // A stream that waits (schema mismatch or a hole) applies nothing: the node does not
  // replicate, whatever serves requests.
  StreamProgress held;
  held.position = 3;
  held.last_seq = 9;
  held.paused = true;
  held.paused_since_ms = now - 60'000;
  held.pause_reason = "schema mismatch: table Books has hash aaa here, the batch was made on bbb";
  stats.set_stream("s-2", held);
  auto a = health_report(stats, probe, 1, true, now);
  CHECK_FALSE(a.healthy);
  CHECK(a.body["status"] == "unhealthy");
  REQUIRE(a.body["problems"].is_array());
  REQUIRE(a.body["problems"].size() == 1);
  const std::string problem = a.body["problems"][0].get<std::string>();
  CHECK(problem.find("s-2") != std::string::npos);
  CHECK(problem.find("table Books") != std::string::npos);
  // Not detailed: the status alone, still unhealthy.
  a = health_report(stats, probe, 1, false, now);
  CHECK_FALSE(a.healthy);
  CHECK(a.body.size() == 1);

  // Every other reason is named too.
  stats.set_stream("s-2", flowing);
  stats.nats_connected = false;
  a = health_report(stats, DbProbe{true, false, 0}, 1, true, now);
  CHECK_FALSE(a.healthy);
  CHECK(a.body["problems"].size() == 2);
}

TEST_CASE("health: a gap left for anti-entropy makes the node degraded until it is filled",
          "[metrics][health][anti_entropy]") {
  ReplicatorStats stats;
  stats.nats_connected = true;
  const DbProbe probe{true, true, 1};
  const int64_t now = wall_clock_ms();
  stats.anti_entropy_gap = 2575;
  auto a = health_report(stats, probe, 1, true, now);
  CHECK(a.healthy);  // 200: its other rows are current
  CHECK(a.body["status"] == "degraded");
  REQUIRE(a.body["warnings"].size() == 1);
  CHECK(a.body["warnings"][0].get<std::string>().find(
            "repairing a gap of 2575 sequence(s) by anti-entropy") != std::string::npos);
  stats.anti_entropy_gap = 0;
  CHECK(health_report(stats, probe, 1, false, now).body["status"] == "healthy");
}
