// The registry of captured tables (__harmony_tables): which tables are captured, under which id,
// and which table each entry captures now. Our triggers follow a table through ALTER TABLE ...
// RENAME TO, so a table is found through its triggers first and its registered name second.
// Installing and removing capture (capture.hpp) writes the registry; everything else reads it.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "shared/schema.hpp"
#include "shared/sqlite_db.hpp"

namespace harmony {

struct CapturedTable {
  int64_t id = 0;
  std::string name;
  TableInfo info;
  std::string log;   // quoted name of the change log table
  std::string rows;  // quoted name of the row-version table
  size_t key_count() const { return info.primary_key().size(); }
};

// The key columns of a table's log and rows tables: k1..kn, in primary key order.
std::vector<std::string> key_columns(size_t n);

// Every table in the registry whose table still exists and can still be captured (a dropped
// table is skipped; see dropped_captured_tables).
std::vector<CapturedTable> captured_tables(Db& db);
std::optional<CapturedTable> find_captured(Db& db, const std::string& name);
// Registry entries (id, registered name) whose table no longer exists (DROP TABLE after
// enabling) or was recreated without a usable primary key.
std::vector<std::pair<int64_t, std::string>> dropped_captured_tables(Db& db);

// The raw registry, for the code that installs and removes capture (capture.cpp).
struct CaptureEntry {
  int64_t id = 0;
  std::string registered;  // the name in __harmony_tables
  std::string table;       // the table it captures now; "" when the table is gone
};
bool has_registry(Db& db);
// Every entry, in id order, with the table it captures now. An entry without triggers (dropped
// and recreated table) falls back to its name unless another entry's triggers claim that table.
std::vector<CaptureEntry> capture_entries(Db& db);
std::optional<int64_t> registry_id(Db& db, const std::string& name);
CapturedTable make_captured(int64_t id, TableInfo info);

}  // namespace harmony
