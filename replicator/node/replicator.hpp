// The replicator process from start-up to shutdown (signals around a Node, node/node.hpp) and
// -cleanup. main.cpp parses flags and config, then hands over to run_replicator().
#pragma once
#include <atomic>
#include <functional>
#include <string>

#include "replicator/config/config.hpp"
#include "replicator/config/flags.hpp"

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

}  // namespace harmony
