// Logging setup for the replicator: spdlog to stderr, "console" (human) or "json" (one JSON
// object per line), debug level when verbose, and this node's id on every line.
#pragma once
#include <cstdint>
#include <string>

namespace harmony {

// May be called again (e.g. once the node id is known).
void setup_logging(bool verbose, const std::string& format, uint64_t node_id);

}  // namespace harmony
