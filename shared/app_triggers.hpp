// Tables written by the application's own triggers on captured tables (issue 15 case 8). Such a
// trigger fires twice for one logical write: on the node where the application wrote, and again
// on every node where the replicator applies the replicated row. When its target table is
// replicated too and the trigger is not muted during apply, every node ends up with different
// rows in the target (an AUTOINCREMENT audit table gets one row per node per write, with
// colliding ids). This file finds such triggers by reading `sqlite_schema`; it changes nothing.
#pragma once
#include <string>
#include <vector>

#include "shared/sqlite_db.hpp"

namespace harmony {

// One table written by one trigger whose table is captured.
struct AppTriggerWrite {
  std::string trigger;  // trigger name
  std::string source;   // the captured table the trigger is on
  std::string target;   // the table its body writes (INSERT/REPLACE INTO, UPDATE, DELETE FROM)
  bool target_captured = false;
  // The trigger does not fire inside the replicator's apply transactions: its WHEN clause (or
  // the writing statement itself) tests NOT EXISTS (SELECT ... FROM __harmony_mute).
  bool guarded = false;
  // Diverges: the target is replicated and the trigger also fires for applied rows.
  bool diverges() const { return target_captured && !guarded; }
};

// The tables that a trigger body writes, in order of appearance, each once (case-insensitive);
// `guarded` (per target) as above. Parsing is conservative: a statement it does not understand
// adds no target, and only a NOT EXISTS test of __harmony_mute counts as a guard. Exposed for
// tests.
struct TriggerBody {
  std::vector<std::pair<std::string, bool>> targets;  // (table, guarded)
};
TriggerBody parse_trigger_writes(const std::string& create_trigger_sql);

// Every table written by a user trigger (not one of harmonylite's `__harmony_` triggers) on a
// captured table, in trigger-name order. Needs a database with harmonylite's registry; answers
// nothing otherwise.
std::vector<AppTriggerWrite> app_trigger_writes(Db& db);

// One line naming the trigger, its table and the target, and the two sound set-ups.
std::string describe_divergence(const AppTriggerWrite& w);

// describe_divergence() of every write that diverges.
std::vector<std::string> app_trigger_warnings(Db& db);

}  // namespace harmony
