// What the [nats] and [replication_log] sections of the config (and the cluster flags) turn into
// on the NATS side: connect options, the embedded nats-server's options, stream and subject names
// per shard, stream specs, and the shard a node publishes to. Pure functions, so what each key
// turns into can be unit-tested without starting anything.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "replicator/config/config.hpp"
#include "replicator/config/flags.hpp"
#include "replicator/nats/nats_client.hpp"
#include "replicator/nats/nats_server.hpp"

namespace harmony {

// Stream and subject names for shard n (1-based): "<prefix>-<n>".
std::string stream_name(const Config& config, int shard);
std::string subject_name(const Config& config, int shard);
// The shard this node publishes to: stable per node, spreads nodes over shards.
int publish_shard(const Config& config, uint64_t node);

// Stream of shard n (1-based) as [replication_log] describes it.
StreamSpec stream_spec(const Config& config, int shard);

// Credentials, TLS and reconnect settings of [nats]; urls are [nats] urls (empty when the node
// runs an embedded server: its URL is known only once it started).
ConnectOptions connect_options(const Config& config, uint64_t node);

// The embedded nats-server for a node without [nats] urls: bind_address, cluster and leaf flags
// (dns:// routes expanded; the ones that do not resolve are reported in `route_problems`).
EmbeddedServerOptions embedded_server_options(const Config& config, const CliOptions& cli,
                                              uint64_t node,
                                              std::vector<std::string>& route_problems);

}  // namespace harmony
