// The conflict log, __harmony_conflicts: what last-writer-wins overwrote, so it is never lost
// invisibly. This file owns the decision of which pairs of versions count as concurrent, the
// record format (key and values as JSON text) and the table's bounds. The Applier
// (shared/apply.cpp) decides when to record; this module only writes, reads and prunes.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "shared/hlc.hpp"
#include "shared/sqlite_db.hpp"
#include "shared/value.hpp"

namespace harmony {

// Retention: the log is for a person to read after the fact, not an archive. 10,000 rows hold
// hours of a hot conflict loop yet stay a few MB; 30 days covers a holiday between looks.
inline constexpr int64_t kMaxConflictRows = 10'000;
inline constexpr int64_t kMaxConflictAgeMs = 30LL * 24 * 3600 * 1000;
// The same, as configured ([conflicts] max_rows, max_age; replicator/config/config.hpp).
struct ConflictLimits {
  int64_t max_rows = kMaxConflictRows;
  int64_t max_age_ms = kMaxConflictAgeMs;  // 0 = no age limit
};
// Two versions issued this close together (physical parts of their HLCs, ms) by different
// nodes are taken as concurrent even when the local one was already acknowledged: in a healthy
// cluster a write reaches the other nodes within milliseconds, so the remote writer most likely
// had not seen ours yet; 10 s also covers a reconnect. A person rarely reads a row on one node
// and deliberately rewrites it on another faster than that.
inline constexpr int64_t kConcurrentWithinMs = 10'000;

enum class ConflictKind {
  Overwritten,  // a remote write replaced this node's concurrent change (or its concurrent insert
                // of the same primary key: both inserted, the other one won)
  Removed,      // a remote delete removed this node's concurrent change
  Discarded,    // this node's concurrent change is newer: the remote change lost (its values)
  Unique,       // the row lost a UNIQUE race against another row and was deleted everywhere
};
const char* to_string(ConflictKind kind);

// What this node knows of the version it holds for a row.
struct LocalVersion {
  Version version;
  bool dirty = false;    // not yet acknowledged by JetStream: no other node can have seen it
  bool deleted = false;  // a tombstone
};

// Whether `local` (held here) and `incoming` (from node `incoming.node`) are concurrent writes
// of one row, i.e. neither writer had seen the other's version. Versions carry no causal history
// (no vector clock, no "replaces version X" on the wire), so this approximates:
//  - the local version must be this node's own write (local.version.node == self): a version
//    this node merely relayed from a third node is that node's conflict to record;
//  - the incoming one must come from another node (incoming.node != self);
//  - and the remote writer cannot have seen ours: it is still unacknowledged (dirty), so it
//    never left this node, or the two were issued within kConcurrentWithinMs of each other.
// Misses: a partitioned majority's acknowledged write overwritten minutes later by a node that
// never saw it (that node records it instead, its version being dirty or inside the window).
// False positives: two deliberate sequential writes from two nodes within the window.
bool concurrent(const LocalVersion& local, const Version& incoming, uint64_t self);

struct ConflictRecord {
  ConflictKind kind = ConflictKind::Overwritten;
  std::string table;
  std::string key;     // JSON array of the primary key values, in primary key order
  std::string values;  // JSON object column -> value of the losing row; "" when it was a delete
  Version loser;
  Version winner;
  bool winner_deleted = false;
};

// JSON text for key values and for a row (blobs as {"blob": "<hex>"}, non-finite reals as
// strings), so a person can read them with json_extract.
std::string values_json_array(const std::vector<Value>& values);
std::string values_json_object(const std::vector<std::string>& columns,
                               const std::vector<Value>& values);

void record_conflict(Db& db, const ConflictRecord& record, int64_t now_ms);
// Removes rows beyond `limits.max_rows` (oldest first) and older than `limits.max_age_ms`
// (unless 0). Returns rows removed.
int64_t prune_conflicts(Db& db, int64_t now_ms, const ConflictLimits& limits = {});
int64_t conflict_count(Db& db);

}  // namespace harmony
