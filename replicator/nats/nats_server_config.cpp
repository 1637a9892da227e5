// Generation of the embedded nats-server's config file and command line from its options and the
// user's server_config (see nats_server_config.hpp for the layering).
#include "replicator/nats/nats_server_config.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <initializer_list>
#include <sstream>

#include <spdlog/spdlog.h>

#include "replicator/common/address.hpp"
#include "replicator/nats/nats_client.hpp"
#include "replicator/nats/nats_server_config_lexer.hpp"
#include "shared/error.hpp"
#include "shared/files.hpp"

namespace harmony {
namespace fs = std::filesystem;

namespace {

// The user's server_config as the generated config sees it.
struct UserServerConfig {
  fs::path file;                  // canonical; empty when there is none
  UserConfigRewrite rewrite;      // its text without store_dir, includes rebased to run_dir
  std::vector<std::string> keys;  // its top-level keys and those of its top-level includes

  bool present() const { return !file.empty(); }
  bool sets_any_of(std::initializer_list<const char*> names) const {
    for (const char* n : names)
      if (std::find(keys.begin(), keys.end(), n) != keys.end()) return true;
    return false;
  }
};

UserServerConfig read_user_config(const std::string& config_file, const fs::path& run_dir) {
  UserServerConfig user;
  if (config_file.empty()) return user;
  user.file = fs::weakly_canonical(fs::absolute(config_file));
  user.rewrite = rewrite_user_config(config_file_text(user.file), user.file.parent_path(), run_dir);
  user.keys = top_level_keys_of(user.file);
  return user;
}

// nats-server applies a config's keys in Go map order, i.e. randomly: when two *different* keys
// set the same option (http vs monitor_port, leaf vs leafnodes) the winner is random. The same
// key repeated is deterministic (the later one wins). So a default below is written only when
// the user's file does not set that option under any of its names.
void write_monitor_default(std::ostream& conf, const UserServerConfig& user) {
  if (!user.sets_any_of({"http", "http_port", "monitor_port", "https", "https_port"}))
    conf << "http: \"127.0.0.1:-1\"\n";  // monitor on a random loopback port (the ports file tells)
}

bool has_credentials(const std::string& url) {
  const auto scheme = url.find("://");
  const auto authority = scheme == std::string::npos ? 0 : scheme + 3;
  return url.find('@', authority) != std::string::npos;
}

// The routes go into this file, not on the command line: a route URL may carry a password
// (nats://user:password@host:port) and a process's argv is readable by every local user.
void write_routes(std::ostream& conf, const EmbeddedServerOptions& opts,
                  const UserServerConfig& user) {
  if (opts.cluster_listen.empty()) return;
  if (user.sets_any_of({"cluster"})) {
    // A second `cluster` block would replace the user's whole (Go map semantics): their routes
    // authorization and TLS would be lost. Credential-free routes stay on the command line
    // (server_argv); credentials there would be on the process list, so that is refused.
    for (const auto& route : opts.routes)
      if (has_credentials(route))
        throw Error("route " + redact_url(route) + " carries credentials and nats server_config " +
                    user.file.string() +
                    " has a cluster block: put the routes into that block (credentials are not "
                    "passed on nats-server's command line, where every local user can read them)");
    return;
  }
  std::vector<std::string> routes = opts.routes;
  if (routes.empty()) {
    // nats-server 2.9 refuses clustered JetStream without routes ("JetStream cluster requires
    // configured routes"); a route to ourselves satisfies it and is detected as a
    // self-connection.
    const auto listen = parse_url_address(opts.cluster_listen);
    if (!listen) throw Error("cluster address \"" + opts.cluster_listen + "\" is not host:port");
    routes.push_back(format_url("nats", {dial_host(listen->host), listen->port}));
  }
  conf << "cluster { routes: [";
  for (size_t i = 0; i < routes.size(); ++i) conf << (i ? ", " : " ") << conf_quote(routes[i]);
  conf << " ] }\n";
}

void write_leaf_remotes(std::ostream& conf, const EmbeddedServerOptions& opts,
                        const UserServerConfig& user) {
  if (opts.leaf_remotes.empty()) return;
  if (user.sets_any_of({"leaf", "leafnodes"})) {
    spdlog::warn(
        "nats server_config {} configures leafnodes; ignoring the leaf servers given on "
        "the command line",
        user.file.string());
    return;
  }
  conf << "leafnodes { remotes: [";
  for (size_t i = 0; i < opts.leaf_remotes.size(); ++i)
    conf << (i ? ", " : " ") << "{ url: " << conf_quote(opts.leaf_remotes[i]) << " }";
  conf << " ] }\n";
}

// Includes the user's file, or a copy of it without store_dir when it sets one.
void write_user_include(std::ostream& conf, GeneratedServerConfig& generated,
                        const UserServerConfig& user, const EmbeddedServerOptions& opts,
                        const fs::path& run_dir) {
  if (!user.present()) return;
  fs::path included = user.file;
  if (!user.rewrite.removed_store_dirs.empty()) {
    included = run_dir / "harmonylite-server-config.conf";
    generated.user_copy_path = included.string();
    generated.user_copy_text = "# Copy of " + user.file.string() +
                               " without store_dir (harmonylite sets it).\n" + user.rewrite.text;
    spdlog::info(
        "nats server_config {} sets store_dir '{}'; the embedded server uses '{}' instead "
        "(nats-server cannot override a config store_dir from the command line)",
        user.file.string(), user.rewrite.removed_store_dirs.front(), opts.store_dir);
  }
  conf << "# server_config " << user.file.string() << "\n"
       << "include " << conf_quote(included.lexically_relative(run_dir).string()) << "\n";
}

void write_authorization(std::ostream& conf, const EmbeddedServerOptions& opts) {
  if (opts.user.empty() && opts.password.empty()) return;
  conf << "authorization { user: " << conf_quote(opts.user)
       << ", password: " << conf_quote(opts.password) << " }\n";
}

}  // namespace

namespace {

std::string joined(const std::vector<std::string>& items, const char* separator) {
  std::string out;
  for (const auto& item : items) out += (out.empty() ? "" : separator) + item;
  return out;
}

}  // namespace

ServerFiles server_files(const EmbeddedServerOptions& opts) {
  ServerFiles files;
  files.run_dir = fs::weakly_canonical(fs::absolute(opts.store_dir)).string();
  files.config_path = files.run_dir + "/harmonylite-nats-server.conf";
  files.out_path = files.run_dir + "/nats-server.out";
  files.log_path = opts.log_file.empty() ? files.run_dir + "/nats-server.log" : opts.log_file;
  return files;
}

GeneratedServerConfig generate_server_config(const EmbeddedServerOptions& opts,
                                             const std::string& run_dir) {
  const UserServerConfig user = read_user_config(opts.config_file, run_dir);
  GeneratedServerConfig generated;
  std::ostringstream conf;
  conf << "# Generated by harmonylite each time it starts the embedded nats-server; edits are "
          "lost.\n"
       << "# Priority: the settings below < the included server_config < the authorization block\n"
       << "# after it < harmonylite's command-line flags.\n"
       << "max_payload: " << opts.max_payload_bytes << "\n";
  write_monitor_default(conf, user);
  write_routes(conf, opts, user);
  write_leaf_remotes(conf, opts, user);
  write_user_include(conf, generated, user, opts, run_dir);
  write_authorization(conf, opts);
  generated.text = conf.str();
  return generated;
}

void write_server_config(const GeneratedServerConfig& config, const std::string& config_path) {
  if (!config.user_copy_path.empty())
    write_file_atomically(config.user_copy_path, config.user_copy_text);
  write_file_atomically(config_path, config.text);
}

std::vector<std::string> server_argv(const EmbeddedServerOptions& opts, const ServerFiles& files,
                                     int client_port, int monitor_port) {
  std::vector<std::string> a{opts.binary, "-c", files.config_path, "-js", "-sd", opts.store_dir};
  if (!opts.server_name.empty()) a.insert(a.end(), {"-n", opts.server_name});
  if (!opts.client_host.empty()) a.insert(a.end(), {"-a", opts.client_host});
  a.insert(a.end(), {"-p", std::to_string(client_port >= 0 ? client_port : -1)});
  if (monitor_port > 0) a.insert(a.end(), {"-m", std::to_string(monitor_port)});
  if (!opts.cluster_listen.empty()) {
    std::string listen = opts.cluster_listen;
    if (listen.find("://") == std::string::npos) listen = "nats://" + listen;
    a.insert(a.end(), {"--cluster", listen, "--cluster_name", opts.cluster_name});
    // Routes are in the generated config (write_routes), unless the user's file has its own
    // cluster block; only credential-free routes get here then.
    if (!opts.routes.empty() && routes_on_command_line(opts))
      a.insert(a.end(), {"--routes", joined(opts.routes, ",")});
  }
  a.insert(a.end(), {"-l", files.log_path, "--ports_file_dir", files.run_dir});
  return a;
}

bool routes_on_command_line(const EmbeddedServerOptions& opts) {
  if (opts.config_file.empty()) return false;
  const auto keys = top_level_keys_of(fs::weakly_canonical(fs::absolute(opts.config_file)));
  return std::find(keys.begin(), keys.end(), "cluster") != keys.end();
}

std::string dial_host(const std::string& host) {
  if (host.empty() || host == "0.0.0.0") return "127.0.0.1";
  if (host == "::" || host == "[::]") return "::1";
  return host;
}

}  // namespace harmony
