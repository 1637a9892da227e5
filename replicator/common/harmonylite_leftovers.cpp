// HarmonyLite's leftover objects: find, describe, remove (see harmonylite_leftovers.hpp).
#include "replicator/common/harmonylite_leftovers.hpp"

#include <fmt/format.h>
#include <fmt/ranges.h>

namespace harmony {

namespace {

std::vector<std::string> names_of(Db& db, const char* type) {
  // GLOB, not LIKE: '_' is a LIKE wildcard, and the prefix is made of underscores.
  auto q = db.prepare(
      "SELECT name FROM sqlite_schema WHERE type = ?1 AND name GLOB '__harmonylite__*' "
      "ORDER BY name");
  q.bind(1, std::string_view(type));
  std::vector<std::string> out;
  while (q.step()) out.push_back(q.column_text(0));
  return out;
}

}  // namespace

HarmonyLiteLeftovers find_harmonylite_leftovers(Db& db) {
  return {names_of(db, "trigger"), names_of(db, "table")};
}

HarmonyLiteLeftovers remove_harmonylite_leftovers(Db& db) {
  HarmonyLiteLeftovers found = find_harmonylite_leftovers(db);
  // Triggers first: a table's triggers would go with it, but HarmonyLite's sit on the
  // application's tables, which stay.
  for (const auto& t : found.triggers)
    db.exec(fmt::format("DROP TRIGGER IF EXISTS {}", quote_ident(t)));
  for (const auto& t : found.tables)
    db.exec(fmt::format("DROP TABLE IF EXISTS {}", quote_ident(t)));
  return found;
}

std::string harmonylite_leftovers_warning(const HarmonyLiteLeftovers& found,
                                          const std::string& db_path) {
  return fmt::format(
      "{} still carries HarmonyLite's change capture: {} trigger(s) ({}) and {} table(s) ({}). "
      "harmonylite does not use them, but the triggers log every write a second time and make "
      "writes fail unless connections set PRAGMA trusted_schema=ON. Once no HarmonyLite process "
      "uses this file, stop this replicator and run `harmonylite -config <file> -cleanup` to "
      "remove them (docs/migrating.md)",
      db_path, found.triggers.size(), fmt::join(found.triggers, ", "), found.tables.size(),
      fmt::join(found.tables, ", "));
}

}  // namespace harmony
