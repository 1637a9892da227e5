// The cluster schema registry and the -schema-status commands.
//
// Registry: a JetStream KV bucket "<stream_prefix>-schema-registry" (TTL kRegistryTtl), key
// "node-<id>", value JSON {node_id, tables: {name: hash}, previous: {name: hash}, version,
// updated_at}. Each running node re-puts its entry every kRegistryRefresh and whenever its
// schema changes, so the bucket lists the nodes alive in the last few minutes (HarmonyLite put
// its entry once at boot, so it vanished 5 minutes later).
//
// -schema-status: this node's tables with schema hashes, previous hashes and capture state,
// read from the database only (works without NATS, and while the replicator runs).
// -schema-status-cluster: every registered node's hashes and a consistency report; exit 0 when
// every node has the same hash for every table, 1 otherwise.
#pragma once
#include <nats/nats.h>

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "replicator/common/stats.hpp"
#include "replicator/config/config.hpp"
#include "replicator/nats/nats_client.hpp"

namespace harmony {

inline constexpr auto kRegistryTtl = std::chrono::minutes(5);
inline constexpr auto kRegistryRefresh = std::chrono::minutes(1);

struct RegistryEntry {
  uint64_t node_id = 0;
  std::map<std::string, std::string> tables;    // table -> hash
  std::map<std::string, std::string> previous;  // table -> most recent previous hash
  std::string version;
  std::string updated_at;  // RFC 3339
};

nlohmann::json to_json(const RegistryEntry& e);
// Throws nlohmann::json::exception on malformed input.
RegistryEntry registry_entry_from_json(const nlohmann::json& j);
RegistryEntry make_registry_entry(uint64_t node_id,
                                  const std::map<std::string, TableSchemaState>& schema,
                                  int64_t now_ms);

struct ConsistencyReport {
  bool consistent = true;
  std::vector<std::string> findings;  // one line per difference
};
// Every table must exist on every node with one hash. A node whose hash is another node's
// previous hash is reported as a rolling upgrade in progress (still inconsistent).
ConsistencyReport check_consistency(const std::vector<RegistryEntry>& entries);

std::string registry_bucket(const Config& config);

// The KV bucket on a live connection. Creates the bucket on first put when missing.
class SchemaRegistry {
 public:
  SchemaRegistry(natsConnection* nc, std::string bucket, int replicas);
  ~SchemaRegistry();
  SchemaRegistry(const SchemaRegistry&) = delete;
  SchemaRegistry& operator=(const SchemaRegistry&) = delete;
  // Returns false with `error` set on failure (the caller retries later).
  bool put(const RegistryEntry& entry, std::string& error);
  // Every entry (malformed ones skipped with a note in `error`). nullopt when the bucket cannot
  // be read at all (`error` says why).
  std::optional<std::vector<RegistryEntry>> list(std::string& error);

 private:
  bool bind(bool create, std::string& error);
  JsCtxPtr js_;
  KvStorePtr kv_;  // bound lazily; reset to bind again after a failed put
  std::string bucket_;
  int replicas_;
};

// Commands (exit codes as main.cpp documents).
int run_schema_status(const Config& config);
int run_schema_status_cluster(const Config& config);

}  // namespace harmony
