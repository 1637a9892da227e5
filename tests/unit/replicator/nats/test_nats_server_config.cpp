// What the embedded nats-server is told, without starting one: the scanner of the user's
// server_config (replicator/nats/nats_server_config_lexer.cpp) and the generated config file and
// command line (replicator/nats/nats_server_config.cpp). That nats-server accepts the result is
// checked end to end by tests/integration/test_nats_server.cpp.
#include <sys/stat.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <filesystem>
#include <string>
#include <vector>

#include "replicator/nats/nats_server_config.hpp"
#include "replicator/nats/nats_server_config_lexer.hpp"
#include "shared/error.hpp"
#include "tests/support/support.hpp"

using namespace harmony;
using namespace harmony::test;
namespace fs = std::filesystem;

namespace {

bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

// Position of `part` in `text`, failing the test when it is missing.
size_t position_of(const std::string& text, const std::string& part) {
  INFO(text);
  size_t pos = text.find(part);
  REQUIRE(pos != std::string::npos);
  return pos;
}

bool has_flag(const std::vector<std::string>& argv, const std::string& flag,
              const std::string& value) {
  auto it = std::find(argv.begin(), argv.end(), flag);
  return it != argv.end() && it + 1 != argv.end() && *(it + 1) == value;
}

bool has_flag(const std::vector<std::string>& argv, const std::string& flag) {
  return std::find(argv.begin(), argv.end(), flag) != argv.end();
}

fs::perms permissions_of(const std::string& path) {
  return fs::status(path).permissions();
}

EmbeddedServerOptions options_in(const TempDir& dir) {
  EmbeddedServerOptions o;
  o.server_name = "harmonylite-1";
  o.store_dir = dir.file("store");
  fs::create_directories(o.store_dir);
  return o;
}

}  // namespace

TEST_CASE("nats config lexer: comments, quoted values, nesting and includes", "[nats-config]") {
  const std::string text =
      "# store_dir = \"/commented\"\n"
      "// include \"commented.conf\"\n"
      "server_name: \"store_dir = a value, not a key\"\n"
      "monitor_port = 8222\n"
      "jetstream {\n"
      "  store_dir = \"/var/lib/js\"; max_file_store = 5G\n"
      "}\n"
      "include \"extra.conf\"  # relative to this file\n"
      "include /abs/more.conf\n"
      "authorization { include 'users.conf' }\n"
      "'Max_Connections': 10\n";
  auto r = rewrite_user_config(text, "/srv/etc", "/srv/store");

  CHECK(r.removed_store_dirs == std::vector<std::string>{"/var/lib/js"});
  CHECK(r.top_level_keys == std::vector<std::string>{"server_name", "monitor_port", "jetstream",
                                                     "authorization", "max_connections"});
  // Only top-level includes count; nats-server joins even absolute paths to the file's directory.
  CHECK(r.top_level_includes ==
        std::vector<fs::path>{"/srv/etc/extra.conf", "/srv/etc/abs/more.conf"});

  INFO(r.text);
  CHECK_FALSE(contains(r.text, "/var/lib/js"));
  CHECK(contains(r.text, "max_file_store = 5G"));
  CHECK(contains(r.text, "# store_dir = \"/commented\""));  // comments stay as they are
  CHECK(contains(r.text, "// include \"commented.conf\""));
  CHECK(contains(r.text, "\"store_dir = a value, not a key\""));
  CHECK(contains(r.text, "include \"../etc/extra.conf\"  # relative to this file"));
  CHECK(contains(r.text, "include \"../etc/abs/more.conf\""));
  CHECK(contains(r.text, "{ include \"../etc/users.conf\" }"));
}

TEST_CASE("nats config lexer: store_dir under any spelling, with its separator", "[nats-config]") {
  auto r = rewrite_user_config("jetstream { StoreDir: /a/b, max_mem: 1G }\nstore_dir = 'x'\n",
                               "/etc", "/etc");
  CHECK(r.removed_store_dirs == std::vector<std::string>{"/a/b", "x"});
  // Blanked, not cut: every other position stays where it was.
  CHECK(r.text ==
        "jetstream { " + std::string(15, ' ') + " max_mem: 1G }\n" + std::string(15, ' ') + "\n");
}

TEST_CASE("nats config lexer: values are quoted the way nats-server reads them", "[nats-config]") {
  CHECK(conf_quote("plain") == "\"plain\"");
  CHECK(conf_quote("se\"c\\ret $word\n\t\r") == "\"se\\\"c\\\\ret $word\\n\\t\\r\"");
  CHECK_THROWS_AS(conf_quote(std::string("bell\a")), Error);
}

TEST_CASE("nats config lexer: top-level keys follow top-level includes", "[nats-config]") {
  TempDir dir("nats-config-keys");
  fs::create_directories(dir.file("etc/conf.d"));
  write_file(dir.file("etc/main.conf"), "include conf.d/monitor.conf\nport = 4222\n");
  write_file(dir.file("etc/conf.d/monitor.conf"), "http: 8222\nleafnodes { include x.conf }\n");
  CHECK(top_level_keys_of(dir.file("etc/main.conf")) ==
        std::vector<std::string>{"port", "http", "leafnodes"});
  CHECK(top_level_keys_of(dir.file("etc/missing.conf")).empty());
}

TEST_CASE("nats config: defaults without a server_config", "[nats-config]") {
  TempDir dir("nats-config-defaults");
  auto o = options_in(dir);
  auto files = server_files(o);
  auto generated = generate_server_config(o, files.run_dir);
  INFO(generated.text);
  CHECK(contains(generated.text, "max_payload: 8388608\n"));
  CHECK(contains(generated.text, "http: \"127.0.0.1:-1\"\n"));
  CHECK_FALSE(contains(generated.text, "\ninclude "));
  CHECK_FALSE(contains(generated.text, "\nauthorization {"));
  CHECK_FALSE(contains(generated.text, "\ncluster {"));
  CHECK(generated.user_copy_path.empty());
}

TEST_CASE("nats config: the user's server_config is included, our credentials after it",
          "[nats-config]") {
  TempDir dir("nats-config-user");
  fs::create_directories(dir.file("etc"));
  write_file(dir.file("etc/nats-server-1.conf"),
             "include \"monitor.conf\"\nleafnodes { listen: \"127.0.0.1:7422\" }\n");
  write_file(dir.file("etc/monitor.conf"), "monitor_port = 8222\n");
  auto o = options_in(dir);
  o.config_file = dir.file("etc/nats-server-1.conf");
  o.leaf_remotes = {"nats-leaf://hub:7422"};
  o.user = "harmonylite";
  o.password = "secure $word";
  auto generated = generate_server_config(o, server_files(o).run_dir);
  const std::string& text = generated.text;
  INFO(text);

  // The user's monitor_port (through an include) and leafnodes win over our defaults: both names
  // of one option in a file would make the winner random.
  CHECK_FALSE(contains(text, "http:"));
  CHECK_FALSE(contains(text, "nats-leaf://hub:7422"));
  CHECK(generated.user_copy_path.empty());  // no store_dir to remove: included as it is
  size_t include = position_of(text, "include \"../etc/nats-server-1.conf\"\n");
  size_t credentials =
      position_of(text, "authorization { user: \"harmonylite\", password: \"secure $word\" }");
  CHECK(position_of(text, "max_payload:") < include);
  CHECK(include < credentials);  // the later setting wins
}

TEST_CASE("nats config: a server_config with store_dir is included as a copy without it",
          "[nats-config]") {
  TempDir dir("nats-config-store");
  fs::create_directories(dir.file("etc"));
  write_file(dir.file("etc/nats-server-1.conf"),
             "jetstream { store_dir = \"/var/lib/nats\"; max_memory_store = 50M }\n"
             "include \"extra.conf\"\n");
  auto o = options_in(dir);
  o.config_file = dir.file("etc/nats-server-1.conf");
  auto files = server_files(o);
  auto generated = generate_server_config(o, files.run_dir);
  INFO(generated.text);

  CHECK(generated.user_copy_path == files.run_dir + "/harmonylite-server-config.conf");
  CHECK(contains(generated.text, "include \"harmonylite-server-config.conf\"\n"));
  CHECK_FALSE(contains(generated.user_copy_text, "/var/lib/nats"));
  CHECK(contains(generated.user_copy_text, "max_memory_store = 50M"));
  // The copy lives in the store directory: its relative include now points back to etc/.
  CHECK(contains(generated.user_copy_text, "include \"../etc/extra.conf\""));
}

TEST_CASE("nats config: clustering without routes gets a route to itself", "[nats-config]") {
  TempDir dir("nats-config-cluster");
  auto o = options_in(dir);
  o.cluster_listen = "0.0.0.0:6222";
  o.cluster_user = "ru";
  o.cluster_password = "rp";
  const std::string run_dir = server_files(o).run_dir;
  CHECK(contains(generate_server_config(o, run_dir).text,
                 "cluster { listen: \"0.0.0.0:6222\", authorization { user: \"ru\", password: "
                 "\"rp\" }, routes: [ \"nats://ru:rp@127.0.0.1:6222\" ] }\n"));
  o.routes = {"nats://localhost:6223/"};
  CHECK(contains(generate_server_config(o, run_dir).text,
                 "routes: [ \"nats://ru:rp@localhost:6223/\" ] }\n"));
  o.routes.clear();
  o.cluster_listen = "no-port";
  CHECK_THROWS_WITH(generate_server_config(o, run_dir), Catch::Contains("is not host:port"));
}

TEST_CASE("nats config: routes require credentials, from the config or the peers' URLs",
          "[nats-config]") {
  TempDir dir("nats-config-route-auth");
  auto o = options_in(dir);
  o.cluster_listen = "[::1]:6222";
  const std::string run_dir = server_files(o).run_dir;

  // None anywhere: refused, naming the keys, unless explicitly insecure.
  o.routes = {"nats://a:6223/"};
  CHECK_THROWS_WITH(generate_server_config(o, run_dir),
                    Catch::Contains("[nats] cluster_user and cluster_password") &&
                        Catch::Contains("cluster_insecure = true"));
  o.cluster_insecure = true;
  std::string text = generate_server_config(o, run_dir).text;
  CHECK(contains(text, "cluster { listen: \"[::1]:6222\", routes: [ \"nats://a:6223/\" ] }\n"));
  o.cluster_insecure = false;

  // From the peers' URLs: required of routes, and given to the URLs without any.
  o.routes = {"nats://u:p%40ss@a:6223/", "nats://b:6224/"};
  text = generate_server_config(o, run_dir).text;
  CHECK(contains(text, "authorization { user: \"u\", password: \"p@ss\" }"));
  CHECK(contains(text, "\"nats://u:p%40ss@a:6223/\", \"nats://u:p%40ss@b:6224/\""));
  // Different ones cannot all be right (a server has one route authorization).
  o.routes = {"nats://u:one@a:6223/", "nats://u:two@b:6224/"};
  try {
    generate_server_config(o, run_dir);
    FAIL("accepted");
  } catch (const Error& e) {
    CHECK(contains(e.what(), "different credentials"));
    CHECK_FALSE(contains(e.what(), "two"));
  }

  // The config's win over the URLs'; special characters are percent-encoded in the URLs.
  o.cluster_user = "route user";
  o.cluster_password = "p:w/\"x";
  text = generate_server_config(o, run_dir).text;
  CHECK(contains(text, "authorization { user: \"route user\", password: \"p:w/\\\"x\" }"));
  CHECK(contains(text, "\"nats://route%20user:p%3Aw%2F%22x@a:6223/\""));
  CHECK_FALSE(contains(text, "one@"));
}

TEST_CASE("nats config: TLS for the client port and the routes", "[nats-config]") {
  TempDir dir("nats-config-tls");
  auto o = options_in(dir);
  o.cluster_listen = "127.0.0.1:6222";
  o.cluster_user = "ru";
  o.cluster_password = "rp";
  o.tls_ca_file = "/etc/ca.pem";
  o.tls_cert_file = "/etc/node.pem";
  o.tls_key_file = "/etc/node-key.pem";
  std::string text = generate_server_config(o, server_files(o).run_dir).text;
  INFO(text);
  const std::string files =
      "cert_file: \"/etc/node.pem\", key_file: \"/etc/node-key.pem\", ca_file: \"/etc/ca.pem\"";
  // Routes verify their peer always; the client port only with tls_verify.
  CHECK(contains(text, ", tls { " + files + ", verify: true }, routes: ["));
  CHECK(contains(text, "\ntls { " + files + ", verify: false }\n"));
  o.tls_verify = true;
  CHECK(contains(generate_server_config(o, server_files(o).run_dir).text,
                 "\ntls { " + files + ", verify: true }\n"));
  o.tls_cert_file.clear();
  CHECK_FALSE(contains(generate_server_config(o, server_files(o).run_dir).text, "tls {"));
}

TEST_CASE("nats config: leaf remotes are written when the user sets none", "[nats-config]") {
  TempDir dir("nats-config-leaf");
  auto o = options_in(dir);
  o.leaf_remotes = {"nats-leaf://a:7422", "nats-leaf://b:7422"};
  CHECK(contains(generate_server_config(o, server_files(o).run_dir).text,
                 "leafnodes { remotes: [ { url: \"nats-leaf://a:7422\" }, "
                 "{ url: \"nats-leaf://b:7422\" } ] }\n"));
}

TEST_CASE("nats config: the command line carries our settings, which win over every file",
          "[nats-config]") {
  TempDir dir("nats-config-argv");
  auto o = options_in(dir);
  o.cluster_listen = "localhost:6222";
  o.routes = {"nats://route-user:s3cret@a:6222/", "nats://b:6222/"};
  auto files = server_files(o);

  auto first = server_argv(o, files, o.client_port, -1);
  CHECK(first.front() == "nats-server");
  CHECK(has_flag(first, "-c", files.config_path));
  CHECK(has_flag(first, "-js"));
  CHECK(has_flag(first, "-sd", o.store_dir));
  CHECK(has_flag(first, "-n", "harmonylite-1"));
  CHECK(has_flag(first, "-a", "127.0.0.1"));
  CHECK(has_flag(first, "-p", "-1"));
  CHECK_FALSE(has_flag(first, "-m"));  // the config's random (or the user's) monitor port
  // The listen address is in the config: --cluster would clear the route authorization there.
  CHECK_FALSE(has_flag(first, "--cluster"));
  CHECK(has_flag(first, "--cluster_name", "harmonylite"));
  // Routes, which carry credentials, are in the 0600 config, never on the command line.
  CHECK_FALSE(has_flag(first, "--routes"));
  for (const auto& arg : first) CHECK_FALSE(contains(arg, "s3cret"));
  CHECK(contains(generate_server_config(o, files.run_dir).text,
                 "cluster { listen: \"localhost:6222\", authorization { user: \"route-user\", "
                 "password: \"s3cret\" }, routes: [ \"nats://route-user:s3cret@a:6222/\", "
                 "\"nats://route-user:s3cret@b:6222/\" ] }\n"));
  CHECK(has_flag(first, "-l", files.log_path));
  CHECK(has_flag(first, "--ports_file_dir", files.run_dir));
  // The password is never on the command line (it is in the 0600 config).
  o.password = "secure";
  for (const auto& arg : server_argv(o, files, o.client_port, -1))
    CHECK_FALSE(contains(arg, "secure"));

  // A restart listens where the first server did, so clients reconnect to the same URL.
  auto restart = server_argv(o, files, 4222, 8222);
  CHECK(has_flag(restart, "-p", "4222"));
  CHECK(has_flag(restart, "-m", "8222"));
}

TEST_CASE("nats config: a user's cluster block keeps the routes on the command line",
          "[nats-config]") {
  TempDir dir("nats-config-user-cluster");
  write_file(dir.file("user.conf"), "cluster { authorization { user: a, password: b } }\n");
  auto o = options_in(dir);
  o.config_file = dir.file("user.conf");
  o.cluster_listen = "localhost:6222";
  o.routes = {"nats://a:6223/", "nats://b:6224/"};
  auto files = server_files(o);
  // --cluster would drop the block's authorization: refused unless explicitly insecure.
  CHECK_THROWS_WITH(generate_server_config(o, files.run_dir),
                    Catch::Contains("drops the route authorization") &&
                        Catch::Contains("cluster_insecure = true"));
  o.cluster_insecure = true;
  // Ours would replace the user's whole block (and its authorization): none is written.
  CHECK_FALSE(contains(generate_server_config(o, files.run_dir).text, "cluster {"));
  CHECK(has_flag(server_argv(o, files, o.client_port, -1), "--routes",
                 "nats://a:6223/,nats://b:6224/"));
  CHECK(has_flag(server_argv(o, files, o.client_port, -1), "--cluster", "nats://localhost:6222"));
  // Credentials would then be on the process list: refused, naming the route without them.
  o.routes = {"nats://u:s3cret@a:6223/"};
  try {
    generate_server_config(o, files.run_dir);
    FAIL("accepted");
  } catch (const Error& e) {
    CHECK(contains(e.what(), "nats://u:***@a:6223/"));
    CHECK(contains(e.what(), "cluster block"));
    CHECK_FALSE(contains(e.what(), "s3cret"));
  }
}

TEST_CASE("nats config: files live in the canonical store directory", "[nats-config]") {
  TempDir dir("nats-config-files");
  EmbeddedServerOptions o;
  o.store_dir = dir.file("a/../store");
  auto files = server_files(o);
  CHECK(files.run_dir == fs::weakly_canonical(dir.file("store")).string());
  CHECK(files.config_path == files.run_dir + "/harmonylite-nats-server.conf");
  CHECK(files.out_path == files.run_dir + "/nats-server.out");
  CHECK(files.log_path == files.run_dir + "/nats-server.log");
  o.log_file = dir.file("elsewhere.log");
  CHECK(server_files(o).log_path == dir.file("elsewhere.log"));
}

TEST_CASE("nats config: the generated files are private (0600), also when they existed",
          "[nats-config]") {
  TempDir dir("nats-config-mode");
  const std::string config = dir.file("harmonylite-nats-server.conf");
  const std::string copy = dir.file("harmonylite-server-config.conf");
  write_file(config, "an older, longer config from a previous start\n");
  ::chmod(config.c_str(), 0644);
  write_server_config({"max_payload: 1\n", copy, "port: 1\n"}, config);
  const auto owner_rw = fs::perms::owner_read | fs::perms::owner_write;
  CHECK(permissions_of(config) == owner_rw);
  CHECK(permissions_of(copy) == owner_rw);
  CHECK(read_file(config) == "max_payload: 1\n");
  CHECK(read_file(copy) == "port: 1\n");
}

TEST_CASE("nats config: wildcard listeners are dialled on loopback", "[nats-config]") {
  CHECK(dial_host("") == "127.0.0.1");
  CHECK(dial_host("0.0.0.0") == "127.0.0.1");
  CHECK(dial_host("::") == "::1");
  CHECK(dial_host("[::]") == "::1");
  CHECK(dial_host("10.0.0.5") == "10.0.0.5");
}
