// What the embedded nats-server is told: its options, where its files live, the generated
// config file (written 0600: it may hold the password) and its command line. Pure functions of
// the options and the user's server_config, so they are tested without starting a server; the
// process itself is supervised by EmbeddedServer (nats_server.hpp).
//
// Configuration layering, lowest to highest priority:
//   1. <store_dir>/harmonylite-nats-server.conf, generated: max_payload, http (monitor) on
//      127.0.0.1 with a random port, the cluster block (listen address, the authorization
//      routes must present, route TLS, and the routes, or a self route when clustered without
//      any; in the file because a route URL carries a password), leaf remotes.
//      nats-server applies a file's keys in Go map order (randomly), so when two different key
//      names set one option (http vs monitor_port, leaf vs leafnodes) the winner is random; the
//      monitor and leafnodes defaults are therefore left out when the user's file sets them;
//   2. the user's server_config, pulled in with `include` (a path relative to the generated
//      file, as nats-server resolves includes relative to the including file);
//   3. the credentials block and the client port's TLS, written after the include (so they
//      win, and the password stays off the process list, unlike --user/--pass);
//   4. command-line flags: -js, -sd, -n, -a, -p, -m, --cluster_name, -l, --ports_file_dir;
//      --cluster and --routes only when the user's file has a cluster block of its own (ours
//      would replace it), and then only routes without credentials. Otherwise the listen
//      address is in our cluster block: nats-server's --cluster flag clears the route
//      authorization a config file sets.
// nats-server 2.9 refuses to start when -sd is given and the config file also sets store_dir
// ("Duplicate 'store_dir' configuration"), so when the user's file sets one we include a copy
// without it (store_dir removed, relative includes rebased) and log that ours is used.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace harmony {

struct EmbeddedServerOptions {
  std::string binary = "nats-server";
  std::string server_name;  // required for clustered JetStream, "harmonylite-<nodeid>"
  // Client listener host; "" = the server's default (0.0.0.0 unless the config says otherwise).
  std::string client_host = "127.0.0.1";
  int client_port = -1;                   // -1 = random free port, discovered after start
  std::string cluster_listen;             // "localhost:4221" (route listener); "" = not clustered
  std::vector<std::string> routes;        // "nats://localhost:4221/", ...
  std::vector<std::string> leaf_remotes;  // leafnode remote URLs
  std::string cluster_name = "harmonylite";
  std::string config_file;     // the user's [nats] server_config ("" = none)
  std::string store_dir;       // required: JetStream store and our run files (created if missing)
  std::string user, password;  // when set, the client port requires them
  // Route credentials: routes require them. Empty = the user:password of the routes' URLs;
  // none at all is refused unless cluster_insecure (see generate_server_config).
  std::string cluster_user, cluster_password;
  bool cluster_insecure = false;
  // TLS of the client port and the routes ("" = none); routes always verify their peer.
  std::string tls_ca_file, tls_cert_file, tls_key_file;
  bool tls_verify = false;  // the client port requires client certificates
  std::string log_file;     // the server's own log; "" = <store_dir>/nats-server.log
  int64_t max_payload_bytes = 8 << 20;
};

// Where a server's files live: in the store directory, made canonical so that the relative
// include in the generated config resolves the same way for nats-server (which joins it
// lexically to this directory).
struct ServerFiles {
  std::string run_dir;      // the canonical store directory, also --ports_file_dir
  std::string config_path;  // the generated config
  std::string out_path;     // the child's stdout and stderr
  std::string log_path;     // nats-server's own log (-l)
};
ServerFiles server_files(const EmbeddedServerOptions& opts);

// The generated config and, when the user's server_config sets store_dir, the copy of it that is
// included instead of it.
struct GeneratedServerConfig {
  std::string text;
  std::string user_copy_path;  // "" = the user's file is included as it is
  std::string user_copy_text;
};

// Throws harmony::Error when cluster_listen is not host:port or a value cannot be quoted. Logs
// the user's settings it overrides (store_dir) or that override ours (leafnodes).
// Route credentials: cluster_user/cluster_password win, and every route URL is given them;
// without them, the user:password the route URLs carry (all the same) is required of routes and
// given to the URLs without one. With neither, clustering is refused (an Error naming
// [nats] cluster_user and cluster_password) unless cluster_insecure, which logs a warning; so is
// clustering with a user's server_config that has a cluster block (--cluster drops its
// authorization).
GeneratedServerConfig generate_server_config(const EmbeddedServerOptions& opts,
                                             const std::string& run_dir);

// Writes the config (and the user's copy) with mode 0600, also over an existing file.
void write_server_config(const GeneratedServerConfig& config, const std::string& config_path);

// The server's command line; its flags win over every config file. `client_port` and
// `monitor_port` are the ports to listen on: opts.client_port and -1 (random monitor port) at
// the first start, the discovered ones on a restart so clients reconnect to the same URL.
std::vector<std::string> server_argv(const EmbeddedServerOptions& opts, const ServerFiles& files,
                                     int client_port, int monitor_port);

// True when the user's server_config has a cluster block: then the routes go on the command
// line (a cluster block of ours would replace theirs) and must not carry credentials.
bool routes_on_command_line(const EmbeddedServerOptions& opts);

// Where to dial a listener bound to `host`: wildcard binds are reached on loopback.
std::string dial_host(const std::string& host);

}  // namespace harmony
