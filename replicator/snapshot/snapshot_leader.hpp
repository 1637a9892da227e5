// Which node takes the periodic snapshots: a lease in a JetStream KV bucket. The bucket's TTL
// (leader_ttl) expires a lease its holder stopped refreshing; taking and refreshing use the
// KV's compare-and-set (kvStore_Create, kvStore_Update with the last revision), so the server
// decides and no wall clocks of different nodes are ever compared.
#pragma once
#include <chrono>
#include <cstdint>
#include <string>

#include "replicator/nats/nats_client.hpp"

namespace harmony {

class SnapshotLeader {
 public:
  // Binds to (or creates) the KV bucket `bucket` with TTL `ttl_ms` and `replicas` copies.
  // Throws Error when the bucket cannot be created or read.
  SnapshotLeader(NatsConnection& conn, std::string bucket, uint64_t node, int64_t ttl_ms,
                 int replicas);
  ~SnapshotLeader();
  SnapshotLeader(const SnapshotLeader&) = delete;
  SnapshotLeader& operator=(const SnapshotLeader&) = delete;

  // Takes the lease when it is free, refreshes it when held and a third of the TTL passed.
  // Call at least every ttl/3. Returns whether this node holds the lease now.
  bool tick();
  bool is_leader() const { return leader_; }
  // Gives the lease up (deletes the key if we still hold it), so another node can take over
  // without waiting for the TTL.
  void release();

  static constexpr const char* kKey = "snapshot-leader";

 private:
  KvStorePtr kv_;
  std::string bucket_;
  std::string node_;
  std::chrono::milliseconds ttl_;
  bool leader_ = false;
  uint64_t revision_ = 0;
  std::chrono::steady_clock::time_point refreshed_{};
};

}  // namespace harmony
