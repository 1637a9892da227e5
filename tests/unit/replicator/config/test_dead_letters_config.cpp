// The [dead_letters] table of the config (replicator/config/config.cpp): defaults from
// shared/dead_letters.hpp, each key mapped, bad values refused naming the key.
#include <catch2/catch.hpp>

#include <string>
#include <vector>

#include "replicator/config/config.hpp"

using namespace harmony;

TEST_CASE("[dead_letters] defaults, keys and bad values", "[config][dead_letters]") {
  std::vector<std::string> warnings;
  const Config defaults = parse_config_text("db_path = \"/x.db\"\n", "a.toml", warnings);
  CHECK(defaults.dead_letters.max_rows == 10000);
  CHECK(defaults.dead_letters.max_bytes == 64LL * 1024 * 1024);
  CHECK(defaults.dead_letters.max_age_ms == 7LL * 24 * 3600 * 1000);

  const Config set = parse_config_text(
      "db_path = \"/x.db\"\n[dead_letters]\nmax_rows = 5\nmax_bytes = 4096\nmax_age = 0\n",
      "a.toml", warnings);
  CHECK(set.dead_letters.max_rows == 5);
  CHECK(set.dead_letters.max_bytes == 4096);
  CHECK(set.dead_letters.max_age_ms == 0);
  CHECK(warnings.empty());

  for (const auto& [toml, key] : std::vector<std::pair<std::string, std::string>>{
           {"max_rows = 0", "dead_letters.max_rows"},
           {"max_bytes = -1", "dead_letters.max_bytes"},
           {"max_age = \"7d\"", "dead_letters.max_age"}}) {
    INFO(toml);
    CHECK_THROWS_WITH(parse_config_text("db_path = \"/x.db\"\n[dead_letters]\n" + toml + "\n",
                                        "a.toml", warnings),
                      Catch::Contains(key) && Catch::Contains("a.toml"));
  }
  warnings.clear();
  parse_config_text("db_path = \"/x.db\"\n[dead_letters]\nmax_row = 5\n", "a.toml", warnings);
  REQUIRE(warnings.size() == 1);
  CHECK(warnings[0].find("dead_letters.max_row") != std::string::npos);
}
