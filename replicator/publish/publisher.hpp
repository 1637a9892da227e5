// The publisher: wakes on database writes, collects every pending change into one batch (a
// consistent snapshot, so source transactions stay whole), ships it through a BatchTransport,
// and clears the outbox only after every part was acknowledged (ack-before-clear). On failure
// the same parts (same Nats-Msg-Ids) are retried with backoff: nothing is dropped.
#pragma once
#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "replicator/common/capture_sync.hpp"
#include "replicator/common/stats.hpp"
#include "replicator/wire/message_auth.hpp"
#include "replicator/wire/wire.hpp"

namespace harmony {

// Seam between the publisher and JetStream (an in-memory fake in unit tests).
class BatchTransport {
 public:
  virtual ~BatchTransport() = default;
  // Publishes every part; returns true once all are acknowledged. On false, `error` says why;
  // the caller retries the same parts later.
  virtual bool publish(const std::vector<OutgoingPart>& parts, uint64_t origin, uint64_t batch,
                       std::string& error) = 0;
};

struct PublisherOptions {
  std::string db_path;
  uint64_t node = 0;
  bool compress = true;
  size_t batch_rows = 100000;
  size_t max_part_bytes = kDefaultMaxPartBytes;
  std::chrono::milliseconds poll_interval{1000};  // fallback wake-up when no file event comes
  TableSelection selection;                       // to keep capture current after DDL
  bool publish_enabled = true;  // false: capture continues, nothing is sent (rows stay pending)
  // [nats] cluster_key_file: every part carries its Harmony-Auth tag (nullptr: none).
  std::shared_ptr<const ClusterKey> cluster_key;
  int64_t max_clock_drift_ms = kDefaultMaxClockDriftMs;  // config max_clock_drift, for the fold
};

class Publisher {
 public:
  Publisher(PublisherOptions options, BatchTransport& transport, ReplicatorStats& stats);
  ~Publisher();
  // Thread body: returns when `stop` becomes true (after finishing the batch in hand).
  void run(const std::atomic<bool>& stop);
  void wake();
  // Incremented whenever capture was reconciled after DDL (consumers rebuild their appliers).
  std::atomic<uint64_t>& schema_generation() { return schema_generation_; }

 private:
  struct State;
  PublisherOptions options_;
  BatchTransport& transport_;
  ReplicatorStats& stats_;
  std::unique_ptr<State> state_;
  std::atomic<uint64_t> schema_generation_{0};
};

}  // namespace harmony
