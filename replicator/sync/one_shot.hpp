// The way into the cluster for a one-shot command that asks the nodes over the sync subjects
// (-verify, -status): this node's id, a NATS connection ([nats] urls, else the embedded server of
// the replicator running on this database) and the anti-entropy options (subjects, cluster key).
#pragma once
#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "replicator/config/config.hpp"
#include "replicator/nats/nats_client.hpp"
#include "replicator/sync/anti_entropy.hpp"

namespace harmony {

struct OneShotSync {
  uint64_t node = 0;
  std::unique_ptr<NatsConnection> conn;
  AntiEntropyOptions options;
};

// nullopt (after logging why, naming `flag` and what it needs NATS for) when no NATS server can
// be named: the command then exits 2. Throws what connecting or loading the cluster key throws.
std::optional<OneShotSync> connect_one_shot(const Config& config, const std::string& flag,
                                            const std::string& needs_nats_for);

}  // namespace harmony
