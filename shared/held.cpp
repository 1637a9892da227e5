// __harmony_held reads and writes (see held.hpp).
#include "shared/held.hpp"

#include <fmt/format.h>

#include "shared/batch.hpp"
#include "shared/capture_registry.hpp"
#include "shared/fold.hpp"
#include "shared/meta_store.hpp"
#include "shared/sqlite_db.hpp"

namespace harmony {

namespace {

HoldKind kind_from(const std::string& s) {
  if (s == "column") return HoldKind::Column;
  if (s == "clock") return HoldKind::Clock;
  if (s == "constraint") return HoldKind::Constraint;
  return HoldKind::Table;
}

}  // namespace

const char* to_string(HoldKind kind) {
  switch (kind) {
    case HoldKind::Table:
      return "table";
    case HoldKind::Column:
      return "column";
    case HoldKind::Clock:
      return "clock";
    case HoldKind::Constraint:
      return "constraint";
  }
  return "table";
}

HeldUsage store_held(Db& db, const HeldEntry& e) {
  auto s = db.prepare(
      "INSERT INTO __harmony_held(at_ms, stream, seq, origin_node, batch_id, table_name, kind, "
      "reason, row_count, attempts, payload) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, "
      "?11)");
  s.bind(1, e.at_ms).bind(2, e.stream).bind(3, static_cast<int64_t>(e.seq));
  s.bind(4, static_cast<int64_t>(e.origin)).bind(5, static_cast<int64_t>(e.batch_id));
  s.bind(6, e.table).bind(7, std::string(to_string(e.kind))).bind(8, e.reason);
  s.bind(9, e.rows).bind(10, e.attempts).bind(11, Value{Blob{e.payload}});
  s.run();
  return {1, e.rows, held_bytes(e)};
}

std::vector<HeldEntry> load_held(Db& db, const std::string& stream, int64_t after, size_t limit) {
  auto s = db.prepare(
      "SELECT id, at_ms, stream, seq, origin_node, batch_id, table_name, kind, reason, row_count, "
      "attempts, payload FROM __harmony_held WHERE stream = ?1 AND id > ?2 ORDER BY id LIMIT ?3");
  s.bind(1, stream).bind(2, after).bind(3, static_cast<int64_t>(limit));
  std::vector<HeldEntry> out;
  while (s.step()) {
    HeldEntry e;
    e.id = s.column_int(0);
    e.at_ms = s.column_int(1);
    e.stream = s.column_text(2);
    e.seq = static_cast<uint64_t>(s.column_int(3));
    e.origin = static_cast<uint64_t>(s.column_int(4));
    e.batch_id = static_cast<uint64_t>(s.column_int(5));
    e.table = s.column_text(6);
    e.kind = kind_from(s.column_text(7));
    e.reason = s.column_text(8);
    e.rows = s.column_int(9);
    e.attempts = s.column_int(10);
    e.payload = s.column_text(11);
    out.push_back(std::move(e));
  }
  return out;
}

HeldUsage forget_held(Db& db, const HeldEntry& e) {
  auto s = db.prepare("DELETE FROM __harmony_held WHERE id = ?1");
  s.bind(1, e.id).run();
  if (db.changes() == 0) return {};  // already gone (removed by -drop-held meanwhile)
  return {-1, -e.rows, -held_bytes(e)};
}

void forget_held_ids(Db& db, const std::vector<int64_t>& ids) {
  auto s = db.prepare("DELETE FROM __harmony_held WHERE id = ?1");
  for (int64_t id : ids) {
    s.reset();
    s.bind(1, id).run();
  }
  bump_held_epoch(db);
}

namespace {
constexpr const char* kHeldEpochKey = "held_epoch";
}  // namespace

int64_t held_epoch(Db& db) {
  return meta_get_int(db, kHeldEpochKey, 0);
}

void bump_held_epoch(Db& db) {
  meta_set(db, kHeldEpochKey, held_epoch(db) + 1);
}

HeldUsage update_held(Db& db, const HeldEntry& e, const HeldUsage& was) {
  auto s = db.prepare(
      "UPDATE __harmony_held SET kind = ?2, reason = ?3, row_count = ?4, attempts = ?5, "
      "payload = ?6 WHERE id = ?1");
  s.bind(1, e.id).bind(2, std::string(to_string(e.kind))).bind(3, e.reason).bind(4, e.rows);
  s.bind(5, e.attempts).bind(6, Value{Blob{e.payload}});
  s.run();
  if (db.changes() == 0) return {};
  return {0, e.rows - was.rows, held_bytes(e) - was.bytes};
}

HeldSummary held_summary(Db& db, const std::string& stream) {
  const char* where = stream.empty() ? "" : " WHERE stream = ?1";
  HeldSummary out;
  {
    auto s = db.prepare(std::string("SELECT count(*), coalesce(sum(row_count), 0), "
                                    "coalesce(sum(length(payload)), 0), coalesce(min(at_ms), 0) "
                                    "FROM __harmony_held") +
                        where);
    if (!stream.empty()) s.bind(1, stream);
    if (s.step()) {
      out.entries = s.column_int(0);
      out.rows = s.column_int(1);
      out.bytes = s.column_int(2);
      out.oldest_at_ms = s.column_int(3);
    }
  }
  if (out.entries > 0) {
    auto s = db.prepare(std::string("SELECT table_name, reason FROM __harmony_held") + where +
                        " ORDER BY id LIMIT 1");
    if (!stream.empty()) s.bind(1, stream);
    if (s.step()) out.oldest_reason = s.column_text(1);
  }
  return out;
}

std::pair<int64_t, std::string> held_oldest(Db& db, const std::string& stream) {
  // By id: the walk stops at the stream's first entry (with one stream per node's shard count
  // of 1, the table's first row), no sort, no full scan.
  auto s =
      db.prepare("SELECT at_ms, reason FROM __harmony_held WHERE stream = ?1 ORDER BY id LIMIT 1");
  s.bind(1, stream);
  if (!s.step()) return {0, {}};
  return {s.column_int(0), s.column_text(1)};
}

Batch held_rows_batch(const Batch& batch, size_t table_entry, const std::vector<size_t>& rows) {
  Batch out;
  out.origin_node = batch.origin_node;
  out.batch_id = batch.batch_id;
  out.tables.push_back(batch.tables[table_entry]);
  out.rows.reserve(rows.size());
  for (size_t i : rows) {
    RowChange r = batch.rows[i];
    r.table = 0;
    out.rows.push_back(std::move(r));
  }
  return out;
}

int64_t mark_own_rows_pending(Db& db, const Batch& batch, uint64_t node) {
  int64_t marked = 0;
  for (uint32_t ti = 0; ti < batch.tables.size(); ++ti) {
    auto table = find_captured(db, batch.tables[ti].name);
    if (!table) continue;
    const auto keys = key_columns(table->key_count());
    auto mark =
        db.prepare(fmt::format("UPDATE {} SET dirty = 1 WHERE {} AND version = ?{} AND node = ?{}",
                               table->rows, key_match(keys, 1), keys.size() + 1, keys.size() + 2));
    // The key follows the writer's key column order, which is the local one: the writer is us.
    for (const auto& row : batch.rows) {
      if (row.table != ti || row.key.size() != keys.size()) continue;
      mark.reset();
      for (size_t i = 0; i < row.key.size(); ++i) mark.bind(static_cast<int>(i + 1), row.key[i]);
      mark.bind(static_cast<int>(row.key.size() + 1), row.hlc);
      mark.bind(static_cast<int>(row.key.size() + 2), static_cast<int64_t>(node));
      mark.run();
      marked += db.changes();
    }
  }
  return marked;
}

}  // namespace harmony
