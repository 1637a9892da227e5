// Filling one captured table's part of a Batch: the table as the wire describes it (name, schema
// hash, columns, key columns) and each pending key with its values as they are now. The
// publisher's outbox (outbox.cpp) and a restore's carry-over of unpublished changes
// (snapshot.cpp) both describe tables and read rows through the functions below.
#pragma once
#include <cstdint>
#include <vector>

#include "shared/batch.hpp"
#include "shared/capture_registry.hpp"

namespace harmony {

// The table as the wire describes it: name, schema hash, replicated columns, key columns.
BatchTable batch_table_of(const CapturedTable& table);
// A statement reading a row's replicated columns by primary key (?1..?n).
Stmt prepare_row_reader(Db& db, const CapturedTable& table);
// Fills row.values with the row's current values, or, when the row is gone (deleted since it
// was folded), marks it deleted, as the fold would decide. Tombstones are left as they are.
void read_current_values(Stmt& reader, RowChange& row);

class BatchRows {
 public:
  // Rows added go to `batch` under the index the table will have once finish() adds it.
  BatchRows(Db& db, const CapturedTable& table, Batch& batch);

  // Adds one key with its version. A live row carries its current values; a row gone since it
  // was folded is sent as deleted, as the fold would decide.
  void add(std::vector<Value> key, int64_t version, bool deleted);
  // Adds every row of `rows`, a statement selecting "k1..kn, version, deleted".
  void add_all(Stmt& rows);

  // Adds the table to the batch when any row was added.
  void finish();

 private:
  Batch& batch_;
  uint32_t table_index_;
  BatchTable table_;
  Stmt read_;  // the replicated columns of one row, by primary key
  bool used_ = false;
};

}  // namespace harmony
