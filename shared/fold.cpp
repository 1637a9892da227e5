// Folding change logs into row versions (see fold.hpp).
#include "shared/fold.hpp"

#include <algorithm>
#include <optional>

#include <fmt/format.h>

#include "shared/content_digest.hpp"
#include "shared/hlc.hpp"

namespace harmony {

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

namespace {

// "k1, k2, ..." for one of our storage tables.
std::string key_list(size_t n) {
  std::string out;
  for (const auto& k : key_columns(n)) out += (out.empty() ? "" : ", ") + k;
  return out;
}

// Binds `key` to parameters 1..n of `s`, after a reset.
void bind_key(Stmt& s, const std::vector<Value>& key) {
  s.reset();
  for (size_t i = 0; i < key.size(); ++i) s.bind(static_cast<int>(i + 1), key[i]);
}

void fold_table(Db& db, const CapturedTable& t, uint64_t node, FoldClock& clock, FoldStats& stats) {
  const size_t n = t.key_count();
  std::string params;
  for (size_t i = 1; i <= n; ++i) params += fmt::format("?{}, ", i);
  auto upsert = db.prepare(fmt::format(
      "INSERT INTO {0} ({1}, version, node, deleted, dirty) VALUES ({2}?{3}, ?{4}, ?{5}, 1) "
      "ON CONFLICT DO UPDATE SET version = excluded.version, node = excluded.node, "
      "deleted = excluded.deleted, dirty = 1",
      t.rows, key_list(n), params, n + 1, n + 2, n + 3));
  // Anti-entropy: the table's content digest follows every {rows} change (content_digest.hpp);
  // bucket sums are written once at the end of the table, not per key.
  DigestUpdater digest(db, DigestUpdater::Writes::Batched);
  Stmt before;
  if (digest.active())
    before = db.prepare(fmt::format("SELECT version, node, deleted FROM {} WHERE {}", t.rows,
                                    key_match(key_columns(n), 1)));
  const int64_t read = fold_log(db, t, clock, stats, [&](const FoldedKey& k) {
    std::optional<RowVersion> old;
    if (digest.active()) {
      bind_key(before, k.key);
      if (before.step())
        old = RowVersion{before.column_int(0), static_cast<uint64_t>(before.column_int(1)),
                         before.column_int(2) != 0};
      before.reset();
    }
    bind_key(upsert, k.key);
    upsert.bind(static_cast<int>(n + 1), k.version)
        .bind(static_cast<int>(n + 2), static_cast<int64_t>(node))
        .bind(static_cast<int>(n + 3), int64_t{k.deleted ? 1 : 0});
    upsert.run();
    digest.change(t.id, k.key, old, RowVersion{k.version, node, k.deleted});
    ++stats.keys;
  });
  digest.flush();
  if (read > 0) db.exec("DELETE FROM " + t.log);
}

}  // namespace

LogProbe::LogProbe(Db& db, const std::vector<CapturedTable>& tables) : tables_(tables.size()) {
  for (size_t first = 0; first < tables.size(); first += kTablesPerStatement) {
    std::string sql;
    for (size_t i = first; i < std::min(tables.size(), first + kTablesPerStatement); ++i)
      sql +=
          fmt::format("{}EXISTS (SELECT 1 FROM {})", sql.empty() ? "SELECT " : ", ", tables[i].log);
    statements_.push_back(db.prepare(sql));
  }
}

std::vector<bool> LogProbe::logged() {
  std::vector<bool> out;
  out.reserve(tables_);
  for (auto& s : statements_) {
    s.reset();
    if (s.step())
      for (int i = 0; i < s.column_count(); ++i) out.push_back(s.column_int(i) != 0);
    s.reset();  // ends the statement's read of the logs
  }
  out.resize(tables_, true);  // cannot happen; folding a table whose log is empty is harmless
  return out;
}

ClockBoundEvents& clock_bound_events() {
  static ClockBoundEvents events;
  return events;
}

FoldClock start_fold(Db& db, int64_t max_drift_ms) {
  FoldClock c;
  c.clock = load_clock(db);
  c.now_ms = std::min(wall_clock_ms(), kMaxHlcMs);
  c.limit = hlc_issue_limit(c.now_ms, max_drift_ms);
  if (c.clock > c.limit) {
    // The clock ran ahead (this host's clock was wrong and has been fixed, or an older version
    // accepted a peer's far-future versions). Keeping it would issue every fresh version beyond
    // the bound, refused by every peer; lowering it is safe because a row's new version still
    // exceeds that row's own previous version (next_version), whatever the clock says.
    c.lowered_ms = hlc_physical_ms(c.clock) - c.now_ms;
    c.clock = c.limit;
  }
  return c;
}

int64_t fold_log(Db& db, const CapturedTable& t, FoldClock& clock, FoldStats& stats,
                 const std::function<void(const FoldedKey&)>& emit) {
  const size_t n = t.key_count();
  const auto keys = key_columns(n);
  // One entry per key, in the order of its latest change (commit order: one writer at a time).
  auto pending = db.prepare(
      fmt::format("SELECT {0}, max(ms), min(weak IS NOT NULL), max(seq) FROM {1} GROUP BY {0} "
                  "ORDER BY max(seq)",
                  key_list(n), t.log));
  auto exists = db.prepare(fmt::format("SELECT 1 FROM {} WHERE {}", quote_ident(t.name),
                                       key_match(quoted_pk(t.info), 1)));
  auto previous =
      db.prepare(fmt::format("SELECT version FROM {} WHERE {}", t.rows, key_match(keys, 1)));
  int64_t read = 0;
  while (pending.step()) {
    ++read;
    FoldedKey folded;
    bool null_key = false;
    for (size_t i = 0; i < n; ++i) {
      folded.key.push_back(pending.column(static_cast<int>(i)));
      null_key = null_key || is_null(folded.key.back());
    }
    if (null_key) {
      ++stats.null_keys;
      continue;
    }
    // The ms a trigger logged, never beyond the clock now: a wall clock that was stepped back
    // since the write must not issue versions peers reject as being from the future.
    const int64_t ms =
        std::clamp<int64_t>(pending.column_int(static_cast<int>(n)), 0, clock.now_ms);
    const bool only_weak = pending.column_int(static_cast<int>(n + 1)) != 0;
    bind_key(exists, folded.key);
    const bool present = exists.step();
    exists.reset();
    if (only_weak && present) {
      ++stats.ignored_weak;  // the row a REPLACE could have removed is still there
      continue;
    }
    bind_key(previous, folded.key);
    std::optional<int64_t> row_version;
    if (previous.step()) row_version = previous.column_int(0);
    previous.reset();
    folded.version = next_version(clock.clock, ms, row_version, clock.limit);
    folded.deleted = !present;
    if (folded.version > clock.limit) {
      ++stats.beyond_bound;  // only a row already beyond the bound: its own previous version
    } else {
      clock.clock = std::max(clock.clock, folded.version);
    }
    emit(folded);
  }
  return read;
}

FoldStats fold_all(Db& db, const std::vector<CapturedTable>& tables, uint64_t node,
                   int64_t max_drift_ms, LogProbe* probe) {
  FoldStats stats;
  FoldClock clock = start_fold(db, max_drift_ms);
  stats.clock_lowered_ms = clock.lowered_ms;
  const int64_t before = clock.clock;
  std::optional<LogProbe> own;
  if (!probe) probe = &own.emplace(db, tables);
  const std::vector<bool> logged = probe->logged();
  for (size_t i = 0; i < tables.size(); ++i)
    if (logged[i]) fold_table(db, tables[i], node, clock, stats);
  if (clock.clock != before || clock.lowered_ms > 0) store_clock(db, clock.clock);
  if (stats.clock_lowered_ms > 0 || stats.beyond_bound > 0) {
    auto& events = clock_bound_events();
    if (stats.clock_lowered_ms > 0) {
      events.last_lowered_ms = stats.clock_lowered_ms;
      ++events.clock_lowered;
    }
    events.versions_beyond += stats.beyond_bound;
  }
  if (stats.null_keys > 0)  // reported by harmony_status() (capture_problems)
    meta_set(db, "null_key_changes", meta_get_int(db, "null_key_changes", 0) + stats.null_keys);
  return stats;
}

}  // namespace harmony
