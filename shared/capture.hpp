// Installing and removing change capture: the base schema, per-table log/rows tables and the
// plain-SQL triggers. The extension's harmony_enable/harmony_disable and the replicator's
// start-up both call this code, so there is exactly one way capture gets installed. The
// registry of captured tables is read through capture_registry.hpp and node-local state through
// meta_store.hpp (both included here: every user of capture needs them).
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "shared/capture_registry.hpp"
#include "shared/meta_store.hpp"
#include "shared/schema.hpp"
#include "shared/sqlite_db.hpp"

namespace harmony {

// Version of the on-disk layout of our objects; stored in __harmony_meta under "format".
inline constexpr int64_t kStorageFormat = 1;

struct EnableOptions {
  // false (default): rows already in the table are taken as identical on every node (the seed's
  // case: every database starts with the same seven books) and are not published.
  // true: every existing row is captured as a change, so nodes that started with different
  // data converge (each node's rows are published; LWW decides overlaps).
  bool capture_existing_rows = false;
};

// Creates the objects in sql/base_schema.sql and the node id if missing. Idempotent.
void ensure_base_schema(Db& db);

// Installs capture on one table. Throws Error naming the table when it is not eligible.
// Returns true when the table was not captured before; re-running repairs missing triggers.
bool enable_table(Db& db, const std::string& name, const EnableOptions& options = {});
// harmony_enable(T, 'existing'): installs capture when missing, then logs every row present as
// a change, also when the table was captured before (rows written before capture reached it are
// published this way). The rows get new versions. Returns the number of rows logged.
int64_t capture_existing_rows(Db& db, const std::string& name);
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
// The state of a captured table's triggers against what enable_table would create now:
//   Complete  all present with exactly the current SQL;
//   Outdated  the insert, update and delete triggers are all there (every write was captured)
//             but some trigger differs: another release's text, or a UNIQUE index created or
//             dropped since (its triggers to add or remove);
//   Missing   an insert, update or delete trigger is absent: writes may have gone uncaptured.
enum class TriggerState { Complete, Outdated, Missing };
TriggerState capture_trigger_state(Db& db, const CapturedTable& table);
// True when all triggers of the table are present and match its current UNIQUE indexes (a
// UNIQUE index created or dropped after enabling makes this false until harmony_enable runs).
inline bool triggers_installed(Db& db, const CapturedTable& table) {
  return capture_trigger_state(db, table) == TriggerState::Complete;
}

}  // namespace harmony
