// Filling one table's part of a Batch (see batch_rows.hpp).
#include "shared/batch_rows.hpp"

#include <fmt/format.h>

#include "shared/fold.hpp"

namespace harmony {

BatchRows::BatchRows(Db& db, const CapturedTable& table, Batch& batch)
    : batch_(batch), table_index_(static_cast<uint32_t>(batch.tables.size())) {
  table_.name = table.name;
  table_.schema_hash = table.info.schema_hash();
  table_.local_id = table.id;
  std::string select_cols;
  for (const auto* c : table.info.replicated_columns()) {
    table_.columns.push_back(c->name);
    select_cols += (select_cols.empty() ? "" : ", ") + quote_ident(c->name);
  }
  for (const auto* c : table.info.primary_key()) table_.key_columns.push_back(c->name);
  read_ = db.prepare(fmt::format("SELECT {} FROM {} WHERE {}", select_cols, quote_ident(table.name),
                                 key_match(quoted_pk(table.info), 1)));
}

void BatchRows::add(std::vector<Value> key, int64_t version, bool deleted) {
  RowChange row;
  row.table = table_index_;
  row.hlc = version;
  row.deleted = deleted;
  row.key = std::move(key);
  if (!row.deleted) {
    read_.reset();
    for (size_t i = 0; i < row.key.size(); ++i) read_.bind(static_cast<int>(i + 1), row.key[i]);
    if (read_.step()) {
      for (int c = 0; c < read_.column_count(); ++c) row.values.push_back(read_.column(c));
    } else {
      row.deleted = true;  // gone since it was folded: the fold would say so too
    }
    read_.reset();
  }
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
