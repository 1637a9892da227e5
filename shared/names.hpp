// Names of every object harmonylite creates in a user's database. All start with kPrefix, and
// nothing whose name starts with kPrefix is ever captured. Per-table objects are named by a
// numeric id from __harmony_tables (not by the table name) so renames and odd names are harmless.
#pragma once
#include <cstdint>
#include <string>
#include <string_view>

namespace harmony::names {

inline constexpr std::string_view kPrefix = "__harmony_";
// HarmonyLite's prefix: never captured either, so a database migrated from it is safe.
inline constexpr std::string_view kHarmonyLitePrefix = "__harmonylite__";

inline constexpr const char* kMeta = "__harmony_meta";      // key/value: node id, HLC, ...
inline constexpr const char* kTables = "__harmony_tables";  // registry of captured tables
inline constexpr const char* kMute = "__harmony_mute";      // non-empty only inside apply txns
inline constexpr const char* kPositions = "__harmony_positions";  // stream -> last applied seq
inline constexpr const char* kDeadLetters = "__harmony_dead_letters";
inline constexpr const char* kHeld = "__harmony_held";  // rows waiting until they can apply
inline constexpr const char* kConflicts = "__harmony_conflicts";

inline std::string log_table(int64_t id) {
  return "__harmony_log_" + std::to_string(id);
}
inline std::string rows_table(int64_t id) {
  return "__harmony_rows_" + std::to_string(id);
}
inline std::string dirty_index(int64_t id) {
  return "__harmony_rows_" + std::to_string(id) + "_pending";
}
// Before 0.1.0 the pending rows were indexed on (dirty), which made every batch sort the backlog.
inline std::string old_dirty_index(int64_t id) {
  return "__harmony_rows_" + std::to_string(id) + "_dirty";
}
// Every capture trigger's name starts with this.
inline constexpr std::string_view kTriggerPrefix = "__harmony_trg_";
inline std::string trigger(int64_t id, std::string_view kind) {
  return std::string(kTriggerPrefix) + std::to_string(id) + "_" + std::string(kind);
}

inline bool is_reserved(std::string_view table) {
  auto starts = [&](std::string_view p) {
    if (table.size() < p.size()) return false;
    for (size_t i = 0; i < p.size(); ++i) {
      char a = table[i], b = p[i];
      if (a >= 'A' && a <= 'Z') a = static_cast<char>(a - 'A' + 'a');
      if (a != b) return false;
    }
    return true;
  };
  return starts(kPrefix) || starts(kHarmonyLitePrefix) || starts("sqlite_");
}

}  // namespace harmony::names
