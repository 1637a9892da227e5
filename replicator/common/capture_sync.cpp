// Start-up and post-DDL capture reconciliation (see capture_sync.hpp).
#include "replicator/common/capture_sync.hpp"

#include <spdlog/spdlog.h>

#include "shared/app_triggers.hpp"
#include "shared/names.hpp"

namespace harmony {

bool TableSelection::selected(const std::string& table) const {
  for (const auto& e : exclude)
    if (same_ident(e, table)) return false;
  if (include.empty()) return true;
  for (const auto& i : include)
    if (same_ident(i, table)) return true;
  return false;
}

SyncReport sync_capture(Db& db, const TableSelection& selection, SyncMoment moment) {
  ensure_base_schema(db);
  SyncReport report;
  for (const auto& [id, name] : dropped_captured_tables(db)) {
    if (auto t = find_captured(db, name); !t) {
      disable_table(db, name, true);  // the table is gone: its pending changes went with it
      report.dropped.push_back(name);
    }
    (void)id;
  }
  EnableOptions opts;
  opts.capture_existing_rows = selection.capture_existing_rows || moment == SyncMoment::AfterDdl;
  for (const auto& name : list_tables(db)) {
    if (names::is_reserved(name) || !selection.selected(name)) continue;
    if (auto why = ineligibility(db, name)) {
      if (!selection.include.empty())
        report.skipped.push_back(*why);  // asked for it by name
      else if (table_kind(db, name) == TableKind::Table)
        report.skipped.push_back(*why);
      continue;
    }
    auto before = find_captured(db, name);
    const auto state = before ? capture_trigger_state(db, *before) : TriggerState::Missing;
    // Installed and complete: leave it alone (reinstalling would itself be a schema change).
    // The state expects the UNIQUE-index triggers when such an index exists, so a new UNIQUE
    // index also leads to a reinstall.
    if (state == TriggerState::Complete) continue;
    bool fresh = enable_table(db, name, opts);
    // Outdated triggers (another release's, a UNIQUE index added or dropped) captured every
    // write: say so, not that writes may be lost.
    (fresh                             ? report.enabled
     : state == TriggerState::Outdated ? report.updated
                                       : report.repaired)
        .push_back(name);
  }
  for (const auto& want : selection.include) {
    bool found = false;
    for (const auto& name : list_tables(db)) found = found || same_ident(name, want);
    if (!found) report.missing.push_back(want);
  }
  // Tables no longer selected (config changed): stop capturing them, keeping nothing pending.
  for (const auto& t : captured_tables(db)) {
    if (!selection.selected(t.name)) {
      disable_table(db, t.name, true);
      spdlog::info("table {} is no longer selected for replication; capture removed", t.name);
    }
  }
  // Checked on every run (start-up and each DDL): CREATE TRIGGER is DDL, and so is changing
  // which tables are captured, either of which can make a trigger's target diverge.
  report.app_triggers = app_trigger_warnings(db);
  return report;
}

void log_sync_report(const SyncReport& r) {
  for (const auto& t : r.enabled) spdlog::info("capture installed on table {}", t);
  for (const auto& t : r.updated)
    spdlog::info(
        "capture triggers of table {} were replaced by this release's (another release's text, "
        "or a UNIQUE index added or dropped); every write had been captured",
        t);
  for (const auto& t : r.repaired)
    spdlog::warn(
        "capture triggers of table {} were missing and have been reinstalled; writes "
        "made while they were missing were not captured",
        t);
  for (const auto& t : r.dropped)
    spdlog::warn("table {} was dropped; its capture objects were removed", t);
  for (const auto& s : r.skipped) spdlog::warn("not replicated: {}", s);
  for (const auto& t : r.missing)
    spdlog::warn("include_tables names {} but the database has no such table", t);
  for (const auto& w : r.app_triggers) spdlog::warn("{}", w);
}

}  // namespace harmony
