// The replica's side of the database: applying received batches with last-writer-wins per row,
// tombstones, the HLC receive rule, dead letters, and stream positions. All of it happens inside
// one write transaction opened by the caller, with capture muted.
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "shared/batch.hpp"
#include "shared/capture.hpp"
#include "shared/column_history.hpp"
#include "shared/conflict_log.hpp"
#include "shared/content_digest.hpp"
#include "shared/fold.hpp"
#include "shared/held.hpp"
#include "shared/hlc.hpp"
#include "shared/meta_store.hpp"

namespace harmony {

struct ApplyStats {
  int64_t applied = 0;          // rows written (upserts and deletes)
  int64_t skipped_older = 0;    // rows whose local version was newer or equal
  int64_t dead_lettered = 0;    // rows or batches moved to __harmony_dead_letters (malformed)
  int64_t held = 0;             // rows that cannot be applied yet (HeldRows)
  int64_t values_left_out = 0;  // values of columns this node has dropped
  int64_t conflicts = 0;        // rows recorded in the conflict log (shared/conflict_log.hpp)
  int64_t unique_losers = 0;    // rows deleted because they lost a UNIQUE race
  int64_t max_hlc = 0;          // highest version seen in the batches (for delay metrics)
  ApplyStats& operator+=(const ApplyStats& o);
};

// Where a batch came from, recorded with dead letters.
struct MessageRef {
  std::string stream;
  uint64_t seq = 0;
};

// The rows of one table entry of a batch that cannot be applied now: the caller keeps them
// (__harmony_held) and offers them again later. Never dropped: only bytes that are malformed
// (a key that does not match its row, a NULL key, a column named twice) are dead-lettered.
struct HeldRows {
  size_t table_entry = 0;
  std::vector<size_t> rows;  // indexes into Batch::rows, in order
  HoldKind kind = HoldKind::Table;
  std::string reason;  // why the first of them waits
};

class Applier {
 public:
  // `tables` is the local registry of captured tables (refresh the Applier after DDL).
  // `max_drift_ms` is the drift bound (config max_clock_drift): rows further ahead of the wall
  // clock are held, and local folds issue no fresh version beyond it.
  Applier(Db& db, uint64_t self_node, std::vector<CapturedTable> tables,
          int64_t max_drift_ms = kDefaultMaxClockDriftMs);
  ~Applier();
  Applier(const Applier&) = delete;
  Applier& operator=(const Applier&) = delete;

  // Inside the caller's write transaction: mute capture and fold local changes first, so local
  // pending rows already carry their versions when remote rows are compared against them.
  void begin();
  // Rows that cannot be applied now are added to `held` (one entry per table entry).
  ApplyStats apply(const Batch& batch, const MessageRef& where, std::vector<HeldRows>& held);
  // Records bytes that cannot be decoded or a row that is malformed (shared/dead_letters.hpp;
  // the node prunes the table to its configured bounds).
  void dead_letter(const MessageRef& where, uint64_t origin, uint64_t batch_id,
                   const std::string& table, const std::string& reason, std::string_view payload);
  void set_position(const std::string& stream, uint64_t seq);
  // Stores the advanced clock and unmutes capture. The caller then commits.
  void finish();

  // The conflict log's bounds ([conflicts] in the config), applied in finish().
  void set_conflict_limits(const ConflictLimits& limits) { conflict_limits_ = limits; }

  const std::vector<CapturedTable>& tables() const { return tables_; }
  // Rows recorded in the conflict log by the last begin()..finish(), then 0: the caller counts
  // them once its transaction committed (a retried transaction starts again at begin()).
  int64_t take_conflicts() { return std::exchange(conflicts_in_tx_, 0); }
  // Tombstone GC (docs/anti-entropy.md "Tombstones", rule 6): by default a row below the
  // horizon (__harmony_meta "tombstone_horizon", read in begin()) for a key without a {rows}
  // entry is skipped as if its pruned tombstone were there. Anti-entropy's repairs opt out: their
  // own rules decide what is fetched below the horizon.
  void ignore_tombstone_horizon() { use_horizon_ = false; }

 private:
  struct TableStatements;
  struct PendingRow;
  // What the statements of one received table entry are prepared for, and so the cache key.
  // Compared field by field: names are any bytes a peer sends, so no separator joins them.
  struct Layout {
    std::string name;
    std::vector<std::string> columns;
    std::vector<std::string> key_columns;
  };
  struct LayoutLess {
    using is_transparent = void;  // looks up a BatchTable without copying it into a Layout
    template <class A, class B>
    bool operator()(const A& a, const B& b) const {
      return std::tie(a.name, a.columns, a.key_columns) <
             std::tie(b.name, b.columns, b.key_columns);
    }
  };
  // Why a table entry's rows cannot be applied: held (with its kind) or, without one, malformed.
  struct Refusal {
    std::string reason;
    std::optional<HoldKind> hold;
  };
  TableStatements* statements_for(const BatchTable& bt, Refusal& why_not);
  TableStatements* prepare_statements(const BatchTable& bt, Refusal& why_not);
  void remove_row(const PendingRow& p);
  void write_row(const PendingRow& p);
  void record_row(const PendingRow& p, uint64_t origin);
  // Anti-entropy: what {rows} holds for `key` before a write, when a digest is kept.
  std::optional<RowVersion> digest_before(TableStatements& st, const std::vector<Value>& key);
  // record_row, then the conflict the row's win makes (if any), counted in `stats`.
  void commit_row(const PendingRow& p, uint64_t origin, ApplyStats& stats);
  // The current values of the local row at `key` as a JSON object, "" when there is none.
  std::string local_values(TableStatements& st, const std::vector<Value>& key);
  // Marks `key` deleted at a fresh version of this node, dirty, so the delete is published.
  void publish_delete(TableStatements& st, const std::vector<Value>& key);
  // A row no order of the batch can write because a local row holds one of its UNIQUE values:
  // settles the race (see the rule in apply.cpp). False: no rule applies, the row stays held.
  bool settle_unique_race(PendingRow& p, uint64_t origin, ApplyStats& stats);
  // Rows that hit a UNIQUE index in the first pass: retried in order, then as one group.
  // Writes `rows` one by one, again while that helps (a row freeing the value another needs);
  // leaves in `rows` those that still fail, each with its error.
  void retry_chains(std::vector<PendingRow>& rows, uint64_t origin, ApplyStats& stats);
  void apply_deferred(std::vector<PendingRow>& deferred, const Batch& batch,
                      std::vector<HeldRows>& held, ApplyStats& stats);

  Db& db_;
  uint64_t self_;
  std::vector<CapturedTable> tables_;
  std::map<int64_t, ColumnHistory> history_;  // by table id, read at the first begin()
  bool history_loaded_ = false;
  std::map<Layout, std::unique_ptr<TableStatements>, LayoutLess> cache_;
  int64_t clock_ = 0;
  int64_t max_drift_ms_ = kDefaultMaxClockDriftMs;
  bool open_ = false;
  bool conflicts_recorded_ = false;  // since begin(): prune the log in finish()
  ConflictLimits conflict_limits_;
  int64_t conflicts_in_tx_ = 0;  // rows recorded since begin()
  bool use_horizon_ = true;
  int64_t horizon_ = 0;  // tombstone GC's active horizon, read in begin() (0: none)
  std::unique_ptr<DigestUpdater> digest_;  // anti-entropy (shared/content_digest.hpp)
  // Which logs hold local changes, for the fold at each begin() (prepared once per schema).
  std::unique_ptr<LogProbe> log_probe_;
  Stmt mute_, unmute_;  // capture off and on again (__harmony_mute)
};

}  // namespace harmony
