// Column history of captured tables (see column_history.hpp).
#include "shared/column_history.hpp"

#include <nlohmann/json.hpp>

#include "shared/meta_store.hpp"

namespace harmony {

namespace {

constexpr const char* kKeyPrefix = "columns:";
// A rename chain longer than this is a loop in a damaged record: stop following it.
constexpr int kMaxRenameChain = 64;
// Former names remembered per table; the oldest are forgotten first (rows written under a schema
// that many columns ago are not expected any more).
constexpr size_t kMaxGoneColumns = 256;

std::string lower(std::string s) {
  for (auto& c : s)
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  return s;
}

std::string upper(std::string s) {
  for (auto& c : s)
    if (c >= 'a' && c <= 'z') c = static_cast<char>(c - 'a' + 'A');
  return s;
}

std::vector<std::pair<std::string, std::string>> live_columns(const TableInfo& t) {
  std::vector<std::pair<std::string, std::string>> out;
  for (const auto& c : t.columns) out.emplace_back(c.name, upper(c.decl_type));
  return out;
}

nlohmann::json to_json(const RecordedColumns& r) {
  nlohmann::json cols = nlohmann::json::array();
  for (const auto& [name, type] : r.columns) cols.push_back(nlohmann::json::array({name, type}));
  return {{"columns", cols}, {"gone", r.history.gone}};
}

// A damaged or foreign record reads as "nothing recorded": the history then starts afresh.
std::optional<RecordedColumns> from_json(const std::string& text) {
  auto j = nlohmann::json::parse(text, nullptr, false);
  if (j.is_discarded() || !j.is_object()) return std::nullopt;
  RecordedColumns r;
  try {
    for (const auto& c : j.at("columns"))
      r.columns.emplace_back(c.at(0).get<std::string>(), c.at(1).get<std::string>());
    for (const auto& [k, v] : j.at("gone").items()) r.history.gone[k] = v.get<std::string>();
  } catch (const nlohmann::json::exception&) {
    return std::nullopt;
  }
  return r;
}

std::optional<RecordedColumns> load_recorded(Db& db, int64_t id) {
  auto v = meta_get(db, kKeyPrefix + std::to_string(id));
  if (!v) return std::nullopt;
  const auto* t = std::get_if<Text>(&*v);
  if (!t) return std::nullopt;
  return from_json(t->bytes);
}

}  // namespace

ColumnHistory::Resolution ColumnHistory::resolve(const std::string& column) const {
  std::string name = lower(column);
  Resolution r;
  for (int i = 0; i < kMaxRenameChain; ++i) {
    auto it = gone.find(name);
    if (it == gone.end()) return r;  // the last name reached is live (or never known)
    if (it->second.empty()) return {Fate::Dropped, {}};
    r = {Fate::Renamed, it->second};
    name = lower(it->second);
  }
  return {};
}

ColumnHistory next_history(const RecordedColumns& before, const TableInfo& now) {
  ColumnHistory h = before.history;
  const auto live = live_columns(now);
  auto contains = [](const std::vector<std::pair<std::string, std::string>>& cols,
                     const std::string& name) {
    for (const auto& [n, t] : cols)
      if (lower(n) == lower(name)) return true;
    return false;
  };
  // A live column is not "gone", whatever happened to its name before (dropped and added again).
  for (const auto& [n, t] : live) h.gone.erase(lower(n));
  // Columns that disappeared and columns that appeared, each with the nearest surviving column
  // before it (its anchor). A rename leaves the new name where the old one was: same anchor,
  // same declared type, paired in order.
  struct Moved {
    std::string name, type, anchor;
    bool paired = false;
  };
  auto moved = [&](const std::vector<std::pair<std::string, std::string>>& from,
                   const std::vector<std::pair<std::string, std::string>>& other) {
    std::vector<Moved> out;
    std::string anchor;
    for (const auto& [n, t] : from) {
      if (contains(other, n))
        anchor = lower(n);
      else
        out.push_back({n, t, anchor});
    }
    return out;
  };
  auto removed = moved(before.columns, live);
  auto added = moved(live, before.columns);
  for (auto& r : removed) {
    std::string renamed_to;
    for (auto& a : added)
      if (!a.paired && a.anchor == r.anchor && a.type == r.type) {
        a.paired = true;
        renamed_to = a.name;
        break;
      }
    h.gone[lower(r.name)] = renamed_to;
    // Earlier names that led to this one now lead where it went.
    for (auto& [old, to] : h.gone)
      if (!to.empty() && lower(to) == lower(r.name)) to = renamed_to;
  }
  while (h.gone.size() > kMaxGoneColumns) h.gone.erase(h.gone.begin());
  return h;
}

bool record_column_history(Db& db, const std::vector<CapturedTable>& tables) {
  bool wrote = false;
  for (const auto& t : tables) {
    RecordedColumns now;
    now.columns = live_columns(t.info);
    auto before = load_recorded(db, t.id);
    if (before && before->columns == now.columns) continue;
    if (before) now.history = next_history(*before, t.info);
    meta_set(db, kKeyPrefix + std::to_string(t.id), Text{to_json(now).dump()});
    wrote = true;
  }
  return wrote;
}

std::map<int64_t, ColumnHistory> load_column_history(Db& db) {
  std::map<int64_t, ColumnHistory> out;
  auto s = db.prepare("SELECT key, value FROM __harmony_meta WHERE key >= ?1 AND key < ?2");
  s.bind(1, std::string(kKeyPrefix)).bind(2, std::string("columns;"));
  while (s.step()) {
    const std::string key = s.column_text(0);
    int64_t id = 0;
    try {
      id = std::stoll(key.substr(std::string_view(kKeyPrefix).size()));
    } catch (const std::exception&) {
      continue;
    }
    if (auto r = from_json(s.column_text(1))) out[id] = std::move(r->history);
  }
  return out;
}

}  // namespace harmony
