// The unit of replication: every change pending on one node at one instant (a consistent
// snapshot of committed state), so whole source transactions travel and apply together.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "shared/value.hpp"

namespace harmony {

// What one batch may hold on the wire. Receivers refuse a batch beyond these while decoding it
// (replicator/wire/codec.hpp, DecodeLimits), which bounds their memory whatever a message claims;
// the publisher cuts its batches at half of each (shared/outbox.cpp), leaving room for CBOR's own
// bytes, so no valid batch is ever refused. A single row above half the string budget still
// travels alone; above the whole budget receivers dead-letter it (README, Limitations).
inline constexpr size_t kMaxBatchBodyBytes = size_t{32} << 20;    // decoded CBOR body
inline constexpr size_t kMaxBatchStringBytes = size_t{32} << 20;  // texts, blobs and map keys
inline constexpr size_t kMaxBatchItems = 3'000'000;  // CBOR items: numbers, strings, containers
// CBOR items a row costs besides its key and column values (its array, table index, version,
// tombstone flag, key and values arrays).
inline constexpr size_t kBatchItemsPerRow = 6;

struct BatchTable {
  std::string name;
  std::string schema_hash;
  std::vector<std::string> columns;      // columns carried by live rows, in this order
  std::vector<std::string> key_columns;  // primary key columns, in PK order
  int64_t local_id = 0;                  // sender-side registry id; never sent on the wire
};

struct RowChange {
  uint32_t table = 0;         // index into Batch::tables
  int64_t hlc = 0;            // version (the node is the batch's origin)
  bool deleted = false;       // tombstone
  std::vector<Value> key;     // primary key values, in key_columns order
  std::vector<Value> values;  // live rows: one value per BatchTable::columns; empty for tombstones
};

struct Batch {
  uint64_t origin_node = 0;
  uint64_t batch_id = 0;  // per-origin, increasing
  std::vector<BatchTable> tables;
  std::vector<RowChange> rows;
};

}  // namespace harmony
