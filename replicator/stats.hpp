// Counters shared by the publisher, the consumers, the health endpoint and the metrics
// exporter. Plain atomics: writers never block on readers.
#pragma once
#include <atomic>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>

namespace harmony {

struct StreamProgress {
  uint64_t position = 0;        // last sequence applied (stored in the database)
  uint64_t last_seq = 0;        // last sequence known in the stream
  int64_t last_applied_ms = 0;  // wall clock of the last apply on this node
  int64_t delay_ms = 0;         // origin write -> local apply, last batch
  bool paused = false;
  std::string pause_reason;
};

struct ReplicatorStats {
  std::atomic<int64_t> rows_published{0}, batches_published{0}, publish_failures{0};
  std::atomic<int64_t> rows_applied{0}, rows_skipped_older{0}, rows_dead_lettered{0};
  std::atomic<int64_t> batches_applied{0}, batches_dead_lettered{0}, batches_skipped_own{0};
  std::atomic<int64_t> pending_rows{0};
  std::atomic<int64_t> last_published_ms{0}, last_applied_ms{0};
  std::atomic<bool> nats_connected{false}, db_ok{false}, capture_installed{false};
  std::atomic<int64_t> tables_tracked{0};

  void set_stream(const std::string& stream, const StreamProgress& p) {
    std::lock_guard<std::mutex> lock(mu_);
    streams_[stream] = p;
  }
  std::map<std::string, StreamProgress> streams() const {
    std::lock_guard<std::mutex> lock(mu_);
    return streams_;
  }

 private:
  mutable std::mutex mu_;
  std::map<std::string, StreamProgress> streams_;
};

}  // namespace harmony
