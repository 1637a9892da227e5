// Folding: turns the append-only change logs written by the triggers into row versions.
// Runs inside a write transaction of the replicator, before publishing and before applying
// remote changes, so every local change gets its version in commit order.
#pragma once
#include <cstdint>
#include <functional>
#include <vector>

#include "shared/capture.hpp"

namespace harmony {

struct FoldStats {
  int64_t keys = 0;          // keys whose version was bumped
  int64_t ignored_weak = 0;  // "might be replaced" notes whose row still exists
  int64_t null_keys = 0;     // rows with a NULL primary key value: cannot be replicated
};

// Folds every captured table's log. Reads and advances the clock kept in __harmony_meta.
// Each folded key gets version max(clock + 1, write_ms << 16, previous + 1) and dirty = 1, where
// write_ms is the latest ms logged for it, capped at the wall clock now; `deleted` says whether
// the row is gone now. Changes to rows with a NULL key are counted in __harmony_meta
// "null_key_changes" (harmony_status() reports them). Must be called inside a write transaction.
FoldStats fold_all(Db& db, const std::vector<CapturedTable>& tables, uint64_t node);

// What one fold carries from table to table: the clock it advances and the wall clock that caps
// logged times (read once, so every table of one fold is capped at the same instant).
struct FoldClock {
  int64_t clock = 0;   // the highest version issued or seen so far
  int64_t now_ms = 0;  // wall clock at the start of the fold, at most kMaxHlcMs
};
// The stored clock and the wall clock now: the start of a fold.
FoldClock start_fold(Db& db);

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
