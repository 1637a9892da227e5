// Generation of the embedded nats-server's config file and command line from its options and the
// user's server_config (see nats_server_config.hpp for the layering).
#include "replicator/nats/nats_server_config.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
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

struct RouteCredentials {
  std::string user, password;
  bool empty() const { return user.empty() && password.empty(); }
  bool operator==(const RouteCredentials&) const = default;
};

// Where a URL's authority starts (after "scheme://") and where its userinfo ends: the last '@',
// as in redact_url, so that an '@' inside a password does not cut it short.
size_t authority_start(const std::string& url) {
  const auto scheme = url.find("://");
  return scheme == std::string::npos ? 0 : scheme + 3;
}

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// nats-server reads route URLs with Go's url.Parse, which percent-decodes the userinfo.
std::string percent_decode(const std::string& s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%' && i + 2 < s.size() && hex_value(s[i + 1]) >= 0 && hex_value(s[i + 2]) >= 0) {
      out += static_cast<char>(hex_value(s[i + 1]) * 16 + hex_value(s[i + 2]));
      i += 2;
    } else {
      out += s[i];
    }
  }
  return out;
}

std::string percent_encode(const std::string& s) {
  static const char* kHex = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~') {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += kHex[c >> 4];
      out += kHex[c & 15];
    }
  }
  return out;
}

RouteCredentials credentials_of(const std::string& url) {
  if (!has_credentials(url)) return {};
  const size_t from = authority_start(url);
  const std::string userinfo = url.substr(from, url.rfind('@') - from);
  const size_t colon = userinfo.find(':');
  if (colon == std::string::npos) return {percent_decode(userinfo), ""};
  return {percent_decode(userinfo.substr(0, colon)), percent_decode(userinfo.substr(colon + 1))};
}

// `url` with its userinfo replaced by `credentials` (percent-encoded).
std::string with_credentials(const std::string& url, const RouteCredentials& credentials) {
  const size_t from = authority_start(url);
  const std::string rest = has_credentials(url) ? url.substr(url.rfind('@') + 1) : url.substr(from);
  return url.substr(0, from) + percent_encode(credentials.user) + ":" +
         percent_encode(credentials.password) + "@" + rest;
}

// What routes must present: [nats] cluster_user/cluster_password, else the one user:password
// the -cluster-peers URLs carry. Several different ones cannot be: a server has one route
// authorization, so a peer's URL with other credentials would never connect.
RouteCredentials route_credentials(const EmbeddedServerOptions& opts) {
  if (!opts.cluster_user.empty() || !opts.cluster_password.empty())
    return {opts.cluster_user, opts.cluster_password};
  RouteCredentials found;
  for (const auto& route : opts.routes) {
    const RouteCredentials c = credentials_of(route);
    if (c.empty()) continue;
    if (c.password.empty())
      throw Error("route " + redact_url(route) +
                  " has a user but no password: give user:password, or set [nats] cluster_user "
                  "and cluster_password");
    if (!found.empty() && !(c == found))
      throw Error("the -cluster-peers URLs carry different credentials (" + redact_url(route) +
                  "): the routes of a cluster share one user and password; set [nats] "
                  "cluster_user and cluster_password instead");
    found = c;
  }
  return found;
}

void write_route_tls(std::ostream& conf, const EmbeddedServerOptions& opts) {
  if (opts.tls_cert_file.empty()) return;
  // Routes verify both ways whatever tls_verify says: a route is a cluster member, and an
  // unverified one is exactly the intruder this block keeps out.
  conf << ", tls { cert_file: " << conf_quote(fs::absolute(opts.tls_cert_file).string())
       << ", key_file: " << conf_quote(fs::absolute(opts.tls_key_file).string())
       << ", ca_file: " << conf_quote(fs::absolute(opts.tls_ca_file).string())
       << ", verify: true }";
}

// The cluster block: listen address, the authorization routes must present, route TLS and the
// routes. All of it in this 0600 file: the route URLs carry the password, and nats-server's
// --cluster flag would clear an authorization set here.
void write_cluster(std::ostream& conf, const EmbeddedServerOptions& opts,
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
    // The listen address then goes on the command line, and nats-server's --cluster flag
    // clears whatever route authorization that block sets (verified with 2.9.10): the routes
    // would accept anyone. Only with an explicit opt-out.
    const std::string why = "nats server_config " + user.file.string() +
                            " has a cluster block, so -cluster-addr becomes nats-server's "
                            "--cluster flag, which drops the route authorization of that block";
    if (!opts.cluster_insecure)
      throw Error(why +
                  ": remove the cluster block and set [nats] cluster_user and "
                  "cluster_password (and tls_* for TLS), or set [nats] cluster_insecure = "
                  "true to accept routes without authentication");
    spdlog::warn("{}; [nats] cluster_insecure = true: the routes on {} accept anyone", why,
                 opts.cluster_listen);
    return;
  }
  const auto listen = parse_url_address(opts.cluster_listen);
  if (!listen) throw Error("cluster address \"" + opts.cluster_listen + "\" is not host:port");
  std::vector<std::string> routes = opts.routes;
  if (routes.empty()) {
    // nats-server 2.9 refuses clustered JetStream without routes ("JetStream cluster requires
    // configured routes"); a route to ourselves satisfies it and is detected as a
    // self-connection.
    routes.push_back(format_url("nats", {dial_host(listen->host), listen->port}));
  }
  const RouteCredentials credentials = route_credentials(opts);
  if (credentials.empty() && !opts.cluster_insecure)
    throw Error(
        "cluster routes (-cluster-addr " + opts.cluster_listen +
        ") need credentials, or anyone who reaches that port can join the cluster and write into "
        "every database: set [nats] cluster_user and cluster_password (the same on every node), "
        "or give them in the -cluster-peers URLs (nats://user:password@host:port), or set [nats] "
        "cluster_insecure = true to accept routes without authentication");
  if (credentials.empty())
    spdlog::warn(
        "[nats] cluster_insecure = true: the cluster routes on {} accept anyone without "
        "credentials; whoever reaches that port can join the cluster and write into every "
        "database (set [nats] cluster_user and cluster_password)",
        opts.cluster_listen);
  conf << "cluster { listen: " << conf_quote(format_host_port(*listen));
  if (!credentials.empty())
    conf << ", authorization { user: " << conf_quote(credentials.user)
         << ", password: " << conf_quote(credentials.password) << " }";
  write_route_tls(conf, opts);
  conf << ", routes: [";
  for (size_t i = 0; i < routes.size(); ++i)
    conf << (i ? ", " : " ")
         << conf_quote(credentials.empty() ? routes[i] : with_credentials(routes[i], credentials));
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

// The client port's TLS. The replicator's own connection then uses TLS too
// (connect_options in nats_config.cpp).
void write_client_tls(std::ostream& conf, const EmbeddedServerOptions& opts) {
  if (opts.tls_cert_file.empty()) return;
  conf << "tls { cert_file: " << conf_quote(fs::absolute(opts.tls_cert_file).string())
       << ", key_file: " << conf_quote(fs::absolute(opts.tls_key_file).string())
       << ", ca_file: " << conf_quote(fs::absolute(opts.tls_ca_file).string())
       << ", verify: " << (opts.tls_verify ? "true" : "false") << " }\n";
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
  write_cluster(conf, opts, user);
  write_leaf_remotes(conf, opts, user);
  write_user_include(conf, generated, user, opts, run_dir);
  write_authorization(conf, opts);
  write_client_tls(conf, opts);
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
    a.insert(a.end(), {"--cluster_name", opts.cluster_name});
    // The listen address and routes are in the generated config (write_cluster): --cluster
    // would clear the route authorization set there. Unless the user's file has its own
    // cluster block; only credential-free routes get here then.
    if (routes_on_command_line(opts)) {
      std::string listen = opts.cluster_listen;
      if (listen.find("://") == std::string::npos) listen = "nats://" + listen;
      a.insert(a.end(), {"--cluster", listen});
      if (!opts.routes.empty()) a.insert(a.end(), {"--routes", joined(opts.routes, ",")});
    }
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
