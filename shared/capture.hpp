// Installing and removing change capture: the base schema, per-table log/rows tables and the
// plain-SQL triggers. The extension's harmony_enable/harmony_disable and the replicator's
// start-up both call this code, so there is exactly one way capture gets installed.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "shared/schema.hpp"
#include "shared/sqlite_db.hpp"

namespace harmony {

// Version of the on-disk layout of our objects; stored in __harmony_meta under "format".
inline constexpr int64_t kStorageFormat = 1;

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

struct EnableOptions {
  // false (default): rows already in the table are taken as identical on every node (the seed's
  // case: every database starts with the same seven books) and are not published.
  // true: every existing row is captured as a change, so nodes that started with different
  // data converge (each node's rows are published; LWW decides overlaps).
  bool capture_existing_rows = false;
};

// Creates the objects in sql/base_schema.sql and the node id if missing. Idempotent.
void ensure_base_schema(Db& db);

// Every table in the registry whose table still exists and can still be captured (a dropped
// table is skipped; see dropped_captured_tables). A table is found through its triggers first,
// so ALTER TABLE ... RENAME TO keeps it captured under its new name.
std::vector<CapturedTable> captured_tables(Db& db);
std::optional<CapturedTable> find_captured(Db& db, const std::string& name);
// Registry entries (id, registered name) whose table no longer exists (DROP TABLE after
// enabling) or was recreated without a usable primary key.
std::vector<std::pair<int64_t, std::string>> dropped_captured_tables(Db& db);

// Installs capture on one table. Throws Error naming the table when it is not eligible.
// Returns true when the table was not captured before; re-running repairs missing triggers.
bool enable_table(Db& db, const std::string& name, const EnableOptions& options = {});
// Every eligible table; `skipped` receives "name: reason" for the others (not ours or sqlite_*).
int enable_all(Db& db, const EnableOptions& options = {},
               std::vector<std::string>* skipped = nullptr);

// Removes capture from a table: triggers, change log and row versions. Unpublished changes of
// that table would be lost, so without `discard_pending` it refuses (Error) when there are any.
bool disable_table(Db& db, const std::string& name, bool discard_pending);
int disable_all(Db& db, bool discard_pending);
// Removes every object harmonylite created (tables, triggers), for -cleanup.
void remove_all_objects(Db& db);

// Captured changes not yet published for one table (distinct keys in the log or marked dirty).
int64_t pending_changes(Db& db, const CapturedTable& table);
// True when all triggers of the table are present and match its current UNIQUE indexes (a
// UNIQUE index created or dropped after enabling makes this false until harmony_enable runs).
bool triggers_installed(Db& db, const CapturedTable& table);
// Human-readable problems with capture (dropped tables, missing/outdated triggers, UNIQUE
// indexes on expressions, changes lost to NULL keys): what harmony_status() reports.
std::vector<std::string> capture_problems(Db& db);

// Node id kept in the database (generated once at first use, or set by the replicator).
uint64_t node_id(Db& db);
void set_node_id(Db& db, uint64_t id);

// Meta key/value helpers.
std::optional<Value> meta_get(Db& db, const std::string& key);
void meta_set(Db& db, const std::string& key, const Value& value);
int64_t meta_get_int(Db& db, const std::string& key, int64_t fallback);

}  // namespace harmony
