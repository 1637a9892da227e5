// parse_flags / usage_text: Go flag syntax variants, every flag, and UsageError messages.
#include <catch2/catch.hpp>

#include <string>
#include <vector>

#include "replicator/config/flags.hpp"

using namespace harmony;

namespace {

CliOptions parse(std::vector<std::string> args) {
  std::vector<const char*> argv = {"harmonylite"};
  for (const auto& a : args) argv.push_back(a.c_str());
  return parse_flags(static_cast<int>(argv.size()), argv.data());
}

// The UsageError message for `args`, or "" when they parse.
std::string error_for(std::vector<std::string> args) {
  try {
    parse(std::move(args));
  } catch (const UsageError& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST_CASE("no flags gives defaults", "[flags]") {
  CliOptions o = parse({});
  CHECK(o.config_path.empty());
  CHECK_FALSE(o.node_id.has_value());
  CHECK(o.cluster_addr.empty());
  CHECK(o.cluster_peers.empty());
  CHECK(o.leaf_servers.empty());
  CHECK_FALSE(o.cleanup);
  CHECK_FALSE(o.force);
  CHECK_FALSE(o.save_snapshot);
  CHECK_FALSE(o.schema_status);
  CHECK_FALSE(o.schema_status_cluster);
  CHECK_FALSE(o.version);
  CHECK_FALSE(o.help);
  CHECK(o.pprof.empty());
}

TEST_CASE("value flags accept every Go syntax", "[flags]") {
  for (auto args : std::vector<std::vector<std::string>>{{"-config", "a.toml"},
                                                         {"-config=a.toml"},
                                                         {"--config", "a.toml"},
                                                         {"--config=a.toml"}}) {
    INFO(args[0]);
    CHECK(parse(args).config_path == "a.toml");
  }
  // The value after '=' may itself contain '='; a separate value may start with '-'.
  CHECK(parse({"-config=x=y.toml"}).config_path == "x=y.toml");
  CHECK(parse({"-config", "-odd.toml"}).config_path == "-odd.toml");
  CHECK(parse({"-config="}).config_path.empty());
  // The last occurrence wins, as in Go.
  CHECK(parse({"-config", "a.toml", "-config", "b.toml"}).config_path == "b.toml");
}

TEST_CASE("the HarmonyLite demo command line parses", "[flags]") {
  CliOptions o =
      parse({"-config", "examples/node-1-config.toml", "-node-id", "1", "-cluster-addr",
             "localhost:4221", "-cluster-peers", "nats://localhost:4222/,nats://localhost:4223/"});
  CHECK(o.config_path == "examples/node-1-config.toml");
  REQUIRE(o.node_id.has_value());
  CHECK(*o.node_id == 1);
  CHECK(o.cluster_addr == "localhost:4221");
  CHECK(o.cluster_peers ==
        std::vector<std::string>{"nats://localhost:4222/", "nats://localhost:4223/"});
}

TEST_CASE("boolean flags: alone or with =true/=false", "[flags]") {
  CliOptions o = parse({"-cleanup", "--force", "-save-snapshot", "-schema-status",
                        "-schema-status-cluster", "-version"});
  CHECK(o.cleanup);
  CHECK(o.force);
  CHECK(o.save_snapshot);
  CHECK(o.schema_status);
  CHECK(o.schema_status_cluster);
  CHECK(o.version);

  CHECK(parse({"-cleanup=true"}).cleanup);
  CHECK_FALSE(parse({"-cleanup=false"}).cleanup);
  CHECK(parse({"--cleanup=1"}).cleanup);
  CHECK_FALSE(parse({"-cleanup", "-cleanup=F"}).cleanup);
  CHECK(parse({"-version=TRUE"}).version);

  std::string msg = error_for({"-cleanup=maybe"});
  CHECK(msg.find("\"maybe\"") != std::string::npos);
  CHECK(msg.find("-cleanup") != std::string::npos);
  // A boolean never takes the next argument as its value (Go stops there).
  msg = error_for({"-cleanup", "false"});
  CHECK(msg.find("unexpected argument \"false\"") != std::string::npos);
  CHECK(msg.find("-cleanup=false") != std::string::npos);
}

TEST_CASE("flags: -help and -h", "[flags]") {
  CHECK(parse({"-help"}).help);
  CHECK(parse({"-h"}).help);
  CHECK(parse({"--help"}).help);
  CHECK_FALSE(parse({"-help=false"}).help);
  // Like Go, parsing stops at -help, so what follows is not checked.
  CHECK(parse({"-h", "-no-such-flag"}).help);
}

TEST_CASE("flags: -node-id range and format", "[flags]") {
  CHECK(*parse({"-node-id", "42"}).node_id == 42);
  CHECK(*parse({"-node-id=9223372036854775807"}).node_id == 9223372036854775807ULL);
  for (std::string bad : {"abc", "0", "-1", "9223372036854775808", "18446744073709551616", "",
                          "1.5", "12abc", " 7"}) {
    INFO(bad);
    CHECK(error_for({"-node-id=" + bad}) ==
          "invalid value \"" + bad +
              "\" for flag -node-id: must be an integer between 1 and 9223372036854775807");
  }
  CHECK(error_for({"-node-id", "abc"}) ==
        "invalid value \"abc\" for flag -node-id: must be an integer between 1 and "
        "9223372036854775807");
}

TEST_CASE("flags: -cluster-addr must have a port", "[flags]") {
  CHECK(parse({"-cluster-addr", "localhost:4221"}).cluster_addr == "localhost:4221");
  CHECK(parse({"-cluster-addr=:4221"}).cluster_addr == ":4221");
  CHECK(parse({"-cluster-addr=[::1]:4221"}).cluster_addr == "[::1]:4221");
  for (std::string bad : {"localhost", "localhost:", "host:port", "host:70000", "::1:4221"}) {
    INFO(bad);
    std::string msg = error_for({"-cluster-addr", bad});
    CHECK(msg.find("invalid value \"" + bad + "\" for flag -cluster-addr") == 0);
    CHECK(msg.find("host:port") != std::string::npos);
  }
}

TEST_CASE("list flags are comma-separated, trimmed, without empty entries", "[flags]") {
  CliOptions o = parse({"-cluster-peers", " nats://a:4221/ , ,nats://b:4222/,", "-leaf-servers",
                        "nats://hub:7422/?hub=true, dns://leaf:7422/"});
  CHECK(o.cluster_peers == std::vector<std::string>{"nats://a:4221/", "nats://b:4222/"});
  CHECK(o.leaf_servers ==
        std::vector<std::string>{"nats://hub:7422/?hub=true", "dns://leaf:7422/"});
  CHECK(parse({"-cluster-peers="}).cluster_peers.empty());
  CHECK(parse({"-cluster-peers", " , "}).cluster_peers.empty());
}

TEST_CASE("flags: -pprof is accepted and kept", "[flags]") {
  CHECK(parse({"-pprof", "localhost:6060"}).pprof == "localhost:6060");
}

TEST_CASE("usage errors", "[flags]") {
  CHECK(error_for({"-foo"}) == "unknown flag -foo");
  CHECK(error_for({"--foo=1"}) == "unknown flag -foo");
  CHECK(error_for({"-config"}) == "flag -config needs a value");
  CHECK(error_for({"-cleanup", "--node-id"}) == "flag -node-id needs a value");
  CHECK(error_for({"-config", "a.toml", "extra"}) == "unexpected argument \"extra\"");
  CHECK(error_for({"extra"}) == "unexpected argument \"extra\"");
  CHECK(error_for({"-"}) == "unexpected argument \"-\"");
  CHECK(error_for({"---config=a"}) == "bad flag syntax: ---config=a");
  CHECK(error_for({"-=a"}) == "bad flag syntax: -=a");
  // "--" ends the flags; nothing may follow it.
  CHECK(parse({"-cleanup", "--"}).cleanup);
  CHECK(error_for({"--", "-cleanup"}) == "unexpected argument \"-cleanup\"");
}

TEST_CASE("usage text lists every flag with a description and default", "[flags]") {
  std::string u = usage_text();
  CHECK(u.rfind("Usage: harmonylite [flags]", 0) == 0);
  for (std::string flag :
       {"-config", "-node-id", "-cluster-addr", "-cluster-peers", "-leaf-servers", "-cleanup",
        "-force", "-save-snapshot", "-schema-status", "-schema-status-cluster", "-version", "-help",
        "-h", "-pprof"}) {
    INFO(flag);
    auto pos = u.find("\n  " + flag + "\n");
    if (pos == std::string::npos) pos = u.find("\n  " + flag + " ");
    REQUIRE(pos != std::string::npos);
    // The next line is the description, ending with the default.
    auto desc_start = u.find('\n', pos + 1) + 1;
    auto desc_end = u.find('\n', desc_start);
    std::string desc = u.substr(desc_start, desc_end - desc_start);
    CHECK(desc.find("(default: ") != std::string::npos);
  }
}
