// What a running replicator leaves in its database (pid, NATS URL) so that other invocations
// (-save-snapshot, -cleanup, -schema-status) can find it, and how they recognise that the
// process recorded there is still a harmonylite replicator.
#pragma once
#include <cstdint>
#include <optional>
#include <string>

#include "shared/sqlite_db.hpp"

namespace harmony {

struct RuntimeInfo {
  int64_t pid = 0;
  std::string nats_url;
};

// Written inside the caller's transaction: this process's pid and the URL it reaches NATS by.
void record_runtime_info(Db& db, const std::string& nats_url);
// Written inside the caller's transaction when the replicator stops.
void clear_runtime_info(Db& db);

// The replicator recorded in `db_path`, when that process still runs the harmonylite executable
// (and is not this process); nullopt otherwise or when the database cannot be read.
std::optional<RuntimeInfo> running_replicator(const std::string& db_path);

}  // namespace harmony
