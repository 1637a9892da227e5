// Folding change logs into row versions (see fold.hpp).
#include "shared/fold.hpp"

#include <algorithm>

#include <fmt/format.h>

#include "shared/hlc.hpp"

namespace harmony {

std::vector<std::string> key_columns(size_t n) {
  std::vector<std::string> out;
  for (size_t i = 1; i <= n; ++i) out.push_back("k" + std::to_string(i));
  return out;
}

std::vector<std::string> quoted_pk(const TableInfo& info) {
  std::vector<std::string> out;
  for (const auto* c : info.primary_key()) out.push_back(quote_ident(c->name));
  return out;
}

std::string key_match(const std::vector<std::string>& columns, int first) {
  std::string out;
  for (size_t i = 0; i < columns.size(); ++i) {
    if (i) out += " AND ";
    out += fmt::format("{} = ?{}", columns[i], first + static_cast<int>(i));
  }
  return out;
}

int64_t load_clock(Db& db) {
  return meta_get_int(db, "hlc", 0);
}
void store_clock(Db& db, int64_t hlc) {
  meta_set(db, "hlc", hlc);
}

static void fold_table(Db& db, const CapturedTable& t, uint64_t node, int64_t now_ms,
                       int64_t& clock, FoldStats& stats) {
  const size_t n = t.key_count();
  const auto keys = key_columns(n);
  std::string key_list;
  for (size_t i = 0; i < n; ++i) key_list += (i ? ", " : "") + keys[i];

  // One entry per key, in the order of its latest change (commit order: one writer at a time).
  auto pending = db.prepare(
      fmt::format("SELECT {0}, max(ms), min(weak IS NOT NULL), max(seq) FROM {1} GROUP BY {0} "
                  "ORDER BY max(seq)",
                  key_list, t.log));
  auto exists = db.prepare(fmt::format("SELECT 1 FROM {} WHERE {}", quote_ident(t.name),
                                       key_match(quoted_pk(t.info), 1)));
  std::string params;
  for (size_t i = 1; i <= n; ++i) params += fmt::format("?{}, ", i);
  auto upsert = db.prepare(fmt::format(
      "INSERT INTO {0} ({1}, version, node, deleted, dirty) VALUES ({2}?{3}, ?{4}, ?{5}, 1) "
      "ON CONFLICT DO UPDATE SET version = max(excluded.version, version + 1), "
      "node = excluded.node, deleted = excluded.deleted, dirty = 1 RETURNING version",
      t.rows, key_list, params, n + 1, n + 2, n + 3));

  bool any = false;
  while (pending.step()) {
    any = true;
    std::vector<Value> key;
    bool null_key = false;
    for (size_t i = 0; i < n; ++i) {
      key.push_back(pending.column(static_cast<int>(i)));
      null_key = null_key || is_null(key.back());
    }
    if (null_key) {
      ++stats.null_keys;
      continue;
    }
    // The ms a trigger logged, never beyond the clock now: a wall clock that was stepped back
    // since the write must not issue versions peers reject as being from the future.
    int64_t ms = std::clamp<int64_t>(pending.column_int(static_cast<int>(n)), 0, now_ms);
    bool only_weak = pending.column_int(static_cast<int>(n + 1)) != 0;

    exists.reset();
    for (size_t i = 0; i < n; ++i) exists.bind(static_cast<int>(i + 1), key[i]);
    bool present = exists.step();
    if (only_weak && present) {
      ++stats.ignored_weak;  // the row a REPLACE could have removed is still there
      continue;
    }
    upsert.reset();
    for (size_t i = 0; i < n; ++i) upsert.bind(static_cast<int>(i + 1), key[i]);
    int64_t version = hlc_next(clock, ms);
    upsert.bind(static_cast<int>(n + 1), version)
        .bind(static_cast<int>(n + 2), static_cast<int64_t>(node))
        .bind(static_cast<int>(n + 3), int64_t{present ? 0 : 1});
    if (upsert.step())
      clock = std::max(version, upsert.column_int(0));
    else
      clock = version;
    while (upsert.step()) {
    }
    ++stats.keys;
  }
  if (any) db.exec("DELETE FROM " + t.log);
}

FoldStats fold_all(Db& db, const std::vector<CapturedTable>& tables, uint64_t node) {
  FoldStats stats;
  int64_t clock = load_clock(db);
  const int64_t before = clock;
  const int64_t now_ms = std::min(wall_clock_ms(), kMaxHlcMs);
  for (const auto& t : tables) fold_table(db, t, node, now_ms, clock, stats);
  if (clock != before) store_clock(db, clock);
  if (stats.null_keys > 0)  // reported by harmony_status() (capture_problems)
    meta_set(db, "null_key_changes", meta_get_int(db, "null_key_changes", 0) + stats.null_keys);
  return stats;
}

}  // namespace harmony
