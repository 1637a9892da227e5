// Start-up of the replicator: the embedded server on an IPv6 bind address, a step that fails
// while worker threads already run, and the runtime pid that -cleanup and -save-snapshot read.

#include <catch2/catch.hpp>
#include <chrono>

#include <fmt/format.h>

#include "tests/support/cluster.hpp"
#include "tests/support/support.hpp"

using namespace harmony;
using namespace harmony::test;

namespace {

constexpr const char* kNoSnapshots = "[snapshot]\nenabled = false\n";

bool loopback_has_ipv6() {
  return run_command({"ip", "-6", "addr", "show", "lo"}).output.find("::1") != std::string::npos;
}

}  // namespace

TEST_CASE("start-up: bind_address [::1] starts the embedded server on IPv6 loopback",
          "[startup][nats]") {
  if (!loopback_has_ipv6()) {
    WARN("lo has no ::1 (ip -6 addr show lo): IPv6 bind case not run");
    return;
  }
  ClusterOptions o;
  o.nodes = 1;
  o.nats_extra = "bind_address = \"[::1]:-1\"\n";
  TestCluster c(o);
  c.set_node_sections(0, kNoSnapshots);
  c.start(0);
  INFO(c.all_logs());
  REQUIRE(c.wait_ready(0, 30s));
  const std::string url =
      c.query_text(0, "SELECT value FROM __harmony_meta WHERE key='runtime_nats_url'");
  CHECK(url.rfind("nats://[::1]:", 0) == 0);
  CHECK(url.find("[[") == std::string::npos);
  CHECK(c.stop(0) == 0);
}
