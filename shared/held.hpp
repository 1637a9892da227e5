// The store of held rows, __harmony_held: received rows that cannot be applied *now* and are
// kept until they can (see the table's comment in sql/base_schema.sql). Plain reads and writes;
// the consumer decides what to hold and when to retry (replicator/receive/held_rows.hpp), and the
// payload is opaque here (a one-table batch in the wire format). The writes return what they
// changed (HeldUsage), so the consumer keeps its counts without scanning the table; the table is
// counted only at start-up and when the held epoch says someone else changed it (-drop-held).
#pragma once
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace harmony {

class Db;      // shared/sqlite_db.hpp; not included, so the config can name the default cheaply
struct Batch;  // shared/batch.hpp

// Default bound on the payload bytes held per stream (config max_held_bytes): 256 MiB. Disk, not
// memory (a retry round reads a bounded number of entries); room for a schema rollout across a
// busy cluster (about a million rows of a few hundred bytes, the size of the row bound,
// max_held_rows), yet small next to the databases harmonylite replicates.
inline constexpr int64_t kDefaultMaxHeldBytes = int64_t{256} << 20;

// Why a row waits. Each kind is retried when its cause may have changed.
enum class HoldKind {
  Table,       // the table is not captured here (yet)
  Column,      // a column is not here yet, or the key differs (schema from another version)
  Clock,       // its version is further ahead of this node's clock than allowed
  Constraint,  // a UNIQUE, NOT NULL, CHECK or foreign key constraint refuses it for now
};
const char* to_string(HoldKind kind);

struct HeldEntry {
  int64_t id = 0;  // assigned by the store
  int64_t at_ms = 0;
  std::string stream;
  uint64_t seq = 0;
  uint64_t origin = 0;
  uint64_t batch_id = 0;
  std::string table;
  HoldKind kind = HoldKind::Table;
  std::string reason;
  int64_t rows = 0;
  int64_t attempts = 0;
  std::string payload;
};

// What held entries occupy: rows and bytes (the payload's length, by far the largest column).
// As a change, negative values are what was removed.
struct HeldUsage {
  int64_t entries = 0;
  int64_t rows = 0;
  int64_t bytes = 0;
  HeldUsage& operator+=(const HeldUsage& o) {
    entries += o.entries;
    rows += o.rows;
    bytes += o.bytes;
    return *this;
  }
};
// The bytes an entry counts for (the SQL twin is length(payload) in held_summary).
inline int64_t held_bytes(const HeldEntry& e) {
  return static_cast<int64_t>(e.payload.size());
}

// Each returns the change it made to the stored usage.
HeldUsage store_held(Db& db, const HeldEntry& entry);
// The oldest `limit` entries of one stream, starting after id `after`.
std::vector<HeldEntry> load_held(Db& db, const std::string& stream, int64_t after, size_t limit);
HeldUsage forget_held(Db& db, const HeldEntry& entry);  // by entry.id; rows and bytes as loaded
// After a retry that applied some of the entry's rows (or none): what still waits. `was` is the
// entry's rows and bytes as it was loaded.
HeldUsage update_held(Db& db, const HeldEntry& entry, const HeldUsage& was);
// Removes entries by id whatever they hold (-drop-held), and bumps the held epoch so a running
// consumer counts its stream again.
void forget_held_ids(Db& db, const std::vector<int64_t>& ids);

// Changes to __harmony_held made outside a consumer (-drop-held) bump this number in
// __harmony_meta; a consumer that sees it move re-counts instead of trusting its running sums.
int64_t held_epoch(Db& db);
void bump_held_epoch(Db& db);

// Entries with seq 0 come from no stream: this node's own unpublished rows that a snapshot
// restore could not put back yet (replicator/snapshot/snapshot.cpp). Once applied they are
// marked pending again, so the publisher sends them like any local change.
inline constexpr uint64_t kRestoredOwnRowsSeq = 0;

// The rows `rows` (indexes into batch.rows) of table entry `table_entry` of `batch`, as a batch
// of their own: what a held entry's payload holds (encoded by the wire codec).
Batch held_rows_batch(const Batch& batch, size_t table_entry, const std::vector<size_t>& rows);

// Marks dirty (pending publication) the rows of `batch` (written by `node`) whose version here is
// still the batch's: after they were applied on top of other content. Returns how many.
int64_t mark_own_rows_pending(Db& db, const Batch& batch, uint64_t node);

struct HeldSummary {
  int64_t entries = 0;
  int64_t rows = 0;
  int64_t bytes = 0;
  int64_t oldest_at_ms = 0;   // 0 when nothing is held
  std::string oldest_reason;  // "table Foo: ..." of the oldest entry
};
// All streams, or one. A full scan of the table: for start-up and one-shot commands.
HeldSummary held_summary(Db& db, const std::string& stream = {});
// The oldest entry of one stream (at_ms, reason), or {0, ""}: one row looked up by id order.
std::pair<int64_t, std::string> held_oldest(Db& db, const std::string& stream);

}  // namespace harmony
