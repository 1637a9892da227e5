// [replication_log] stream_audit and [anti_entropy] scrub_rows (replicator/config/config.cpp):
// defaults, each key mapped, bad values refused naming the key and the file (issue 16).
#include <catch2/catch.hpp>

#include <string>
#include <vector>

#include "replicator/config/config.hpp"

using namespace harmony;

TEST_CASE("config stream_audit: default on, false turns it off", "[config][audit]") {
  std::vector<std::string> warnings;
  CHECK(
      parse_config_text("db_path = \"/x.db\"\n", "a.toml", warnings).replication_log.stream_audit);
  const Config off = parse_config_text(
      "db_path = \"/x.db\"\n[replication_log]\nstream_audit = false\n", "a.toml", warnings);
  CHECK_FALSE(off.replication_log.stream_audit);
  CHECK(warnings.empty());
  CHECK_THROWS_WITH(parse_config_text("db_path = \"/x.db\"\n[replication_log]\nstream_audit = 0\n",
                                      "a.toml", warnings),
                    Catch::Contains("replication_log.stream_audit") && Catch::Contains("a.toml"));
}

TEST_CASE("config scrub_rows: default, value, 0 and bounds", "[config][anti-entropy]") {
  std::vector<std::string> warnings;
  CHECK(parse_config_text("db_path = \"/x.db\"\n", "a.toml", warnings).anti_entropy.scrub_rows ==
        2'000);
  for (int64_t rows : {int64_t{0}, int64_t{1}, int64_t{500}, kMaxScrubRows}) {
    INFO(rows);
    const Config c = parse_config_text(
        "db_path = \"/x.db\"\n[anti_entropy]\nscrub_rows = " + std::to_string(rows) + "\n",
        "a.toml", warnings);
    CHECK(c.anti_entropy.scrub_rows == rows);
  }
  CHECK(warnings.empty());
  for (const std::string bad : {"-1", "1000001", "\"all\"", "2.5"}) {
    INFO(bad);
    CHECK_THROWS_WITH(
        parse_config_text("db_path = \"/x.db\"\n[anti_entropy]\nscrub_rows = " + bad + "\n",
                          "a.toml", warnings),
        Catch::Contains("anti_entropy.scrub_rows") && Catch::Contains("a.toml"));
  }
}
