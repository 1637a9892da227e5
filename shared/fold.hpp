// Folding: turns the append-only change logs written by the triggers into row versions.
// Runs inside a write transaction of the replicator, before publishing and before applying
// remote changes, so every local change gets its version in commit order.
#pragma once
#include <atomic>
#include <cstdint>
#include <functional>
#include <vector>

#include "shared/capture.hpp"
#include "shared/hlc.hpp"

namespace harmony {

struct FoldStats {
  int64_t keys = 0;          // keys whose version was bumped
  int64_t ignored_weak = 0;  // "might be replaced" notes whose row still exists
  int64_t null_keys = 0;     // rows with a NULL primary key value: cannot be replicated
  // Versions issued beyond wall clock + drift bound: only a row whose previous version already
  // was (a new version must exceed it).
  int64_t beyond_bound = 0;
  int64_t clock_lowered_ms = 0;  // stored clock - wall clock when it was lowered (0: it was not)
};

// What folds in this process did about the drift bound, for the replicator's log, metrics and
// health (a fold runs in the publisher, the consumers and a restore; none of them logs it).
struct ClockBoundEvents {
  std::atomic<int64_t> clock_lowered{0};    // folds that found the stored clock beyond it
  std::atomic<int64_t> last_lowered_ms{0};  // by how much, the last time
  std::atomic<int64_t> versions_beyond{0};  // versions issued beyond it (FoldStats)
};
ClockBoundEvents& clock_bound_events();

// Which captured tables have anything in their change log, asked with one prepared statement
// per kTablesPerStatement tables. A fold prepares seven statements per table it folds (~0.5M
// instructions each time, whether or not the log holds anything), and the consumer folds at the
// start of every apply transaction: with 1-row transactions that was 87 % of the apply's
// instructions (docs/performance.md). Keep one per schema where folds are frequent (the Applier).
class LogProbe {
 public:
  // SQLite's default SQLITE_MAX_COLUMN is 2000: one result column per table, well below it.
  static constexpr size_t kTablesPerStatement = 500;
  LogProbe(Db& db, const std::vector<CapturedTable>& tables);
  // One flag per table of the constructor's list: its log is not empty.
  std::vector<bool> logged();

 private:
  std::vector<Stmt> statements_;
  size_t tables_ = 0;
};

// Folds every captured table's log. Reads and advances the clock kept in __harmony_meta.
// Each folded key gets version max(clock + 1, write_ms << 16, previous + 1) and dirty = 1, where
// write_ms is the latest ms logged for it, capped at the wall clock now; `deleted` says whether
// the row is gone now. Changes to rows with a NULL key are counted in __harmony_meta
// "null_key_changes" (harmony_status() reports them). Must be called inside a write transaction.
// `max_drift_ms` is the drift bound (config max_clock_drift): a stored clock beyond wall clock +
// bound is lowered to it first (stored so), and no version beyond it is issued except to exceed
// a row's own previous version.
// `probe`: a LogProbe of the same `tables`, kept by the caller (none: one is prepared here).
FoldStats fold_all(Db& db, const std::vector<CapturedTable>& tables, uint64_t node,
                   int64_t max_drift_ms = kDefaultMaxClockDriftMs, LogProbe* probe = nullptr);

// What one fold carries from table to table: the clock it advances and the wall clock that caps
// logged times (read once, so every table of one fold is capped at the same instant).
struct FoldClock {
  int64_t clock = 0;       // the highest version issued or seen so far, at most `limit`
  int64_t now_ms = 0;      // wall clock at the start of the fold, at most kMaxHlcMs
  int64_t limit = 0;       // hlc_issue_limit(now_ms, drift bound)
  int64_t lowered_ms = 0;  // stored clock - wall clock, when beyond `limit` (0: it was not)
};
// The stored clock (lowered to the limit when beyond it) and the wall clock now: a fold's start.
FoldClock start_fold(Db& db, int64_t max_drift_ms = kDefaultMaxClockDriftMs);

// One key of a change log as folding decides it.
struct FoldedKey {
  std::vector<Value> key;  // in the table's primary key order
  int64_t version = 0;     // next_version(...) of the clock, the logged ms and the row's version
  bool deleted = false;    // the row is gone now
};

// The fold rule for one table, reading only: one entry per key in commit order; keys with a NULL
// value and "might be replaced" notes whose row still exists are skipped (counted in `stats`);
// every other key gets its version from next_version and advances `clock`. fold_all writes what
// `emit` receives; a restore reads pending changes through it without writing. Returns the
// number of log entries read (skipped ones included).
int64_t fold_log(Db& db, const CapturedTable& t, FoldClock& clock, FoldStats& stats,
                 const std::function<void(const FoldedKey&)>& emit);

// SQL fragment "k1 = ?N AND k2 = ?N+1 ..." for key lookups, with parameters from `first`.
std::string key_match(const std::vector<std::string>& columns, int first);
std::vector<std::string> quoted_pk(const TableInfo& info);  // "id", "x" in PK order

}  // namespace harmony
