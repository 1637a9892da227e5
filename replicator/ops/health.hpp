// The health endpoint's answer ([health_check]): HTTP 200 when the database is reachable, NATS
// is connected and capture is installed, 503 otherwise; a JSON body with HarmonyLite's fields
// (status, node_id, uptime_seconds, db_connected, nats_connected, cdc_installed,
// tables_tracked, last_replicated_event_timestamp, last_published_event_timestamp, version)
// plus ours: per-stream position and lag, pending changes, dead letters, schema status, the
// embedded nats-server. Timestamps are this node's own (RFC 3339, null when never), unlike
// HarmonyLite's, which were the stream's last message for every node. While a snapshot is
// restored at start-up or saved, "snapshot" shows the phase, percent, MB/s and ETA; a start-up
// restore answers 503 with status "starting".
#pragma once
#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "replicator/common/stats.hpp"
#include "replicator/snapshot/transfer_status.hpp"
#include "shared/sqlite_db.hpp"

namespace harmony {

// What a live probe of the database found.
struct DbProbe {
  bool db_connected = false;
  bool cdc_installed = false;  // at least one table captured, every captured table's triggers
  int64_t tables_tracked = 0;
  // Application triggers that make a replicated table diverge (shared/app_triggers.hpp).
  std::vector<std::string> app_trigger_warnings;
};

struct HealthAnswer {
  bool healthy = false;
  nlohmann::json body;
};

// Pure: builds the answer from counters, a probe and the snapshot transfer under way, if any
// (unit-testable).
HealthAnswer health_report(const ReplicatorStats& stats, const DbProbe& probe, uint64_t node_id,
                           bool detailed, int64_t now_ms,
                           const std::optional<SnapshotTransferStatus>& transfer = std::nullopt);

// The transfer's fields of the health answer: phase, step, percent, done/total bytes, MB/s and
// ETA (null when unknown).
nlohmann::json snapshot_transfer_json(const SnapshotTransferStatus& t);

// "2025-05-01T12:00:00.123Z", or null for 0.
nlohmann::json rfc3339_or_null(int64_t unix_ms);

// Probes the database through its own read-only connection (opened on first use) on every
// request, as HarmonyLite did; thread-safe.
class HealthChecker {
 public:
  HealthChecker(std::string db_path, uint64_t node_id, const ReplicatorStats& stats);
  ~HealthChecker();
  HealthAnswer check(bool detailed);
  DbProbe probe();

 private:
  std::string db_path_;
  uint64_t node_id_;
  const ReplicatorStats& stats_;
  std::mutex mu_;
  std::optional<Db> db_;
};

}  // namespace harmony
