// The soak verdict: reads every node's final content, row versions and write log, and decides
// whether the nodes converged and whether any committed write was lost.
//
// Rules, per key (table + primary key), using only what the harness can know for sure:
// - Every node holds the same content (table_checksum per table) and the same row versions
//   (__harmony_rows_<id>: version, node, tombstone); nothing is left dirty or pending.
// - Writes of one node to one key are ordered by that node's soak_log (commit order), so their
//   versions increase: only a node's *last* write to a key can be the final state. The winning
//   version names its node m; the final state must be m's last write to the key: the row with
//   that write id (and the values that write set), or absent when it was a delete.
// - No committed write was lost: every node's last write to the key had a version of at least
//   its wall-clock time (the harness notes the time before the transaction began), so the
//   winner's version must be at least that too.
// - A write id from a transaction or savepoint that rolled back never appears.
// - The schema may have changed during the run (rolling ADD / RENAME / DROP COLUMN, CREATE
//   TABLE): every node must end with the same tables and columns, and "the final row holds what
//   its write set" is checked for the columns that survive, under their final names (an added
//   column keeps its logical name `x<N>` through renames; a dropped one is no longer checked).
// - A node whose replicator ran with its clock behind (ClockSkew) issues versions below the
//   wall-clock time of its writes: for writes of that window the bound is relaxed accordingly
//   (last-writer-wins with a slow clock loses concurrent writes by design, it loses no row).
#pragma once
#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "shared/value.hpp"

namespace harmony::test {

using SoakKey = std::pair<std::string, std::string>;  // table, canonical key

struct SoakNodeState {
  struct Row {
    std::string wid;
    std::map<std::string, Value> values;
  };
  struct RowVersion {
    int64_t hlc = 0;
    int64_t node = 0;
    bool deleted = false;
    bool dirty = false;
  };
  struct Event {
    int64_t seq = 0;
    std::string wid;
    std::string op;  // "U" or "D"
    int64_t t_ms = 0;
    int64_t writer = 0;
  };
  std::map<std::string, std::string> checksums;  // table -> table_checksum ("absent")
  std::map<std::string, std::string> columns;    // table -> its column names, in order
  std::map<SoakKey, Row> rows;
  std::map<SoakKey, RowVersion> versions;
  std::map<SoakKey, std::vector<Event>> events;  // this node's committed writes
  int64_t log_lines = 0;
  int64_t pending = 0;
  int64_t held = 0;  // rows in __harmony_held (waiting for a schema, a table or a clock)
  // Tombstone GC's active horizon (__harmony_meta 'tombstone_horizon', 0: none): deletes with a
  // version below it may have been pruned (docs/anti-entropy.md "Tombstones").
  int64_t tombstone_horizon = 0;
  int64_t dead_letters = 0;
  std::vector<std::string> dead_letter_samples;
};

// Reads a node's database (read-only; retries while it is busy).
SoakNodeState read_node_state(const std::string& db_path);
// Cheap fingerprint for "converged yet?": checksums, row versions, pending count.
std::string convergence_fingerprint(const std::string& db_path, int64_t* pending = nullptr);

struct SoakViolation {
  int node = 0;  // 1-based node whose final state breaks the rule
  SoakKey key;
  std::string what;
  std::string history;
};

struct SoakCheckResult {
  int nodes_diverged = 0;
  std::vector<std::string> divergence;  // what differs, a few lines
  std::vector<SoakViolation> violations;
  int64_t rows_lost = 0;  // distinct keys with a violation
  // Keys absent on a node with no version, accepted as deletes pruned below its horizon.
  int64_t pruned_deletes = 0;
  int64_t keys_checked = 0;
  int64_t writes_logged = 0;  // committed write lines over all nodes
  int64_t dead_letters = 0;
  int64_t pending = 0;
  int64_t held = 0;
  bool ok() const {
    return nodes_diverged == 0 && violations.empty() && dead_letters == 0 && pending == 0 &&
           held == 0;
  }
};

using ExpectedValues =
    std::unordered_map<std::string, std::vector<std::pair<std::string, uint64_t>>>;

// A time when node `node` (1-based) issued versions with its clock `offset_ms` behind (< 0).
struct SlowClockWindow {
  int node = 0;
  int64_t from_ms = 0, to_ms = 0;  // wall-clock ms of the writes it may have versioned
  int64_t offset_ms = 0;
};

SoakCheckResult check_soak(const std::vector<SoakNodeState>& nodes, const ExpectedValues& expected,
                           const std::set<std::string>& not_committed,
                           const std::vector<SlowClockWindow>& slow_clocks = {});

std::string describe_key(const SoakKey& key);

}  // namespace harmony::test
