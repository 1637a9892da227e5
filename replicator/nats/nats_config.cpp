// Config -> NATS-side options (see nats_config.hpp).
#include "replicator/nats/nats_config.hpp"

#include <fmt/format.h>

#include "replicator/common/address.hpp"
#include "replicator/nats/routes.hpp"
#include "shared/error.hpp"

namespace harmony {

std::string stream_name(const Config& c, int shard) {
  return fmt::format("{}-{}", c.nats.stream_prefix, shard);
}

std::string subject_name(const Config& c, int shard) {
  return fmt::format("{}-{}", c.nats.subject_prefix, shard);
}

int publish_shard(const Config& c, uint64_t node) {
  return static_cast<int>(node % static_cast<uint64_t>(c.replication_log.shards)) + 1;
}

ConnectOptions connect_options(const Config& config, uint64_t node) {
  ConnectOptions c;
  c.urls = config.nats.urls;
  c.name = fmt::format("harmonylite-{}", node);
  c.user = config.nats.user_name;
  c.password = config.nats.user_password;
  c.nkey_seed_file = config.nats.seed_file;
  c.ca_file = config.nats.ca_file;
  c.cert_file = config.nats.cert_file;
  c.key_file = config.nats.key_file;
  if (config.nats.urls.empty() && !config.nats.tls_cert_file.empty()) {
    // The embedded server's client port speaks TLS: verify it against its CA and, when it
    // requires client certificates, present the node's own (ca_file etc. are for [nats] urls).
    c.ca_file = config.nats.tls_ca_file;
    c.cert_file = config.nats.tls_verify ? config.nats.tls_cert_file : "";
    c.key_file = config.nats.tls_verify ? config.nats.tls_key_file : "";
  }
  c.reconnect_wait_ms = config.nats.reconnect_wait_seconds * 1000;
  c.connect_attempts = config.nats.connect_retries;
  return c;
}

EmbeddedServerOptions embedded_server_options(const Config& config, const CliOptions& cli,
                                              uint64_t node,
                                              std::vector<std::string>& route_problems) {
  EmbeddedServerOptions so;
  so.binary = config.nats.server_binary;
  so.server_name = fmt::format("harmonylite-{}", node);
  // Validated when the config was loaded; a bare IPv6 host here, brackets only in URLs.
  const auto bind = parse_host_port(config.nats.bind_address, true);
  if (!bind)
    throw Error(
        fmt::format("[nats] bind_address \"{}\" is not host:port", config.nats.bind_address));
  so.client_host = bind->host;
  so.client_port = bind->port;
  so.cluster_listen = cli.cluster_addr;
  // nats-server understands only nats:// routes: dns://name:port/ becomes one per address.
  so.routes = expand_routes(cli.cluster_peers, route_problems);
  so.leaf_remotes = expand_routes(cli.leaf_servers, route_problems);
  so.config_file = config.nats.server_config;
  so.store_dir = config.nats.store_dir.empty() ? config.db_path + "-nats" : config.nats.store_dir;
  so.user = config.nats.user_name;
  so.password = config.nats.user_password;
  so.cluster_user = config.nats.cluster_user;
  so.cluster_password = config.nats.cluster_password;
  so.cluster_insecure = config.nats.cluster_insecure;
  so.tls_ca_file = config.nats.tls_ca_file;
  so.tls_cert_file = config.nats.tls_cert_file;
  so.tls_key_file = config.nats.tls_key_file;
  so.tls_verify = config.nats.tls_verify;
  return so;
}

StreamSpec stream_spec(const Config& config, int shard) {
  StreamSpec spec;
  spec.name = stream_name(config, shard);
  spec.subject = subject_name(config, shard);
  spec.replicas = config.replication_log.replicas;
  spec.max_msgs = config.replication_log.max_entries;
  spec.max_age_ms = config.replication_log.max_age_ms;
  spec.duplicate_window_ms = config.replication_log.duplicate_window_ms;
  spec.update_existing = config.replication_log.update_existing;
  return spec;
}

}  // namespace harmony
