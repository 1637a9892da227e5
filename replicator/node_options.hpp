// How the replicator's Config (and command-line flags) become the option structs of the parts a
// node is made of: NATS connection, embedded nats-server, streams, publisher, consumers. Pure
// functions, so what each config key turns into can be unit-tested without starting anything.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "replicator/capture_sync.hpp"
#include "replicator/config.hpp"
#include "replicator/consumer.hpp"
#include "replicator/flags.hpp"
#include "replicator/nats_client.hpp"
#include "replicator/nats_server.hpp"
#include "replicator/publisher.hpp"

namespace harmony {

TableSelection table_selection(const Config& config);

// Credentials, TLS and reconnect settings of [nats]; urls are [nats] urls (empty when the node
// runs an embedded server: its URL is known only once it started).
ConnectOptions connect_options(const Config& config, uint64_t node);

// The embedded nats-server for a node without [nats] urls: bind_address, cluster and leaf flags
// (dns:// routes expanded; the ones that do not resolve are reported in `route_problems`).
EmbeddedServerOptions embedded_server_options(const Config& config, const CliOptions& cli,
                                              uint64_t node,
                                              std::vector<std::string>& route_problems);

// Stream of shard n (1-based) as [replication_log] describes it.
StreamSpec stream_spec(const Config& config, int shard);

PublisherOptions publisher_options(const Config& config, uint64_t node);

// The consumer of shard n. `selection` and `schema_generation` must outlive the consumer.
ConsumerOptions consumer_options(const Config& config, int shard, uint64_t node,
                                 const TableSelection& selection,
                                 std::atomic<uint64_t>& schema_generation);

}  // namespace harmony
