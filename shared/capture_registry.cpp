// Reading the registry of captured tables (see capture_registry.hpp).
#include "shared/capture_registry.hpp"

#include "shared/names.hpp"

namespace harmony {
namespace {

// Canonical spelling of an ordinary table in main, or "" when there is none by that name.
std::string ordinary_table(Db& db, const std::string& name) {
  if (name.empty()) return "";
  auto s = db.prepare(
      "SELECT name FROM pragma_table_list WHERE schema = 'main' AND type = 'table' AND "
      "name = ?1 COLLATE NOCASE");
  s.bind(1, name);
  return s.step() ? s.column_text(0) : std::string();
}

}  // namespace

std::vector<std::string> key_columns(size_t n) {
  std::vector<std::string> out;
  for (size_t i = 1; i <= n; ++i) out.push_back("k" + std::to_string(i));
  return out;
}

CapturedTable make_captured(int64_t id, TableInfo info) {
  CapturedTable c;
  c.id = id;
  c.name = info.name;
  c.info = std::move(info);
  c.log = quote_ident(names::log_table(id));
  c.rows = quote_ident(names::rows_table(id));
  return c;
}

bool has_registry(Db& db) {
  return db.query_int(
             "SELECT count(*) FROM sqlite_schema WHERE type = 'table' AND name = "
             "'__harmony_tables'") > 0;
}

std::vector<CaptureEntry> capture_entries(Db& db) {
  std::vector<CaptureEntry> out;
  if (!has_registry(db)) return out;
  std::vector<std::string> via_trigger;
  {
    auto s = db.prepare(
        "SELECT r.id, r.name, (SELECT s.tbl_name FROM sqlite_schema s WHERE s.type = 'trigger' "
        "AND s.name LIKE '\\_\\_harmony\\_trg\\_' || r.id || '\\_%' ESCAPE '\\' LIMIT 1) "
        "FROM __harmony_tables r ORDER BY r.id");
    while (s.step()) {
      out.push_back({s.column_int(0), s.column_text(1), ""});
      via_trigger.push_back(s.column_text(2));
    }
  }
  for (size_t i = 0; i < out.size(); ++i) out[i].table = ordinary_table(db, via_trigger[i]);
  for (size_t i = 0; i < out.size(); ++i) {
    if (!out[i].table.empty()) continue;
    std::string candidate = ordinary_table(db, out[i].registered);
    bool claimed = false;
    for (const auto& e : out)
      claimed = claimed || (!candidate.empty() && same_ident(e.table, candidate));
    if (!claimed) out[i].table = candidate;
  }
  return out;
}

std::optional<int64_t> registry_id(Db& db, const std::string& name) {
  if (!has_registry(db)) return std::nullopt;
  auto s = db.prepare("SELECT id FROM __harmony_tables WHERE name = ?1");
  s.bind(1, name);
  if (!s.step()) return std::nullopt;
  return s.column_int(0);
}

std::vector<CapturedTable> captured_tables(Db& db) {
  std::vector<CapturedTable> out;
  for (const auto& e : capture_entries(db)) {
    if (e.table.empty()) continue;
    TableInfo info = describe_table(db, e.table);
    if (ineligibility(info)) continue;  // recreated without a usable key: "dropped"
    out.push_back(make_captured(e.id, std::move(info)));
  }
  return out;
}

std::optional<CapturedTable> find_captured(Db& db, const std::string& name) {
  for (const auto& e : capture_entries(db)) {
    if (e.table.empty() || !same_ident(e.table, name)) continue;
    TableInfo info = describe_table(db, e.table);
    if (ineligibility(info)) return std::nullopt;
    return make_captured(e.id, std::move(info));
  }
  return std::nullopt;
}

std::vector<std::pair<int64_t, std::string>> dropped_captured_tables(Db& db) {
  std::vector<std::pair<int64_t, std::string>> out;
  for (const auto& e : capture_entries(db))
    if (e.table.empty() || ineligibility(describe_table(db, e.table)))
      out.emplace_back(e.id, e.registered);
  return out;
}

}  // namespace harmony
