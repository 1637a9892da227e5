// The store of held rows, __harmony_held: received rows that cannot be applied *now* and are
// kept until they can (see the table's comment in sql/base_schema.sql). Plain reads and writes;
// the consumer decides what to hold and when to retry (replicator/receive/held_rows.hpp), and the
// payload is opaque here (a one-table batch in the wire format).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "shared/sqlite_db.hpp"

namespace harmony {

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

void store_held(Db& db, const HeldEntry& entry);
// The oldest `limit` entries of one stream, starting after id `after`.
std::vector<HeldEntry> load_held(Db& db, const std::string& stream, int64_t after, size_t limit);
void forget_held(Db& db, int64_t id);
// After a retry that applied some of the entry's rows (or none): what still waits.
void update_held(Db& db, const HeldEntry& entry);

struct HeldSummary {
  int64_t entries = 0;
  int64_t rows = 0;
  int64_t bytes = 0;
  int64_t oldest_at_ms = 0;   // 0 when nothing is held
  std::string oldest_reason;  // "table Foo: ..." of the oldest entry
};
// All streams, or one.
HeldSummary held_summary(Db& db, const std::string& stream = {});

}  // namespace harmony
