// Collecting pending changes into batches and acknowledging them (see outbox.hpp).
#include "shared/outbox.hpp"

#include <optional>

#include <fmt/format.h>

#include "shared/batch_rows.hpp"
#include "shared/fold.hpp"
#include "shared/names.hpp"

namespace harmony {

namespace {

// One table's dirty rows, oldest version first, stepped only as far as the merge below takes
// them (the partial index on version where dirty serves the ORDER BY without a sort).
struct PendingCursor {
  const CapturedTable* table = nullptr;
  Stmt dirty;
  bool has_row = false;

  PendingCursor(Db& db, const CapturedTable& t, size_t max_rows) : table(&t) {
    std::string key_list;
    const auto keys = key_columns(t.key_count());
    for (size_t i = 0; i < keys.size(); ++i) key_list += (i ? ", " : "") + keys[i];
    dirty = db.prepare(
        fmt::format("SELECT {}, version, deleted FROM {} WHERE dirty ORDER BY version LIMIT ?1",
                    key_list, t.rows));
    dirty.bind(1, static_cast<int64_t>(max_rows));
    advance();
  }
  void advance() { has_row = dirty.step(); }
  int64_t version() const { return dirty.column_int(static_cast<int>(table->key_count())); }
};

// A table's entry in the batch, created when its first row is taken, and the statement that
// reads a live row's current values.
struct BatchTableReader {
  uint32_t batch_index = 0;
  Stmt read;
};

BatchTableReader add_batch_table(Db& db, const CapturedTable& t, Batch& batch) {
  BatchTableReader reader{static_cast<uint32_t>(batch.tables.size()), prepare_row_reader(db, t)};
  batch.tables.push_back(batch_table_of(t));
  return reader;
}

// The row under `cursor`, with its current values unless it is a tombstone.
RowChange take_row(const PendingCursor& cursor, BatchTableReader& reader) {
  const size_t n = cursor.table->key_count();
  RowChange row;
  row.table = reader.batch_index;
  for (size_t i = 0; i < n; ++i) row.key.push_back(cursor.dirty.column(static_cast<int>(i)));
  row.hlc = cursor.version();
  row.deleted = cursor.dirty.column_int(static_cast<int>(n + 1)) != 0;
  // A row gone after the fold cannot happen within this transaction; sent as deleted anyway.
  read_current_values(reader.read, row);
  return row;
}

// What a row adds to a batch, as the receiver's decoder counts it (kMaxBatch* in batch.hpp):
// CBOR items, and bytes of texts and blobs (with up to 9 bytes of head per value).
struct RowCost {
  size_t items = 0, bytes = 0;
};
RowCost cost_of(const RowChange& row) {
  constexpr size_t kValueHeadBytes = 9;
  RowCost c{kBatchItemsPerRow + row.key.size() + row.values.size(), 0};
  for (const auto* values : {&row.key, &row.values})
    for (const auto& v : *values) {
      c.bytes += kValueHeadBytes;
      if (const auto* t = std::get_if<Text>(&v)) c.bytes += t->bytes.size();
      if (const auto* b = std::get_if<Blob>(&v)) c.bytes += b->bytes.size();
    }
  return c;
}

}  // namespace

Batch collect_pending(Db& db, const std::vector<CapturedTable>& tables, uint64_t node,
                      size_t max_rows, int64_t max_drift_ms) {
  fold_all(db, tables, node, max_drift_ms);
  Batch batch;
  batch.origin_node = node;
  std::vector<PendingCursor> cursors;
  cursors.reserve(tables.size());
  for (const auto& t : tables) cursors.emplace_back(db, t, max_rows);
  std::vector<std::optional<BatchTableReader>> readers(tables.size());
  // Merge by version across tables: the fold issues versions in commit order from one clock, so
  // the oldest rows overall go first, a busy table cannot starve the others, and a batch cut at
  // max_rows still holds whole source transactions up to the cut.
  // Half the receivers' limits (batch.hpp): every batch this makes decodes everywhere.
  constexpr RowCost kBudget{kMaxBatchItems / 2, kMaxBatchStringBytes / 2};
  RowCost used;
  while (batch.rows.size() < max_rows) {
    PendingCursor* oldest = nullptr;
    size_t oldest_index = 0;
    for (size_t i = 0; i < cursors.size(); ++i) {
      if (cursors[i].has_row && (!oldest || cursors[i].version() < oldest->version())) {
        oldest = &cursors[i];
        oldest_index = i;
      }
    }
    if (!oldest) break;
    auto& reader = readers[oldest_index];
    if (!reader) reader = add_batch_table(db, *oldest->table, batch);
    RowChange row = take_row(*oldest, *reader);
    const RowCost cost = cost_of(row);
    // The row stays pending for the next batch; a batch always takes its first row.
    if (!batch.rows.empty() &&
        (used.items + cost.items > kBudget.items || used.bytes + cost.bytes > kBudget.bytes))
      break;
    used.items += cost.items;
    used.bytes += cost.bytes;
    batch.rows.push_back(std::move(row));
    oldest->advance();
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
