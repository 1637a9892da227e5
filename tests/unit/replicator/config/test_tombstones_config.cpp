// The [tombstones] table of the config (replicator/config/config.cpp): defaults, each key mapped,
// bad values refused naming the key; and the two tombstone GC metrics
// (replicator/ops/metrics.cpp) following their counters.
#include <catch2/catch.hpp>

#include <string>
#include <vector>

#include "replicator/config/config.hpp"
#include "replicator/ops/metrics.hpp"

using namespace harmony;

TEST_CASE("[tombstones] defaults, keys and bad values", "[config][tombstone_gc]") {
  std::vector<std::string> warnings;
  const Config defaults = parse_config_text("db_path = \"/x.db\"\n", "a.toml", warnings);
  CHECK(defaults.tombstones.gc_interval_ms == 60'000);
  CHECK(defaults.tombstones.member_retention_ms == 24LL * 3600 * 1000);

  const Config set = parse_config_text(
      "db_path = \"/x.db\"\n[tombstones]\ngc_interval = 0\nmember_retention = 3000\n", "a.toml",
      warnings);
  CHECK(set.tombstones.gc_interval_ms == 0);
  CHECK(set.tombstones.member_retention_ms == 3000);
  CHECK(warnings.empty());

  for (const auto& [toml, key] : std::vector<std::pair<std::string, std::string>>{
           {"gc_interval = -1", "tombstones.gc_interval"},
           {"gc_interval = \"1m\"", "tombstones.gc_interval"},
           {"member_retention = 0", "tombstones.member_retention"}}) {
    INFO(toml);
    CHECK_THROWS_WITH(
        parse_config_text("db_path = \"/x.db\"\n[tombstones]\n" + toml + "\n", "a.toml", warnings),
        Catch::Contains(key) && Catch::Contains("a.toml"));
  }
  parse_config_text("db_path = \"/x.db\"\n[tombstones]\nhorizon = 5\n", "a.toml", warnings);
  REQUIRE(warnings.size() == 1);
  CHECK_THAT(warnings[0], Catch::Contains("tombstones.horizon"));
}

TEST_CASE("tombstone GC metrics follow their counters", "[metrics][tombstone_gc]") {
  ReplicatorStats stats;
  MetricsOptions o;
  o.node_id = 3;
  stats.tombstones = 1500;
  stats.tombstones_pruned += 1499;
  const std::string text = render_metrics(stats, o, wall_clock_ms());
  CHECK_THAT(text, Catch::Contains("# TYPE harmonylite_tombstones gauge"));
  CHECK_THAT(text, Catch::Contains("# TYPE harmonylite_tombstones_pruned_total counter"));
  CHECK_THAT(text, Catch::Contains("harmonylite_tombstones{node_id=\"3\"} 1500"));
  CHECK_THAT(text, Catch::Contains("harmonylite_tombstones_pruned_total{node_id=\"3\"} 1499"));
}
