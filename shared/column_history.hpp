// What became of the columns a captured table used to have, so rows written under an older (or
// newer) schema by another node can still be applied by column name during a rolling
// ALTER TABLE: a column that was renamed here maps to its new name, a column that was dropped
// here is left out. Kept per captured table id in __harmony_meta ("columns:<id>"), updated by
// comparing the columns recorded last time with the live ones.
//
// Telling a rename from a drop: SQLite's RENAME COLUMN keeps the column where it was, DROP COLUMN
// removes it and ADD COLUMN appends. So a column that disappeared and a column that appeared
// right after the same surviving column, with the same declared type, are read as a rename;
// any other disappearance as a drop. A DROP of the last column and an ADD of one of the same
// type between two looks would read as a rename: the replicator looks after every DDL it sees,
// so only such DDL done in one go while it is stopped (or within one apply) can mislead it.
#pragma once
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "shared/capture_registry.hpp"

namespace harmony {

struct ColumnHistory {
  // lower-case former name -> its current name ("" when dropped). Chains (a->b, b->c) resolve.
  std::map<std::string, std::string> gone;

  enum class Fate { Unknown, Renamed, Dropped };
  struct Resolution {
    Fate fate = Fate::Unknown;
    std::string now;  // the live name, when renamed
  };
  // What became of `column`, which the live table does not have.
  Resolution resolve(const std::string& column) const;
};

// The recorded columns of a table, as "name:TYPE" in position order.
struct RecordedColumns {
  std::vector<std::pair<std::string, std::string>> columns;  // name, declared type (upper)
  ColumnHistory history;
};

// Pure: the history after the table went from `before` to `now` (both in position order).
ColumnHistory next_history(const RecordedColumns& before, const TableInfo& now);

// Inside a write transaction: records each table's live columns and updates its history.
// Returns true when anything was written.
bool record_column_history(Db& db, const std::vector<CapturedTable>& tables);

// Read-only: the history of every captured table, by table id.
std::map<int64_t, ColumnHistory> load_column_history(Db& db);

}  // namespace harmony
