// The replicator process from start-up to shutdown: database checks and capture, node id,
// embedded or external NATS, streams, the publisher and one consumer per shard, housekeeping,
// signals. main.cpp parses flags and config, then hands over to run_replicator().
#pragma once
#include <atomic>
#include <functional>
#include <string>

#include "replicator/config.hpp"
#include "replicator/flags.hpp"

namespace harmony {

// Test seam: `worker_started` is called after each worker thread starts, with its name
// ("publisher", "consumer <stream>", "snapshots", "monitor"). A hook that throws plays a start-up
// step failing while workers already run.
struct StartupHooks {
  std::function<void(const std::string& worker)> worker_started;
};

// Blocks until SIGINT/SIGTERM (or sleep_timeout); returns the process exit code.
int run_replicator(const Config& config, const CliOptions& cli, const StartupHooks& hooks = {});

// -cleanup: removes every object harmonylite created in the database. Refuses (exit 1) while
// changes are unpublished unless `force`, and while a replicator runs on the database.
int run_cleanup(const Config& config, bool force);

// Stream and subject names for shard n (1-based): "<prefix>-<n>".
std::string stream_name(const Config& config, int shard);
std::string subject_name(const Config& config, int shard);
// The shard this node publishes to: stable per node, spreads nodes over shards.
int publish_shard(const Config& config, uint64_t node);

// Information a running replicator leaves in its database so that other invocations
// (-save-snapshot, -cleanup) can find it.
struct RuntimeInfo {
  int64_t pid = 0;
  std::string nats_url;
};
std::optional<RuntimeInfo> running_replicator(const std::string& db_path);

}  // namespace harmony
