// Cluster-key tags (replicator/wire/message_auth.cpp): a tag verifies only for the same key and
// the same origin, batch, part and payload; key files that others can read, that are too short
// or not hex are refused with an error naming the file and the problem.
#include <sys/stat.h>

#include <catch2/catch.hpp>

#include <stdexcept>
#include <string>

#include "replicator/wire/message_auth.hpp"
#include "tests/support/support.hpp"

using namespace harmony;
using namespace harmony::test;

namespace {

const std::string kHexKey = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";

std::string key_file(const TempDir& dir, const std::string& content, mode_t mode) {
  const std::string path = dir.file("key");
  write_file(path, content);
  REQUIRE(chmod(path.c_str(), mode) == 0);
  return path;
}

std::string load_error(const std::string& path) {
  try {
    load_cluster_key(path);
  } catch (const std::runtime_error& e) {
    return e.what();
  }
  return "loaded";
}

}  // namespace

TEST_CASE("a part's tag verifies only for its key, origin, batch, part and payload", "[auth]") {
  TempDir dir("auth");
  const ClusterKey key = load_cluster_key(key_file(dir, kHexKey + "\n", 0600));
  REQUIRE(key.secret.size() == 32);
  CHECK(key.verify);
  ClusterKey other = key;
  other.secret[0] = 'x';

  const std::string tag = part_auth_tag(key, 1, 2, 1, 3, "payload");
  CHECK(tag.rfind("hmac-sha256-v1:", 0) == 0);
  CHECK(tag.size() == 15 + 64);
  CHECK_FALSE(check_part_auth(key, tag, 1, 2, 1, 3, "payload"));
  for (auto err : {check_part_auth(other, tag, 1, 2, 1, 3, "payload"),
                   check_part_auth(key, tag, 9, 2, 1, 3, "payload"),
                   check_part_auth(key, tag, 1, 9, 1, 3, "payload"),
                   check_part_auth(key, tag, 1, 2, 2, 3, "payload"),
                   check_part_auth(key, tag, 1, 2, 1, 4, "payload"),
                   check_part_auth(key, tag, 1, 2, 1, 3, "payloaD")}) {
    REQUIRE(err);
    CHECK(*err ==
          "cannot be authenticated: the tag does not match (not published with this "
          "cluster's key, or altered)");
  }
  CHECK_THAT(*check_part_auth(key, std::nullopt, 1, 2, 1, 3, "payload"),
             Catch::Contains("no Harmony-Auth header"));
  CHECK_THAT(*check_part_auth(key, "hmac-sha256-v2:" + tag.substr(15), 1, 2, 1, 3, "payload"),
             Catch::Contains("is not \"hmac-sha256-v1:<64 hex digits>\""));
  CHECK_THAT(*check_part_auth(key, tag.substr(0, tag.size() - 1) + "g", 1, 2, 1, 3, "payload"),
             Catch::Contains("is not \"hmac-sha256-v1:<64 hex digits>\""));
  // Fixed-width fields: moving bytes between fields changes the canonical input.
  CHECK(part_auth_input(1, 23, 1, 1, "") != part_auth_input(12, 3, 1, 1, ""));
  CHECK(part_auth_input(1, 2, 1, 1, "") != part_auth_input(1, 2, 1, 1, std::string(1, '\0')));
}

TEST_CASE("unsafe or malformed cluster key files are refused with a clear error", "[auth]") {
  TempDir dir("auth");
  CHECK_THAT(load_error(key_file(dir, kHexKey, 0644)),
             Catch::Contains("is accessible by group or others (mode 0644); chmod 600 it"));
  CHECK_THAT(load_error(key_file(dir, kHexKey, 0640)), Catch::Contains("mode 0640"));
  CHECK_THAT(load_error(key_file(dir, kHexKey.substr(0, 62), 0600)),
             Catch::Contains("holds 31 key bytes, at least 32 are needed"));
  CHECK_THAT(load_error(key_file(dir, "", 0600)), Catch::Contains("holds 0 key bytes"));
  CHECK_THAT(load_error(key_file(dir, kHexKey.substr(0, 63), 0600)),
             Catch::Contains("odd number of digits"));
  CHECK_THAT(load_error(key_file(dir, "zz" + kHexKey, 0600)),
             Catch::Contains("non-hex character at offset 0"));
  CHECK_THAT(load_error(key_file(dir, std::string(5000, 'a'), 0600)),
             Catch::Contains("larger than a key file can be"));
  CHECK_THAT(load_error(dir.file("missing")), Catch::Contains("cannot open"));
  CHECK_THAT(load_error(dir.file("missing")),
             Catch::StartsWith("[nats] cluster_key_file \"" + dir.file("missing") + "\""));
  CHECK(load_cluster_key(key_file(dir, "  " + kHexKey + kHexKey + "\r\n", 0400)).secret.size() ==
        64);
}
