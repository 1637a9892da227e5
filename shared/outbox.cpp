// Collecting pending changes into batches and acknowledging them (see outbox.hpp).
#include "shared/outbox.hpp"

#include <fmt/format.h>

#include "shared/fold.hpp"
#include "shared/names.hpp"

namespace harmony {

Batch collect_pending(Db& db, const std::vector<CapturedTable>& tables, uint64_t node,
                      size_t max_rows) {
  fold_all(db, tables, node);
  Batch batch;
  batch.origin_node = node;
  for (const auto& t : tables) {
    if (batch.rows.size() >= max_rows) break;
    const size_t n = t.key_count();
    const auto keys = key_columns(n);
    std::string key_list;
    for (size_t i = 0; i < n; ++i) key_list += (i ? ", " : "") + keys[i];
    auto dirty = db.prepare(
        fmt::format("SELECT {}, version, deleted FROM {} WHERE dirty ORDER BY version LIMIT ?1",
                    key_list, t.rows));
    dirty.bind(1, static_cast<int64_t>(max_rows - batch.rows.size()));

    BatchTable bt;
    bt.name = t.name;
    bt.schema_hash = t.info.schema_hash();
    bt.local_id = t.id;
    std::string select_cols;
    for (const auto* c : t.info.replicated_columns()) {
      bt.columns.push_back(c->name);
      select_cols += (select_cols.empty() ? "" : ", ") + quote_ident(c->name);
    }
    for (const auto* c : t.info.primary_key()) bt.key_columns.push_back(c->name);
    auto read = db.prepare(fmt::format("SELECT {} FROM {} WHERE {}", select_cols,
                                       quote_ident(t.name), key_match(quoted_pk(t.info), 1)));
    const auto table_index = static_cast<uint32_t>(batch.tables.size());
    bool used = false;
    while (dirty.step()) {
      RowChange row;
      row.table = table_index;
      for (size_t i = 0; i < n; ++i) row.key.push_back(dirty.column(static_cast<int>(i)));
      row.hlc = dirty.column_int(static_cast<int>(n));
      row.deleted = dirty.column_int(static_cast<int>(n + 1)) != 0;
      if (!row.deleted) {
        read.reset();
        for (size_t i = 0; i < n; ++i) read.bind(static_cast<int>(i + 1), row.key[i]);
        if (read.step()) {
          for (int c = 0; c < read.column_count(); ++c) row.values.push_back(read.column(c));
        } else {
          row.deleted = true;  // cannot happen after a fold in this transaction; be safe anyway
        }
      }
      batch.rows.push_back(std::move(row));
      used = true;
    }
    if (used) batch.tables.push_back(std::move(bt));
  }
  if (!batch.rows.empty()) {
    int64_t id = meta_get_int(db, "next_batch_id", 1);
    batch.batch_id = static_cast<uint64_t>(id);
    meta_set(db, "next_batch_id", id + 1);
  }
  return batch;
}

int64_t mark_published(Db& db, const Batch& batch) {
  int64_t cleared = 0;
  for (uint32_t ti = 0; ti < batch.tables.size(); ++ti) {
    const auto& bt = batch.tables[ti];
    const auto keys = key_columns(bt.key_columns.size());
    auto clear = db.prepare(fmt::format(
        "UPDATE {} SET dirty = 0 WHERE {} AND version = ?{} AND dirty",
        quote_ident(names::rows_table(bt.local_id)), key_match(keys, 1), keys.size() + 1));
    for (const auto& row : batch.rows) {
      if (row.table != ti) continue;
      clear.reset();
      for (size_t i = 0; i < row.key.size(); ++i) clear.bind(static_cast<int>(i + 1), row.key[i]);
      clear.bind(static_cast<int>(row.key.size() + 1), row.hlc);
      clear.run();
      cleared += db.changes();
    }
  }
  return cleared;
}

int64_t total_pending(Db& db, const std::vector<CapturedTable>& tables) {
  int64_t n = 0;
  for (const auto& t : tables) n += pending_changes(db, t);
  return n;
}

}  // namespace harmony
