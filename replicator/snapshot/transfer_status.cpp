// The process's snapshot transfer board (see transfer_status.hpp): a mutex-guarded record that
// writers update a few times per megabyte at most and the health endpoint reads.
#include "replicator/snapshot/transfer_status.hpp"

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <mutex>

namespace harmony {

namespace {

struct Board {
  std::mutex mu;
  std::string phase, step;
  uint64_t done = 0, total = 0;
  std::chrono::steady_clock::time_point step_started{};
};

Board& board() {
  static Board b;
  return b;
}

std::string phase_of_step(const std::string& step) {
  if (step.find("download") != std::string::npos) return "downloading";
  if (step.find("upload") != std::string::npos) return "uploading";
  return "copying";
}

}  // namespace

std::optional<SnapshotTransferStatus> snapshot_transfer_status() {
  Board& b = board();
  std::lock_guard lk(b.mu);
  if (b.phase.empty() && b.step.empty()) return std::nullopt;
  SnapshotTransferStatus s;
  s.phase = b.phase.empty() ? phase_of_step(b.step) : b.phase;
  s.step = b.step;
  s.done_bytes = b.done;
  s.total_bytes = b.total;
  if (!b.step.empty())
    s.step_seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - b.step_started).count();
  return s;
}

SnapshotPhase::SnapshotPhase(std::string phase) {
  Board& b = board();
  std::lock_guard lk(b.mu);
  b.phase = std::move(phase);
}

SnapshotPhase::~SnapshotPhase() {
  Board& b = board();
  std::lock_guard lk(b.mu);
  b.phase.clear();
}

void snapshot_step_begin(const std::string& step, uint64_t total_bytes) {
  Board& b = board();
  std::lock_guard lk(b.mu);
  b.step = step;
  b.done = 0;
  b.total = total_bytes;
  b.step_started = std::chrono::steady_clock::now();
}

void snapshot_step_progress(uint64_t done_bytes) {
  Board& b = board();
  std::lock_guard lk(b.mu);
  b.done = done_bytes;
}

void snapshot_step_end() {
  Board& b = board();
  std::lock_guard lk(b.mu);
  b.step.clear();
  b.done = b.total = 0;
}

double snapshot_test_rate_limit() {
  static const double limit = [] {
    const char* v = std::getenv("HARMONY_TEST_SNAPSHOT_MB_PER_S");
    return v ? std::max(0.0, std::atof(v)) : 0.0;
  }();
  return limit;
}

}  // namespace harmony
