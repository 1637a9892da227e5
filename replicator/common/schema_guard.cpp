// Local schema hashes and the previous-hash bookkeeping (see schema_guard.hpp). Hashes are recorded
// in __harmony_meta under "schema_hash:<table>" and "schema_previous:<table>" (space-separated,
// most recent first), table names in lower case.
#include "replicator/common/schema_guard.hpp"

#include <algorithm>
#include <sstream>
#include <thread>

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <spdlog/spdlog.h>

#include "shared/names.hpp"

namespace harmony {
namespace {

constexpr const char* kHashKey = "schema_hash:";
constexpr const char* kPreviousKey = "schema_previous:";

std::string lower(std::string_view s) {
  std::string out(s);
  for (auto& c : out)
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  return out;
}

std::vector<std::string> split_words(const std::string& s) {
  std::vector<std::string> out;
  std::istringstream in(s);
  for (std::string w; in >> w;) out.push_back(w);
  return out;
}

bool have_meta(Db& db) {
  return db.query_int(
             "SELECT count(*) FROM sqlite_schema WHERE type='table' AND name='__harmony_meta'") > 0;
}

std::map<std::string, std::string> meta_with_prefix(Db& db, const std::string& prefix) {
  std::map<std::string, std::string> out;
  if (!have_meta(db)) return out;
  auto s = db.prepare("SELECT key, value FROM __harmony_meta WHERE key GLOB ?1 || '*'");
  s.bind(1, prefix);
  while (s.step()) out[s.column_text(0).substr(prefix.size())] = s.column_text(1);
  return out;
}

}  // namespace

LocalSchema LocalSchema::from(const std::vector<CapturedTable>& tables,
                              const std::map<std::string, std::string>& recorded,
                              const std::map<std::string, std::vector<std::string>>& previous) {
  LocalSchema out;
  for (const auto& t : tables) {
    const std::string key = lower(t.name);
    TableSchemaState st;
    st.hash = t.info.schema_hash();
    if (auto it = recorded.find(key);
        it != recorded.end() && !it->second.empty() && it->second != st.hash)
      st.previous.push_back(it->second);  // changed since the publisher last recorded it
    if (auto it = previous.find(key); it != previous.end())
      for (const auto& p : it->second)
        if (p != st.hash &&
            std::find(st.previous.begin(), st.previous.end(), p) == st.previous.end())
          st.previous.push_back(p);
    if (st.previous.size() > kSchemaHistory) st.previous.resize(kSchemaHistory);
    out.named_[t.name] = st;
    out.tables[key] = std::move(st);
  }
  return out;
}

LocalSchema LocalSchema::load(Db& db, const TableSelection* selection) {
  const bool installed = db.query_int(
                             "SELECT count(*) FROM sqlite_schema WHERE type='table' AND "
                             "name='__harmony_tables'") > 0;
  LocalSchema out = from(installed ? captured_tables(db) : std::vector<CapturedTable>{},
                         recorded_schema_hashes(db), recorded_previous_hashes(db));
  if (selection)
    for (const auto& name : list_tables(db)) {
      const std::string key = lower(name);
      if (out.tables.count(key) || names::is_reserved(name) || !selection->selected(name)) continue;
      if (!ineligibility(db, name)) out.uncaptured.insert(key);
    }
  return out;
}

const TableSchemaState* LocalSchema::find(std::string_view table) const {
  auto it = tables.find(lower(table));
  return it == tables.end() ? nullptr : &it->second;
}

std::map<std::string, std::string> recorded_schema_hashes(Db& db) {
  return meta_with_prefix(db, kHashKey);
}

std::map<std::string, std::vector<std::string>> recorded_previous_hashes(Db& db) {
  std::map<std::string, std::vector<std::string>> out;
  for (auto& [k, v] : meta_with_prefix(db, kPreviousKey)) out[k] = split_words(v);
  return out;
}

std::vector<std::string> record_schema_hashes(Db& db, const std::vector<CapturedTable>& tables) {
  // The columns too, while the schema before a DDL is still the recorded one.
  record_column_history(db, tables);
  std::vector<std::string> changed;
  const auto recorded = recorded_schema_hashes(db);
  const auto previous = recorded_previous_hashes(db);
  for (const auto& t : tables) {
    const std::string key = lower(t.name);
    const std::string hash = t.info.schema_hash();
    auto it = recorded.find(key);
    if (it != recorded.end() && it->second == hash) continue;
    if (it != recorded.end() && !it->second.empty()) {
      std::vector<std::string> prev{it->second};
      if (auto p = previous.find(key); p != previous.end())
        for (const auto& h : p->second)
          if (h != hash && std::find(prev.begin(), prev.end(), h) == prev.end()) prev.push_back(h);
      if (prev.size() > kSchemaHistory) prev.resize(kSchemaHistory);
      meta_set(db, kPreviousKey + key, Text{fmt::format("{}", fmt::join(prev, " "))});
      changed.push_back(t.name);
    }
    meta_set(db, kHashKey + key, Text{hash});
  }
  return changed;
}

}  // namespace harmony
