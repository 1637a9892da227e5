// Schema hash checks for received batches and the previous-hash bookkeeping (see
// schema_guard.hpp). Hashes are recorded in __harmony_meta under "schema_hash:<table>" and
// "schema_previous:<table>" (space-separated, most recent first), table names in lower case.
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

std::string short_hash(const std::string& h) {
  return h.empty() ? "(none)" : h;
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

std::string SchemaMismatch::describe(uint64_t origin, uint64_t batch) const {
  if (not_captured_yet)
    return fmt::format(
        "table {}: batch {} from node {} writes to it, and it exists here but its capture is "
        "not installed yet; the stream waits until it is (a moment after CREATE TABLE)",
        table, batch, origin);
  return fmt::format(
      "table {}: batch {} from node {} has schema {}, this node has {}{}; the stream waits "
      "until this node's schema matches (apply the same DDL here)",
      table, batch, origin, short_hash(incoming), short_hash(local),
      previous.empty() ? "" : fmt::format(" (previously {})", fmt::join(previous, ", ")));
}

std::optional<SchemaMismatch> check_batch_schema(const Batch& batch, const LocalSchema& local) {
  for (const auto& bt : batch.tables) {
    if (bt.schema_hash.empty()) continue;  // no claim: columns are checked by name on apply
    const TableSchemaState* mine = local.find(bt.name);
    if (!mine && local.uncaptured.count(lower(bt.name)))
      return SchemaMismatch{bt.name, bt.schema_hash, "", {}, true};
    if (!mine) continue;  // unknown table: the Applier dead-letters its rows (P6)
    if (bt.schema_hash == mine->hash) continue;
    if (std::find(mine->previous.begin(), mine->previous.end(), bt.schema_hash) !=
        mine->previous.end())
      continue;  // the sender still runs a schema this node had before (rolling upgrade)
    return SchemaMismatch{bt.name, bt.schema_hash, mine->hash, mine->previous};
  }
  return std::nullopt;
}

bool wait_for_schema(Db& db, const Batch& batch, const std::string& stream, LocalSchema& schema,
                     const std::atomic<bool>& stop, const std::atomic<uint64_t>* generation,
                     const TableSelection* selection, std::chrono::milliseconds recheck,
                     std::chrono::milliseconds remind) {
  using clock = std::chrono::steady_clock;
  auto version = [&] {
    try {
      return db.query_int("PRAGMA schema_version");
    } catch (const SqliteError&) {
      return int64_t{-1};  // busy for a moment: counts as "changed", so we look again
    }
  };
  int64_t seen_version = version();
  uint64_t seen_generation = generation ? generation->load() : 0;
  auto next_check = clock::now() + recheck;
  auto next_reminder = clock::now() + remind;
  while (!stop) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    const int64_t v = version();
    const uint64_t g = generation ? generation->load() : 0;
    const auto now = clock::now();
    if (v == seen_version && g == seen_generation && now < next_check) continue;
    seen_version = v;
    seen_generation = g;
    next_check = now + recheck;
    try {
      schema = LocalSchema::load(db, selection);
    } catch (const SqliteError& e) {
      if (!e.busy()) throw;
      continue;
    }
    auto mismatch = check_batch_schema(batch, schema);
    if (!mismatch) return true;
    if (now >= next_reminder) {
      next_reminder = now + remind;
      spdlog::warn("{} is still paused: {}", stream,
                   mismatch->describe(batch.origin_node, batch.batch_id));
    }
  }
  return false;
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
