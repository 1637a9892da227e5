// Filling one table's part of a Batch (see batch_rows.hpp).
#include "shared/batch_rows.hpp"

#include <fmt/format.h>

#include "shared/fold.hpp"

namespace harmony {

BatchTable batch_table_of(const CapturedTable& table) {
  BatchTable bt;
  bt.name = table.name;
  bt.schema_hash = table.info.schema_hash();
  bt.local_id = table.id;
  for (const auto* c : table.info.replicated_columns()) bt.columns.push_back(c->name);
  for (const auto* c : table.info.primary_key()) bt.key_columns.push_back(c->name);
  return bt;
}

Stmt prepare_row_reader(Db& db, const CapturedTable& table) {
  std::string select_cols;
  for (const auto* c : table.info.replicated_columns())
    select_cols += (select_cols.empty() ? "" : ", ") + quote_ident(c->name);
  return db.prepare(fmt::format("SELECT {} FROM {} WHERE {}", select_cols, quote_ident(table.name),
                                key_match(quoted_pk(table.info), 1)));
}

void read_current_values(Stmt& reader, RowChange& row) {
  if (row.deleted) return;
  reader.reset();
  for (size_t i = 0; i < row.key.size(); ++i) reader.bind(static_cast<int>(i + 1), row.key[i]);
  if (reader.step()) {
    for (int c = 0; c < reader.column_count(); ++c) row.values.push_back(reader.column(c));
  } else {
    row.deleted = true;
  }
  reader.reset();
}

BatchRows::BatchRows(Db& db, const CapturedTable& table, Batch& batch)
    : batch_(batch),
      table_index_(static_cast<uint32_t>(batch.tables.size())),
      table_(batch_table_of(table)),
      read_(prepare_row_reader(db, table)) {}

void BatchRows::add(std::vector<Value> key, int64_t version, bool deleted) {
  RowChange row;
  row.table = table_index_;
  row.hlc = version;
  row.deleted = deleted;
  row.key = std::move(key);
  read_current_values(read_, row);
  batch_.rows.push_back(std::move(row));
  used_ = true;
}

void BatchRows::add_all(Stmt& rows) {
  const size_t n = table_.key_columns.size();
  while (rows.step()) {
    std::vector<Value> key;
    for (size_t i = 0; i < n; ++i) key.push_back(rows.column(static_cast<int>(i)));
    add(std::move(key), rows.column_int(static_cast<int>(n)),
        rows.column_int(static_cast<int>(n + 1)) != 0);
  }
}

void BatchRows::finish() {
  if (used_) batch_.tables.push_back(std::move(table_));
}

}  // namespace harmony
