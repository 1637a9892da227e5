// dns:// route expansion for -cluster-peers / -leaf-servers.
#include <catch2/catch.hpp>

#include "replicator/nats/routes.hpp"

using namespace harmony;

TEST_CASE("dns:// routes expand to one nats:// URL per address", "[routes]") {
  std::vector<std::string> problems;
  auto out = expand_routes({"nats://10.0.0.1:4221/", "dns://localhost:4222/?min=2&interval_ms=500"},
                           problems);
  CHECK(problems.empty());
  REQUIRE(out.size() >= 2);
  CHECK(out[0] == "nats://10.0.0.1:4221/");
  bool loopback = false;
  for (const auto& u : out)
    loopback = loopback || u == "nats://127.0.0.1:4222/" || u == "nats://[::1]:4222/";
  CHECK(loopback);
}

TEST_CASE("unresolvable or malformed dns:// routes are reported, not passed on", "[routes]") {
  std::vector<std::string> problems;
  auto out = expand_routes({"dns://no-such-host.invalid:4222/", "dns://noport/"}, problems);
  CHECK(out.empty());
  CHECK(problems.size() == 2);
}
