// Keeps capture installed on the tables this node replicates, at start-up and after DDL:
// new tables get capture, missing triggers are repaired, dropped tables leave the registry.
// Uses the same shared/capture.cpp code as harmony_enable().
#pragma once
#include <string>
#include <vector>

#include "shared/capture.hpp"

namespace harmony {

struct TableSelection {
  std::vector<std::string> include;  // empty = every eligible table
  std::vector<std::string> exclude;
  bool capture_existing_rows = false;
  bool selected(const std::string& table) const;
};

struct SyncReport {
  std::vector<std::string> enabled;   // newly captured
  std::vector<std::string> updated;   // triggers outdated (another release, UNIQUE index): replaced
  std::vector<std::string> repaired;  // triggers missing: reinstalled
  std::vector<std::string> dropped;   // registry entries of dropped tables removed
  std::vector<std::string> skipped;   // "reason" for selected tables that cannot be captured
  std::vector<std::string> missing;   // included by name but not present
  // Application triggers on captured tables that write another captured table and also fire
  // for applied rows (shared/app_triggers.hpp): one warning line each.
  std::vector<std::string> app_triggers;
};

// When the reconciliation runs. At start-up, rows already in a table that gets capture now are
// taken as the same on every node (the seed's case; `capture_existing_rows` says otherwise).
// After DDL seen while running, a new table's rows were written after it was created, by this
// node's applications, in the moment before capture reached it: they are captured too.
enum class SyncMoment { StartUp, AfterDdl };

// Must run inside a write transaction.
SyncReport sync_capture(Db& db, const TableSelection& selection,
                        SyncMoment moment = SyncMoment::StartUp);
void log_sync_report(const SyncReport& report);

}  // namespace harmony
