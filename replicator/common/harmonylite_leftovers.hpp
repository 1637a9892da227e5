// What HarmonyLite (the Go original) leaves in a database: its `__harmonylite__*` change-log
// tables, indexes and triggers. harmonylite never captures them (shared/names.hpp), but its
// triggers still fire on every application write: they log each change a second time into
// tables nobody reads any more, and their WHEN clause reads pragma_function_list, so writes fail
// with "unsafe use of virtual table" unless the application sets trusted_schema=ON. The
// replicator reports them at start-up; `-cleanup` removes them (as HarmonyLite's own cleanup
// did: every trigger, then every table whose name starts with the prefix).
#pragma once
#include <string>
#include <vector>

#include "shared/sqlite_db.hpp"

namespace harmony {

struct HarmonyLiteLeftovers {
  std::vector<std::string> triggers, tables;  // indexes go with their tables
  bool empty() const { return triggers.empty() && tables.empty(); }
};

HarmonyLiteLeftovers find_harmonylite_leftovers(Db& db);
// Drops them; call inside a write transaction. Returns what was dropped.
HarmonyLiteLeftovers remove_harmonylite_leftovers(Db& db);
// The start-up warning: what is there, why it matters, what to do.
std::string harmonylite_leftovers_warning(const HarmonyLiteLeftovers& found,
                                          const std::string& db_path);

}  // namespace harmony
