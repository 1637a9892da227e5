// Schema hashes of the replicated tables: which local hash each has (and which it had before),
// recorded in __harmony_meta for the cluster's schema registry, `-schema-status` and /health.
// They are informational: received rows are applied by column name whatever hash they carry
// (shared/apply.hpp maps columns renamed or dropped here through shared/column_history.hpp, and
// holds rows that need a table or column this node does not have yet).
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
#include "shared/column_history.hpp"

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

// Inside a write transaction: records each captured table's current hash in __harmony_meta;
// when it differs from the one recorded before, the old one becomes the most recent previous
// hash. Returns the names of tables whose hash changed (not those seen for the first time).
std::vector<std::string> record_schema_hashes(Db& db, const std::vector<CapturedTable>& tables);

// The recorded (current, previous) hashes, by lower-case table name. Read-only; empty when
// nothing was recorded yet.
std::map<std::string, std::string> recorded_schema_hashes(Db& db);
std::map<std::string, std::vector<std::string>> recorded_previous_hashes(Db& db);

}  // namespace harmony
