// The [conflicts] table of the config (replicator/config/config.cpp) and max_held_bytes: defaults
// from shared/conflict_log.hpp and shared/held.hpp, each key mapped (and on into the consumer's
// options), bad values refused naming the key.
#include <catch2/catch.hpp>

#include <atomic>
#include <string>
#include <vector>

#include "replicator/config/config.hpp"
#include "replicator/node/node_options.hpp"

using namespace harmony;

TEST_CASE("[conflicts] defaults, keys and bad values", "[config][conflicts]") {
  std::vector<std::string> warnings;
  const Config defaults = parse_config_text("db_path = \"/x.db\"\n", "a.toml", warnings);
  CHECK(defaults.conflicts.max_rows == 10'000);
  CHECK(defaults.conflicts.max_age_ms == 30LL * 24 * 3600 * 1000);

  const Config set = parse_config_text(
      "db_path = \"/x.db\"\n[conflicts]\nmax_rows = 50\nmax_age = 3600000\n", "a.toml", warnings);
  CHECK(set.conflicts.max_rows == 50);
  CHECK(set.conflicts.max_age_ms == 3'600'000);
  CHECK(warnings.empty());
  std::atomic<uint64_t> generation{0};
  const ConsumerOptions co = consumer_options(set, 1, 7, generation);
  CHECK(co.conflict_limits.max_rows == 50);
  CHECK(co.conflict_limits.max_age_ms == 3'600'000);

  for (const auto& [toml, key] : std::vector<std::pair<std::string, std::string>>{
           {"max_rows = 0", "conflicts.max_rows"},
           {"max_rows = \"many\"", "conflicts.max_rows"},
           {"max_age = -1", "conflicts.max_age"}}) {
    INFO(toml);
    CHECK_THROWS_WITH(
        parse_config_text("db_path = \"/x.db\"\n[conflicts]\n" + toml + "\n", "a.toml", warnings),
        Catch::Contains(key) && Catch::Contains("a.toml"));
  }
  warnings.clear();
  parse_config_text("db_path = \"/x.db\"\n[conflicts]\nmax_bytes = 5\n", "a.toml", warnings);
  REQUIRE(warnings.size() == 1);
  CHECK(warnings[0].find("conflicts.max_bytes") != std::string::npos);
}

TEST_CASE("max_held_bytes: default, value and bad values", "[config][held]") {
  std::vector<std::string> warnings;
  const Config defaults = parse_config_text("db_path = \"/x.db\"\n", "a.toml", warnings);
  CHECK(defaults.max_held_bytes == 256LL * 1024 * 1024);
  const Config set =
      parse_config_text("db_path = \"/x.db\"\nmax_held_bytes = 4096\n", "a.toml", warnings);
  CHECK(set.max_held_bytes == 4096);
  CHECK(warnings.empty());
  std::atomic<uint64_t> generation{0};
  CHECK(consumer_options(set, 1, 7, generation).max_held_bytes == 4096);
  CHECK_THROWS_WITH(
      parse_config_text("db_path = \"/x.db\"\nmax_held_bytes = 0\n", "a.toml", warnings),
      Catch::Contains("max_held_bytes") && Catch::Contains("a.toml"));
}
