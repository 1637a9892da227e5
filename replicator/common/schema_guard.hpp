// Schema versioning on the apply path: which local schema hash each replicated table has (and
// which hashes it had before), whether a received batch may be applied under it, and the
// bookkeeping of previous hashes in __harmony_meta. The consumer (replicator/receive/consumer.cpp)
// pauses its stream on a mismatch and resumes when check_batch_schema() passes again.
//
// Rules for one table of a received batch (BatchTable::schema_hash, from TableInfo::schema_hash
// on the sender):
//   - empty hash: no claim about the schema (raw or foreign publishers): apply; the Applier
//     still checks every table and column by name (unknown column -> dead letter, P6);
//   - table not captured here: not a pause; the Applier dead-letters its rows (P6). Except a
//     table that exists here, is selected and eligible, but whose capture the publisher has not
//     installed yet (DDL a moment ago): the stream waits for it like for a mismatch;
//   - hash equal to the local hash, or to one of the local previous hashes (the sender has not
//     upgraded yet during a rolling upgrade): apply;
//   - anything else: mismatch. The stream pauses at that batch (nothing acknowledged, applied
//     or dropped; the position stays before it) until the local schema changes to match.
#pragma once
#include <atomic>
#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "replicator/common/capture_sync.hpp"
#include "replicator/common/stats.hpp"
#include "shared/batch.hpp"
#include "shared/capture.hpp"

namespace harmony {

// How many earlier hashes of a table are remembered (and accepted from lagging senders).
inline constexpr size_t kSchemaHistory = 8;

struct LocalSchema {
  std::map<std::string, TableSchemaState> tables;  // by lower-case table name
  // Lower-case names of tables present, selected and eligible, but not captured yet.
  std::set<std::string> uncaptured;

  // Live hashes of the captured tables, with the previous hashes recorded in __harmony_meta
  // (a hash recorded there that differs from the live one counts as previous too, so the answer
  // is right even before the publisher noticed a schema change). Read-only. With `selection`,
  // also lists the tables that the publisher is about to capture (`uncaptured`).
  static LocalSchema load(Db& db, const TableSelection* selection = nullptr);
  static LocalSchema from(const std::vector<CapturedTable>& tables,
                          const std::map<std::string, std::string>& recorded,
                          const std::map<std::string, std::vector<std::string>>& previous);
  const TableSchemaState* find(std::string_view table) const;
  // Keyed by the tables' own spelling, for stats, health and the registry.
  std::map<std::string, TableSchemaState> by_name() const { return named_; }

 private:
  std::map<std::string, TableSchemaState> named_;
};

struct SchemaMismatch {
  std::string table;
  std::string incoming;  // the batch's hash
  std::string local;     // this node's hash
  std::vector<std::string> previous;
  bool not_captured_yet = false;  // the table exists here; capture is being installed
  // "table Books: batch 7 from node 1 has schema 1a2b..., this node has 3c4d... (previous ...)"
  std::string describe(uint64_t origin, uint64_t batch) const;
};

// nullopt: the batch may be applied. Otherwise the first table that forbids it.
std::optional<SchemaMismatch> check_batch_schema(const Batch& batch, const LocalSchema& local);

// Blocks a paused stream until `batch` fits the local schema: re-reads the schema whenever
// PRAGMA schema_version or `generation` (the publisher's count of capture updates after DDL)
// changes, and every `recheck` anyway; repeats the warning every `remind`. Returns true when the
// batch fits (`schema` then holds the new local schema), false when `stop` became true.
bool wait_for_schema(Db& db, const Batch& batch, const std::string& stream, LocalSchema& schema,
                     const std::atomic<bool>& stop, const std::atomic<uint64_t>* generation,
                     const TableSelection* selection,
                     std::chrono::milliseconds recheck = std::chrono::seconds(5),
                     std::chrono::milliseconds remind = std::chrono::seconds(60));

// Inside a write transaction: records each captured table's current hash in __harmony_meta;
// when it differs from the one recorded before, the old one becomes the most recent previous
// hash. Returns the names of tables whose hash changed (not those seen for the first time).
std::vector<std::string> record_schema_hashes(Db& db, const std::vector<CapturedTable>& tables);

// The recorded (current, previous) hashes, by lower-case table name. Read-only; empty when
// nothing was recorded yet.
std::map<std::string, std::string> recorded_schema_hashes(Db& db);
std::map<std::string, std::vector<std::string>> recorded_previous_hashes(Db& db);

}  // namespace harmony
