// How the replicator's Config becomes the option structs of the pipeline workers a node runs:
// the publisher and the consumers (the NATS side is in nats/nats_config.hpp). Pure functions,
// so what each config key turns into can be unit-tested without starting anything.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "replicator/common/capture_sync.hpp"
#include "replicator/config/config.hpp"
#include "replicator/publish/publisher.hpp"
#include "replicator/receive/consumer.hpp"

namespace harmony {

PublisherOptions publisher_options(const Config& config, uint64_t node);

// The consumer of shard n. `schema_generation` must outlive the consumer.
ConsumerOptions consumer_options(const Config& config, int shard, uint64_t node,
                                 std::atomic<uint64_t>& schema_generation);

}  // namespace harmony
