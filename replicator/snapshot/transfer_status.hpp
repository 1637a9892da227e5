// What snapshot transfer this process runs right now, for /health: a start-up restore or a save
// (the phase) and the step under way (a download, an upload, the copy into the database) with
// its bytes. Fed by TransferProgress (object_store.hpp) and by restore_into's copy; read by the
// health endpoint from another thread. One process serves one database, so one board per process.
#pragma once
#include <cstdint>
#include <optional>
#include <string>

namespace harmony {

struct SnapshotTransferStatus {
  std::string phase;  // "restoring", "saving"; else from the step: "downloading", "uploading"
  std::string
      step;  // e.g. "snapshot download from harmonylite-changes-snapshot-store"; "" between steps
  uint64_t done_bytes = 0;
  uint64_t total_bytes = 0;  // 0 when unknown
  double step_seconds = 0;   // since the step began
};

// The transfer under way, nullopt when none.
std::optional<SnapshotTransferStatus> snapshot_transfer_status();

// Marks this process as restoring or saving a snapshot while it lives.
class SnapshotPhase {
 public:
  explicit SnapshotPhase(std::string phase);
  ~SnapshotPhase();
  SnapshotPhase(const SnapshotPhase&) = delete;
  SnapshotPhase& operator=(const SnapshotPhase&) = delete;
};

// One step's bytes (used by TransferProgress and the restore's copy).
void snapshot_step_begin(const std::string& step, uint64_t total_bytes);
void snapshot_step_progress(uint64_t done_bytes);
void snapshot_step_end();

// Test-only: a transfer rate in MB/s that TransferProgress holds transfers to, from the
// environment variable HARMONY_TEST_SNAPSHOT_MB_PER_S (0, the default: no limit). Lets an
// integration test watch a restore of a few MB move through /health without a 10 GB file.
double snapshot_test_rate_limit();

}  // namespace harmony
