// Read-only inspection shared by harmony_status(), harmony_checksum() and the replicator's logs,
// health endpoint and -cleanup: what is captured, what is pending, content checksums.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "shared/capture.hpp"

namespace harmony {

// {version, node_id, hlc, pending, tables: [{name, pending, triggers}], dead_letters,
//  positions: {stream: seq}, problems: [text...]} (problems: see capture_problems())
nlohmann::json status_json(Db& db);

// Human-readable problems with capture (dropped tables, missing/outdated triggers, UNIQUE
// indexes on expressions, changes lost to NULL keys): what harmony_status() reports.
std::vector<std::string> capture_problems(Db& db);

// Order-independent content checksum of one table (all replicated columns, typed values):
// equal on two nodes exactly when they hold the same rows. Hex string.
std::string table_checksum(Db& db, const std::string& table);
// Checksum over every captured table (table names included), hex string.
std::string database_checksum(Db& db);

// Serialises JSON for output: invalid UTF-8 in names is replaced instead of throwing.
std::string dump_json(const nlohmann::json& j);

}  // namespace harmony
