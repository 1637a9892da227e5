// Secrets stay in the config: a route password (-cluster-peers nats://user:password@host:port)
// and the [nats] user password must not show in the replicator's log, in the embedded
// nats-server's command line (readable by every local user through ps or /proc), in the health
// body or in the metrics. The generated nats-server config, mode 0600, is the one place that
// may hold them. A real harmonylite process with its embedded nats-server.
#include <sys/stat.h>

#include <catch2/catch.hpp>

#include <fmt/format.h>

#include <string>
#include <vector>

#include "replicator/nats/nats_client.hpp"
#include "tests/support/cluster.hpp"
#include "tests/support/http.hpp"
#include "tests/support/support.hpp"

using namespace harmony;
using namespace harmony::test;

namespace {

constexpr const char* kRoutePassword = "R0ute-Pa55word-q7";
constexpr const char* kNatsPassword = "N4ts-Pa55word-k2";

// The command line of process `pid`, one argument per element.
std::vector<std::string> cmdline_of(int pid) {
  const std::string s = read_file("/proc/" + std::to_string(pid) + "/cmdline");
  std::vector<std::string> args;
  for (size_t start = 0; start < s.size();) {
    size_t end = s.find('\0', start);
    if (end == std::string::npos) end = s.size();
    args.push_back(s.substr(start, end - start));
    start = end + 1;
  }
  return args;
}

// The direct children of `pid` (the embedded nats-server).
std::vector<int> children_of(int pid) {
  std::vector<int> out;
  const auto r = run_command({"pgrep", "-P", std::to_string(pid)});
  size_t start = 0;
  while (start < r.output.size()) {
    size_t end = r.output.find('\n', start);
    if (end == std::string::npos) end = r.output.size();
    if (end > start) out.push_back(std::stoi(r.output.substr(start, end - start)));
    start = end + 1;
  }
  return out;
}

bool contains(const std::string& text, const std::string& what) {
  return text.find(what) != std::string::npos;
}

}  // namespace

TEST_CASE("secrets: route and NATS passwords stay out of logs, argv, health and metrics",
          "[security][secrets]") {
  ClusterOptions o;
  o.nodes = 1;
  o.nats_extra = fmt::format("user_name = \"hl\"\nuser_password = \"{}\"\n", kNatsPassword);
  TestCluster c(o);
  const int metrics_port = free_port(), cluster_port = free_port();
  c.set_node_sections(0, fmt::format("[snapshot]\nenabled = false\n[prometheus]\nenable = true\n"
                                     "bind = \"127.0.0.1:{}\"\n",
                                     metrics_port));
  // A route to this node itself (detected by nats-server as a self-connection) that carries
  // credentials, as a route to a password-protected peer does.
  const std::string route =
      fmt::format("nats://route-user:{}@127.0.0.1:{}/", kRoutePassword, cluster_port);
  c.start(0, {"-cluster-addr", fmt::format("127.0.0.1:{}", cluster_port), "-cluster-peers", route});
  INFO(c.all_logs());
  REQUIRE(wait_until([&] { return contains(c.log(0), "embedded nats-server running"); }, 30s));
  REQUIRE(wait_until([&] { return http_get(c.health_port(0), "/health").status != 0; }, 30s));

  const auto servers = children_of(c.process(0)->pid());
  REQUIRE(servers.size() == 1);
  const auto args = cmdline_of(servers[0]);
  std::string argv, conf;  // the whole command line; the generated config file (after -c)
  for (size_t k = 0; k < args.size(); ++k) {
    argv += args[k] + " ";
    if (args[k] == "-c" && k + 1 < args.size()) conf = args[k + 1];
  }
  const std::string health = http_get(c.health_port(0), "/health").body;
  const auto metrics = http_get(metrics_port, "/metrics");
  REQUIRE(metrics.status == 200);
  const std::string log = c.log(0);

  INFO("nats-server argv: " << argv);
  for (const char* secret : {kRoutePassword, kNatsPassword}) {
    INFO("secret " << secret);
    CHECK_FALSE(contains(log, secret));
    CHECK_FALSE(contains(argv, secret));
    CHECK_FALSE(contains(health, secret));
    CHECK_FALSE(contains(metrics.body, secret));
  }
  // The routes are still given to the server (in its config), and the log names them redacted.
  CHECK(contains(log, "route-user:***@127.0.0.1"));

  // The generated config holds the route credentials and only its owner can read it.
  struct stat st {};
  REQUIRE(::stat(conf.c_str(), &st) == 0);
  CHECK((st.st_mode & 0777) == 0600);
  CHECK(contains(read_file(conf), kRoutePassword));
  CHECK(c.stop(0) == 0);
}

TEST_CASE("secrets: redact_url hides every kind of password", "[security][secrets]") {
  CHECK(redact_url("nats://u:pw@host:4222") == "nats://u:***@host:4222");
  // An '@' inside the password must not leave its tail visible.
  CHECK(redact_url("nats://u:p@ss@host:4222/") == "nats://u:***@host:4222/");
  CHECK(redact_url("nats://tok@en@host:4222") == "nats://***@host:4222");
  CHECK(redact_url("tls://u:pw@[::1]:4222") == "tls://u:***@[::1]:4222");
  CHECK(redact_url("nats://host:4222") == "nats://host:4222");
}
