// host:port parsing and formatting (replicator/common/address.cpp), the one parser behind the
// config keys, the flags, the route URLs and the embedded server's URLs.
#include <catch2/catch.hpp>

#include "replicator/common/address.hpp"

using namespace harmony;

TEST_CASE("address: host:port, [v6]:port and :port parse to a bare host and a port", "[address]") {
  CHECK(parse_host_port("127.0.0.1:4222") == HostPort{"127.0.0.1", 4222});
  CHECK(parse_host_port("example.org:0") == HostPort{"example.org", 0});
  CHECK(parse_host_port(":8090") == HostPort{"", 8090});
  CHECK(parse_host_port("[::1]:4222") == HostPort{"::1", 4222});
  CHECK(parse_host_port("[fe80::1%lo]:65535") == HostPort{"fe80::1%lo", 65535});
  CHECK(parse_host_port("[::]:-1", true) == HostPort{"::", -1});
  CHECK(parse_host_port(":-1", true) == HostPort{"", -1});
}

TEST_CASE("address: malformed host:port is refused", "[address]") {
  for (const char* bad : {"localhost", "host:", "host:abc", "host:65536", "host:123456", "host:-1",
                          "::1:4222", "[::1]", "[]:4222", "[::1:4222", "a b:1", "a/b:1", "x]:1"}) {
    INFO(bad);
    CHECK_FALSE(parse_host_port(bad));
  }
  CHECK_FALSE(parse_host_port("host:-2", true));
}

TEST_CASE("address: URLs give their host:port, path and query ignored", "[address]") {
  CHECK(parse_url_address("nats://127.0.0.1:4222") == HostPort{"127.0.0.1", 4222});
  CHECK(parse_url_address("nats://[::1]:6222/") == HostPort{"::1", 6222});
  CHECK(parse_url_address("dns://peers.local:4221/?min=2") == HostPort{"peers.local", 4221});
  CHECK(parse_url_address("localhost:4221") == HostPort{"localhost", 4221});
  CHECK_FALSE(parse_url_address("dns://noport/"));
}

TEST_CASE("address: formatting re-adds brackets around IPv6 hosts only", "[address]") {
  CHECK(format_host_port({"127.0.0.1", 4222}) == "127.0.0.1:4222");
  CHECK(format_host_port({"::1", 4222}) == "[::1]:4222");
  CHECK(format_url("nats", {"::1", 4222}) == "nats://[::1]:4222");
  CHECK(format_url("nats", {"localhost", 1}) == "nats://localhost:1");
  // Round trip of what the config accepts.
  for (const char* text : {"[::1]:4222", "10.0.0.1:1", "[2001:db8::7]:6222"}) {
    INFO(text);
    CHECK(format_host_port(*parse_host_port(text)) == text);
  }
}
