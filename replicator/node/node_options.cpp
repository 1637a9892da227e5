// Config -> option structs of a node's parts (see node_options.hpp).
#include "replicator/node/node_options.hpp"

#include <fmt/format.h>

#include "replicator/nats/nats_config.hpp"

namespace harmony {

namespace {
// The publisher's fallback wake-up when polling_interval is 0 (off) and no file event comes.
constexpr auto kDefaultPollInterval = std::chrono::milliseconds(1000);
}  // namespace

PublisherOptions publisher_options(const Config& config, uint64_t node) {
  PublisherOptions po;
  po.db_path = config.db_path;
  po.node = node;
  po.compress = config.replication_log.compress;
  po.batch_rows = static_cast<size_t>(config.scan_max_changes);
  po.poll_interval = config.polling_interval_ms > 0
                         ? std::chrono::milliseconds(config.polling_interval_ms)
                         : kDefaultPollInterval;
  po.selection = table_selection(config);
  po.publish_enabled = config.publish;
  po.max_clock_drift_ms = config.max_clock_drift_ms;
  return po;
}

ConsumerOptions consumer_options(const Config& config, int shard, uint64_t node,
                                 std::atomic<uint64_t>& schema_generation) {
  ConsumerOptions co;
  co.db_path = config.db_path;
  co.stream = stream_name(config, shard);
  co.node = node;
  co.max_rows_per_txn = static_cast<size_t>(config.apply_batch_rows);
  co.max_held_rows = config.max_held_rows;
  co.max_held_bytes = config.max_held_bytes;
  co.conflict_limits = config.conflicts;
  co.schema_generation = &schema_generation;
  co.max_clock_drift_ms = config.max_clock_drift_ms;
  co.skip_gaps = config.anti_entropy.interval_ms > 0;
  return co;
}

}  // namespace harmony
