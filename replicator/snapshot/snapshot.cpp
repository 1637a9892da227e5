// Snapshots, database side: make_snapshot_file (copy + scrub of node-local state) and
// restore_into (pending changes and node-local meta carried over, then one backup-API copy into
// the live database under its write lock). See snapshot.hpp. A snapshot file comes from a store
// others may write to: restore opens it defensively and refuses content harmonylite would never
// have put there (foreign triggers and views, a damaged file, a clock far in the future).
#include "replicator/snapshot/snapshot.hpp"

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <optional>
#include <thread>
#include <vector>

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <spdlog/spdlog.h>
#include <nlohmann/json.hpp>

#include "replicator/snapshot/transfer_status.hpp"
#include "replicator/wire/codec.hpp"
#include "replicator/wire/held_payload.hpp"
#include "shared/apply.hpp"
#include "shared/batch.hpp"
#include "shared/batch_rows.hpp"
#include "shared/capture.hpp"
#include "shared/clock.hpp"
#include "shared/digest.hpp"
#include "shared/fold.hpp"
#include "shared/held.hpp"
#include "shared/hlc.hpp"
#include "shared/names.hpp"
#include "shared/schema.hpp"

namespace harmony {

namespace {

constexpr const char* kOwnUntilPrefix = "restore_apply_own_until:";

struct BackupDeleter {
  void operator()(sqlite3_backup* b) const { sqlite3_backup_finish(b); }
};
using BackupPtr = std::unique_ptr<sqlite3_backup, BackupDeleter>;

struct FileCloser {
  void operator()(std::FILE* f) const { std::fclose(f); }
};

double seconds_since(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
}

double mb(uint64_t bytes) {
  return static_cast<double>(bytes) / (1024.0 * 1024.0);
}

bool has_table(Db& db, const char* name) {
  auto s = db.prepare("SELECT 1 FROM sqlite_schema WHERE type = 'table' AND name = ?1");
  s.bind(1, std::string_view(name));
  return s.step();
}

// Our per-table storage tables of one kind ("log" or "rows"), by name.
std::vector<std::string> storage_tables(Db& db, const char* kind) {
  std::vector<std::string> out;
  auto s = db.prepare(
      "SELECT name FROM sqlite_schema WHERE type = 'table' AND name LIKE ?1 ESCAPE '\\'");
  s.bind(1, fmt::format("\\_\\_harmony\\_{}\\_%", kind));
  while (s.step()) out.push_back(s.column_text(0));
  return out;
}

// Copies all of `src` into `dst` in one step (one read transaction on the source: a consistent
// copy; in WAL mode writers of the source are not blocked).
void copy_whole(Db& src, Db& dst, const std::string& what) {
  BackupPtr b(sqlite3_backup_init(dst.handle(), "main", src.handle(), "main"));
  if (!b) throw Error(fmt::format("{}: cannot start the copy: {}", what, dst.errmsg()));
  for (int attempt = 0;; ++attempt) {
    int rc = sqlite3_backup_step(b.get(), -1);
    if (rc == SQLITE_DONE) break;
    if ((rc == SQLITE_BUSY || rc == SQLITE_LOCKED) && attempt < 600) {
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
      continue;
    }
    throw Error(fmt::format("{}: copy failed: {}", what, sqlite3_errstr(rc)));
  }
  int rc = sqlite3_backup_finish(b.release());
  if (rc != SQLITE_OK) throw Error(fmt::format("{}: copy failed: {}", what, sqlite3_errstr(rc)));
}

// Every user table (ordinary, not ours, not sqlite_*) with its schema hash.
std::map<std::string, std::string> user_table_hashes(Db& db) {
  std::map<std::string, std::string> out;
  for (const auto& name : list_tables(db)) {
    if (names::is_reserved(name) || table_kind(db, name) != TableKind::Table) continue;
    try {
      out[name] = describe_table(db, name).schema_hash();
    } catch (const Error&) {
      // A table SQLite itself cannot describe is left out of the comparison.
    }
  }
  return out;
}

// This node's unpublished changes as a batch, read without writing: dirty rows as they are,
// and the change logs through fold_log, the rule fold_all folds them by (same versions, same
// order, same shared clock). `clock` ends as the clock fold_all would have stored.
Batch read_pending(Db& db, uint64_t node, int64_t& clock) {
  Batch batch;
  batch.origin_node = node;
  clock = load_clock(db);
  if (!has_table(db, names::kTables)) return batch;
  FoldClock fold = start_fold(db);
  FoldStats ignored;  // fold_all counts these when it runs
  for (const auto& t : captured_tables(db)) {
    const size_t n = t.key_count();
    BatchRows rows(db, t, batch);
    auto dirty =
        db.prepare(fmt::format("SELECT {}, version, deleted FROM {} WHERE dirty ORDER BY version",
                               fmt::join(key_columns(n), ", "), t.rows));
    rows.add_all(dirty);
    // A later log entry for a key also among the dirty rows carries a higher version, so
    // last-writer-wins keeps it when both are applied in this order.
    fold_log(db, t, fold, ignored,
             [&](const FoldedKey& k) { rows.add(k.key, k.version, k.deleted); });
    rows.finish();
  }
  clock = fold.clock;
  return batch;
}

struct LocalState {
  Batch pending;
  int64_t clock = 0;
  std::vector<std::pair<std::string, Value>> meta;
  std::vector<std::vector<Value>> dead_letters;
  std::vector<std::vector<Value>> conflicts;  // kConflictColumns, in id order
};

// The conflict log's columns as restore carries them over (id too: pruning keeps the highest).
constexpr const char* kConflictColumns =
    "id, at_ms, table_name, kind, key, loser_values, loser_hlc, loser_node, winner_hlc, "
    "winner_node, winner_deleted";
constexpr int kConflictColumnCount = 11;

LocalState read_local_state(Db& live, uint64_t node) {
  LocalState st;
  Transaction tx(live, Transaction::Kind::Deferred);
  st.pending = read_pending(live, node, st.clock);
  if (has_table(live, names::kMeta)) {
    auto s = live.prepare("SELECT key, value FROM __harmony_meta");
    while (s.step()) st.meta.emplace_back(s.column_text(0), s.column(1));
  }
  if (has_table(live, names::kDeadLetters)) {
    auto s = live.prepare(
        "SELECT at_ms, stream, seq, origin_node, batch_id, table_name, reason, payload FROM "
        "__harmony_dead_letters ORDER BY id");
    while (s.step()) {
      std::vector<Value> row;
      for (int i = 0; i < 8; ++i) row.push_back(s.column(i));
      st.dead_letters.push_back(std::move(row));
    }
  }
  if (has_table(live, names::kConflicts)) {
    auto s = live.prepare(
        fmt::format("SELECT {} FROM {} ORDER BY id", kConflictColumns, names::kConflicts));
    while (s.step()) {
      std::vector<Value> row;
      for (int i = 0; i < kConflictColumnCount; ++i) row.push_back(s.column(i));
      st.conflicts.push_back(std::move(row));
    }
  }
  tx.commit();
  return st;
}

// Steps of merge_local_state, inside its transaction.

// Captures, in the snapshot copy, the tables with pending changes that the snapshot's origin did
// not capture, so the changes can be re-applied. A table the snapshot lacks altogether stays
// uncaptured: the Applier then holds its rows (HoldKind::Table) until the table exists.
void capture_pending_tables(Db& snap, const Batch& pending) {
  for (const auto& t : pending.tables) {
    if (find_captured(snap, t.name)) continue;
    try {
      enable_table(snap, t.name);
    } catch (const Error& e) {
      spdlog::warn(
          "restore: table \"{}\" is not in the snapshot ({}): its unpublished changes "
          "are held until it exists here again",
          t.name, e.what());
    }
  }
}

// Where own rows the snapshot cannot take yet are held: a stream this node consumes (its
// consumer retries them after every schema change), the first one by name.
std::string held_stream_for_restore(const RestoreOptions& options) {
  if (options.apply_own_until.empty()) return "restore";  // no consumer known: -held shows them
  return options.apply_own_until.begin()->first;
}

// Re-applies this node's unpublished changes on top of the snapshot under last-writer-wins.
// Rows the snapshot's schema cannot take (a table or column it lacks: it predates DDL made
// here) are held like received rows, by cause, and published once applied. Returns the rows
// kept pending.
int64_t reapply_pending(Db& snap, const Batch& pending, const RestoreOptions& options) {
  capture_pending_tables(snap, pending);
  // Our own versions: the drift bound is for peers' rows, so only the hard limit applies (a row
  // written while this host's clock ran ahead is kept, not held for a clock to catch up).
  Applier applier(snap, options.node, captured_tables(snap), kMaxClockAheadMs);
  applier.begin();
  const MessageRef where{held_stream_for_restore(options), kRestoredOwnRowsSeq};
  std::vector<HeldRows> held;
  applier.apply(pending, where, held);
  applier.finish();
  const int64_t kept = mark_own_rows_pending(snap, pending, options.node);
  store_held_rows(snap, pending, held, where);
  for (const auto& h : held)
    spdlog::warn(
        "restore: {} unpublished local change(s) of table \"{}\" are held until this node's "
        "schema can take them ({}); they are applied and published then (see -held)",
        h.rows.size(), pending.tables[h.table_entry].name, h.reason);
  return kept;
}

// Node-local meta comes back as it was; the clock is the larger of both; own batches newer than
// the snapshot are to be applied.
void restore_local_meta(Db& snap, const LocalState& local, const RestoreOptions& options) {
  int64_t snap_clock = load_clock(snap);
  for (const auto& [key, value] : local.meta) {
    if (key == "hlc" || key == "format") continue;
    meta_set(snap, key, value);
  }
  if (options.node) set_node_id(snap, options.node);
  store_clock(snap, std::max(snap_clock, local.clock));
  auto positions = load_positions(snap);
  for (const auto& [stream, until] : options.apply_own_until) {
    auto it = positions.find(stream);
    uint64_t at = it == positions.end() ? 0 : it->second;
    if (until > at) remember_own_until(snap, stream, until);
  }
}

void restore_dead_letters(Db& snap, const std::vector<std::vector<Value>>& dead_letters) {
  if (dead_letters.empty()) return;
  auto ins = snap.prepare(
      "INSERT INTO __harmony_dead_letters(at_ms, stream, seq, origin_node, batch_id, "
      "table_name, reason, payload) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)");
  for (const auto& row : dead_letters) {
    ins.reset();
    for (size_t i = 0; i < row.size(); ++i) ins.bind(static_cast<int>(i + 1), row[i]);
    ins.run();
  }
}

// The conflict log is about this node's history (its own writes that lost), like its dead
// letters: the restored node keeps its own rows, whatever log the snapshot's origin had (a
// snapshot taken by this build carries none; an older one may).
void restore_conflicts(Db& snap, const std::vector<std::vector<Value>>& conflicts) {
  if (!has_table(snap, names::kConflicts)) {
    if (conflicts.empty()) return;
    ensure_base_schema(snap);  // a snapshot from before the conflict log existed
  }
  snap.exec(fmt::format("DELETE FROM {}", names::kConflicts));
  if (conflicts.empty()) return;
  auto ins =
      snap.prepare(fmt::format("INSERT INTO {} ({}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, "
                               "?9, ?10, ?11)",
                               names::kConflicts, kConflictColumns));
  for (const auto& row : conflicts) {
    ins.reset();
    for (size_t i = 0; i < row.size(); ++i) ins.bind(static_cast<int>(i + 1), row[i]);
    ins.run();
  }
}

// Writes this node's state into the snapshot copy (one transaction). Returns rows kept pending.
int64_t merge_local_state(Db& snap, const LocalState& local, const RestoreOptions& options) {
  Transaction tx(snap);
  const int64_t kept =
      local.pending.rows.empty() ? 0 : reapply_pending(snap, local.pending, options);
  restore_local_meta(snap, local, options);
  restore_dead_letters(snap, local.dead_letters);
  restore_conflicts(snap, local.conflicts);
  tx.commit();
  return kept;
}

}  // namespace

// ---------------------------------------------------------------------------------------------

std::string SnapshotMeta::to_json() const {
  nlohmann::json j;
  j["format"] = format;
  j["storage_format"] = storage_format;
  j["origin_node"] = origin_node;
  j["created_ms"] = created_ms;
  j["size"] = size;
  j["sha256"] = sha256;
  j["page_size"] = page_size;
  j["positions"] = positions;
  j["schema"] = schema;
  return j.dump();
}

SnapshotMeta SnapshotMeta::from_json(const std::string& text) {
  SnapshotMeta m;
  try {
    auto j = nlohmann::json::parse(text);
    m.format = j.at("format").get<int>();
    if (m.format > kSnapshotFormat)
      throw Error(fmt::format(
          "snapshot format {} is newer than this harmonylite understands ({}); upgrade it",
          m.format, kSnapshotFormat));
    m.storage_format = j.at("storage_format").get<int64_t>();
    m.origin_node = j.at("origin_node").get<uint64_t>();
    m.created_ms = j.at("created_ms").get<int64_t>();
    m.size = j.at("size").get<uint64_t>();
    m.sha256 = j.at("sha256").get<std::string>();
    m.page_size = j.value("page_size", int64_t{0});
    m.positions = j.at("positions").get<std::map<std::string, uint64_t>>();
    m.schema = j.value("schema", std::map<std::string, std::string>{});
  } catch (const nlohmann::json::exception& e) {
    throw Error(fmt::format("snapshot metadata is malformed: {}", e.what()));
  }
  if (m.sha256.size() != 64) throw Error("snapshot metadata is malformed: bad sha256");
  return m;
}

std::pair<uint64_t, std::string> file_digest(const std::string& path) {
  std::unique_ptr<std::FILE, FileCloser> f(std::fopen(path.c_str(), "rb"));
  if (!f) throw Error(fmt::format("cannot read {}", path));
  Sha256 h;
  std::vector<char> buf(1 << 20);
  uint64_t size = 0;
  while (size_t got = std::fread(buf.data(), 1, buf.size(), f.get())) {
    h.update(buf.data(), got);
    size += got;
  }
  if (std::ferror(f.get())) throw Error(fmt::format("error reading {}", path));
  return {size, to_hex(h.finish())};
}

SnapshotMeta make_snapshot_file(const std::string& db_path, const std::string& out_path) {
  auto started = std::chrono::steady_clock::now();
  Db src = Db::open(db_path, SQLITE_OPEN_READWRITE);
  src.set_busy_timeout(5000);
  if (!has_table(src, names::kMeta))
    throw Error(fmt::format(
        "{} holds no harmonylite state yet (no __harmony_meta): run harmonylite on it once "
        "before taking a snapshot",
        db_path));
  std::error_code ec;
  std::filesystem::remove(out_path, ec);
  std::filesystem::remove(out_path + "-journal", ec);
  SnapshotMeta meta;
  {
    Db copy = Db::open(out_path, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE);
    copy_whole(src, copy, "snapshot of " + db_path);
    src = Db();  // the copy is complete: release the source
    copy.exec("PRAGMA journal_mode = DELETE");
    Transaction tx(copy);
    meta.origin_node = node_id(copy);
    meta.storage_format = meta_get_int(copy, "format", 0);
    for (const auto& log : storage_tables(copy, "log"))
      copy.exec("DELETE FROM " + quote_ident(log));
    for (const auto& rows : storage_tables(copy, "rows"))
      copy.exec("UPDATE " + quote_ident(rows) + " SET dirty = 0 WHERE dirty");
    // Node-local: dead letters and the conflict log are about the origin's own history.
    for (const char* t : {names::kDeadLetters, names::kConflicts, names::kMute})
      if (has_table(copy, t)) copy.exec(fmt::format("DELETE FROM {}", t));
    copy.exec("DELETE FROM __harmony_meta WHERE key NOT IN ('format', 'hlc')");
    if (has_table(copy, names::kPositions)) meta.positions = load_positions(copy);
    meta.schema = user_table_hashes(copy);
    tx.commit();
    int64_t pages = copy.query_int("PRAGMA page_count");
    int64_t free_pages = copy.query_int("PRAGMA freelist_count");
    if (pages > 64 && free_pages > pages / 8) copy.exec("VACUUM");
    meta.page_size = copy.query_int("PRAGMA page_size");
  }
  meta.created_ms = wall_clock_ms();
  auto [size, sha] = file_digest(out_path);
  meta.size = size;
  meta.sha256 = sha;
  double secs = seconds_since(started);
  spdlog::info("snapshot of {} taken: {:.1f} MB in {:.2f} s ({:.0f} MB/s), positions {}", db_path,
               mb(size), secs, secs > 0 ? mb(size) / secs : 0.0,
               nlohmann::json(meta.positions).dump());
  return meta;
}

namespace {

// Whether the snapshot's table is the live one before columns were added here (ALTER TABLE ADD
// COLUMN after the snapshot was taken): every column of the snapshot's is here, the same, and
// so is the key. Restoring it loses nothing for good: this node's unpublished rows that use the
// new columns are held until the same ALTER runs here again, and the cluster's rows that use
// them come back through the stream or the snapshot's own held rows.
bool snapshot_predates_added_columns(const TableInfo& live, const TableInfo& snap) {
  if (snap.columns.size() >= live.columns.size()) return false;
  for (const auto& c : snap.columns) {
    const ColumnInfo* here = live.column(c.name);
    if (!here || here->decl_type != c.decl_type || here->not_null != c.not_null ||
        here->pk_position != c.pk_position || here->generated != c.generated)
      return false;
  }
  return live.primary_key().size() == snap.primary_key().size();
}

}  // namespace

std::string schema_conflict(Db& live, Db& snapshot, std::vector<std::string>* notes) {
  auto theirs = user_table_hashes(snapshot);
  std::vector<std::string> problems;
  for (const auto& [name, hash] : user_table_hashes(live)) {
    // An empty table loses nothing when the snapshot replaces or drops it.
    if (live.query_int("SELECT EXISTS (SELECT 1 FROM " + quote_ident(name) + ")") == 0) continue;
    std::string found, found_name;
    for (const auto& [other, other_hash] : theirs)
      if (same_ident(other, name)) {
        found = other_hash;
        found_name = other;
      }
    if (found.empty()) {
      problems.push_back(
          fmt::format("table \"{}\" has rows here but is not in the snapshot", name));
    } else if (found != hash) {
      if (snapshot_predates_added_columns(describe_table(live, name),
                                          describe_table(snapshot, found_name))) {
        if (notes)
          notes->push_back(fmt::format(
              "table \"{}\" has columns here that the snapshot predates: they are gone from "
              "this node until the same ALTER TABLE ... ADD COLUMN runs here again (unpublished "
              "rows that use them are held until then)",
              name));
        continue;
      }
      problems.push_back(
          fmt::format("table \"{}\" has a different schema here than in the snapshot", name));
    }
  }
  std::string out;
  for (const auto& p : problems) out += (out.empty() ? "" : "; ") + p;
  return out;
}

namespace {

// Steps of restore_into.

// The connection to a snapshot file does not trust the file's schema: no function with side
// effects runs from a trigger, view or index of the file, and the schema cannot be edited
// behind SQLite's back (writable_schema, shadow tables).
void distrust_schema(Db& snap) {
  if (sqlite3_db_config(snap.handle(), SQLITE_DBCONFIG_TRUSTED_SCHEMA, 0, nullptr) != SQLITE_OK ||
      sqlite3_db_config(snap.handle(), SQLITE_DBCONFIG_DEFENSIVE, 1, nullptr) != SQLITE_OK)
    throw Error("restore: cannot open the snapshot in defensive mode: " + snap.errmsg());
}

// PRAGMA quick_check on the whole file: a damaged file (or one edited to break its own
// constraints) is refused before anything of it is read or merged.
void check_snapshot_integrity(Db& snap) {
  // quick_check reports up to this many problems; the first few name what is wrong.
  constexpr int kProblemsShown = 5;
  std::vector<std::string> problems;
  auto s = snap.prepare(fmt::format("PRAGMA quick_check({})", kProblemsShown));
  while (s.step()) problems.push_back(s.column_text(0));
  if (problems.size() != 1 || problems.front() != "ok")
    throw Error(fmt::format("the snapshot file is damaged (PRAGMA quick_check: {})",
                            fmt::join(problems, "; ")));
}

// Everything in the snapshot's schema must be a table, an index or a capture trigger (by its
// reserved name): a trigger or view of the file's own would be copied into the live database
// and run there on the applications' writes.
void refuse_foreign_objects(Db& snap) {
  std::vector<std::string> problems;
  auto s = snap.prepare("SELECT type, name, tbl_name FROM sqlite_schema ORDER BY type, name");
  while (s.step()) {
    const std::string type = s.column_text(0), name = s.column_text(1);
    if (type == "table" || type == "index") continue;
    if (type == "trigger" && name.starts_with(names::kTriggerPrefix)) continue;
    problems.push_back(fmt::format("{} \"{}\" on \"{}\"", type, name, s.column_text(2)));
  }
  if (!problems.empty())
    throw Error(fmt::format(
        "the snapshot holds schema objects harmonylite does not install ({}): refusing to copy "
        "them into this database",
        fmt::join(problems, ", ")));
}

// Capture triggers are not taken from the file: whatever it holds under their names (another
// build's version, or a body someone rewrote) is dropped, and this build's triggers are installed
// for every captured table, in the copy, before anything runs on it and before the copy becomes
// the live database (so no application write between the switch and start-up goes uncaptured).
void reinstall_capture_triggers(Db& snap) {
  std::vector<std::string> triggers;
  auto s = snap.prepare("SELECT name FROM sqlite_schema WHERE type = 'trigger'");
  while (s.step()) triggers.push_back(s.column_text(0));
  Transaction tx(snap);
  for (const auto& name : triggers) snap.exec("DROP TRIGGER " + quote_ident(name));
  for (const auto& t : captured_tables(snap)) enable_table(snap, t.name);
  tx.commit();
}

// The snapshot's clock (the meta "hlc" and every row version) must not be further ahead of our
// wall clock than a received version may be: restoring it would drag every later local version
// into the far future.
void check_snapshot_clock(Db& snap) {
  const int64_t now_ms = wall_clock_ms();
  int64_t highest = meta_get_int(snap, "hlc", 0);
  for (const auto& rows : storage_tables(snap, "rows"))
    highest = std::max(highest, snap.query_int("SELECT max(version) FROM " + quote_ident(rows)));
  if (!hlc_plausible(highest, now_ms))
    throw Error(fmt::format(
        "the snapshot's clock is implausible (hlc {}, {} ms ahead of this host's clock, at most "
        "{} ms allowed): refusing it",
        highest, hlc_physical_ms(highest) - now_ms, kMaxClockAheadMs));
}

// The snapshot file, checked to be a harmonylite snapshot this build can read and holding nothing
// harmonylite would not have put there, in rollback
// journal mode and with the live database's page size (the backup API cannot change the page
// size of a WAL database, so the copy is converted instead).
Db open_snapshot_copy(const std::string& snapshot_file, int64_t live_page_size) {
  Db snap = Db::open(snapshot_file, SQLITE_OPEN_READWRITE);
  snap.set_busy_timeout(1000);
  distrust_schema(snap);
  check_snapshot_integrity(snap);
  if (!has_table(snap, names::kMeta) || !has_table(snap, names::kPositions))
    throw Error("the snapshot holds no harmonylite state (__harmony_meta, __harmony_positions)");
  if (int64_t f = meta_get_int(snap, "format", 0); f > kStorageFormat)
    throw Error(fmt::format(
        "the snapshot was taken by a newer harmonylite (storage format {}, this build knows {})", f,
        kStorageFormat));
  refuse_foreign_objects(snap);
  check_snapshot_clock(snap);
  reinstall_capture_triggers(snap);
  snap.exec("PRAGMA journal_mode = DELETE");
  if (snap.query_int("PRAGMA page_size") != live_page_size) {
    spdlog::info("restore: converting the snapshot to this database's page size ({} bytes)",
                 live_page_size);
    snap.exec(fmt::format("PRAGMA page_size = {}; VACUUM", live_page_size));
  }
  return snap;
}

// Takes the live database's write lock through `backup` (copying zero pages), waiting out other
// writers with a log line every 5 s. False when stopped first.
bool lock_live_database(sqlite3_backup* backup, const std::string& live_path,
                        const RestoreOptions& options) {
  auto waiting_since = std::chrono::steady_clock::now();
  auto last_log = waiting_since;
  while (true) {
    int rc = sqlite3_backup_step(backup, 0);
    if (rc == SQLITE_OK) return true;
    if (rc != SQLITE_BUSY && rc != SQLITE_LOCKED)
      throw Error(fmt::format("restore: cannot lock {}: {}", live_path, sqlite3_errstr(rc)));
    if (options.stop && options.stop->load()) return false;
    auto now = std::chrono::steady_clock::now();
    if (now - last_log > std::chrono::seconds(5)) {
      last_log = now;
      spdlog::warn("restore: {} is locked by another writer for {:.0f} s; waiting", live_path,
                   seconds_since(waiting_since));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

uint64_t database_bytes(Db& db) {
  return static_cast<uint64_t>(db.query_int("PRAGMA page_count")) *
         static_cast<uint64_t>(db.query_int("PRAGMA page_size"));
}

// Pages copied per sqlite3_backup_step while restoring: 64 MiB at 4 KiB pages, so the transfer
// board (/health) moves every fraction of a second while one copy can take minutes. The steps
// stay one transaction: the backup holds the live database's write lock from the first step to
// SQLITE_DONE, and nothing is committed before that.
constexpr int kCopyPagesPerStep = 16384;

// Copies every page of the (merged) snapshot into the live database and commits, releasing the
// write lock. Returns the seconds the copy took.
double copy_into_live(BackupPtr backup, const std::string& live_path, uint64_t bytes) {
  auto copy_started = std::chrono::steady_clock::now();
  snapshot_step_begin("restore: copy into " + live_path, bytes);
  struct StepEnd {
    ~StepEnd() { snapshot_step_end(); }
  } step_end;
  int rc = SQLITE_OK;
  while ((rc = sqlite3_backup_step(backup.get(), kCopyPagesPerStep)) == SQLITE_OK) {
    const int total = sqlite3_backup_pagecount(backup.get());
    const int left = sqlite3_backup_remaining(backup.get());
    if (total > 0)
      snapshot_step_progress(bytes / static_cast<uint64_t>(total) *
                             static_cast<uint64_t>(total - left));
  }
  if (rc != SQLITE_DONE)
    throw Error(fmt::format("restore: copying into {} failed: {} (the database is unchanged)",
                            live_path, sqlite3_errstr(rc)));
  rc = sqlite3_backup_finish(backup.release());
  if (rc != SQLITE_OK)
    throw Error(fmt::format("restore: copying into {} failed: {}", live_path, sqlite3_errstr(rc)));
  return seconds_since(copy_started);
}

// Moves the copy from the write-ahead log into the database file without blocking writers
// (PASSIVE), then shrinks the log if that got everything (TRUNCATE has nothing left to copy
// then; it gives up at once when a reader still uses the log). Best effort.
void checkpoint_after_restore(Db& live) {
  try {
    auto checkpoint_started = std::chrono::steady_clock::now();
    live.set_busy_timeout(0);
    live.exec("PRAGMA wal_checkpoint(PASSIVE)");
    live.exec("PRAGMA wal_checkpoint(TRUNCATE)");
    spdlog::info("restore: checkpoint took {:.2f} s", seconds_since(checkpoint_started));
  } catch (const SqliteError&) {
  }
}

}  // namespace

RestoreReport restore_into(const std::string& live_path, const std::string& snapshot_file,
                           const RestoreOptions& options) {
  RestoreReport report;
  Db live = Db::open(live_path, SQLITE_OPEN_READWRITE);
  live.set_busy_timeout(100);
  // The copy's commit does not flush the whole snapshot in the write-ahead log to the disk
  // (NORMAL; WAL mode stays consistent with it): the checkpoint that follows flushes the log
  // before it writes the file. A crash before that leaves the database as it was before the
  // restore (a torn log is ignored by its checksums), and the next start restores again.
  live.exec("PRAGMA synchronous = NORMAL");
  Db reader = Db::open(live_path, SQLITE_OPEN_READWRITE);
  reader.set_busy_timeout(5000);
  const auto checks_started = std::chrono::steady_clock::now();
  Db snap = open_snapshot_copy(snapshot_file, live.query_int("PRAGMA page_size"));
  spdlog::info("restore: the snapshot file checked in {:.2f} s (quick_check, schema, clock)",
               seconds_since(checks_started));
  if (auto why = schema_conflict(reader, snap); !why.empty())
    throw Error("the snapshot cannot replace this database: " + why);

  BackupPtr backup(sqlite3_backup_init(live.handle(), "main", snap.handle(), "main"));
  if (!backup) throw Error("restore: cannot start the copy: " + live.errmsg());
  // Hold the live database's write lock until the copy is committed: no application write can
  // slip in between reading the local state and the switch.
  if (!lock_live_database(backup.get(), live_path, options)) {
    report.interrupted = true;
    return report;
  }
  auto locked_at = std::chrono::steady_clock::now();
  report.bytes = database_bytes(snap);
  spdlog::info(
      "restore: {} is locked for writing while {:.1f} MB are copied into it (applications that "
      "write meanwhile wait or get \"database is locked\")",
      live_path, mb(report.bytes));
  std::vector<std::string> notes;
  if (auto why = schema_conflict(reader, snap, &notes); !why.empty())  // DDL while we waited
    throw Error("the snapshot cannot replace this database: " + why);
  for (const auto& note : notes) spdlog::warn("restore: {}", note);
  LocalState local = read_local_state(reader, options.node);
  report.pending_rows = static_cast<int64_t>(local.pending.rows.size());
  report.pending_kept = merge_local_state(snap, local, options);
  spdlog::debug("restore: local state read and merged in {:.2f} s", seconds_since(locked_at));
  report.bytes = database_bytes(snap);
  const double copy_secs = copy_into_live(std::move(backup), live_path, report.bytes);
  report.lock_seconds = seconds_since(locked_at);
  report.copy_mb_per_s = copy_secs > 0 ? mb(report.bytes) / copy_secs : 0;
  spdlog::info(
      "restore: {:.1f} MB copied in {:.2f} s ({:.0f} MB/s); writers were locked out {:.2f} s",
      mb(report.bytes), copy_secs, report.copy_mb_per_s, report.lock_seconds);
  // The copy is committed: the snapshot file is spent. Removing it before the checkpoint moves
  // the copy from the write-ahead log into the file keeps the disk needed at twice the snapshot
  // (download + log), not three times.
  { Db spent = std::move(snap); }
  std::remove(snapshot_file.c_str());
  if (!options.defer_checkpoint) checkpoint_after_restore(live);
  return report;
}

BackgroundCheckpoint::BackgroundCheckpoint(const std::string& db_path)
    : db_(Db::open(db_path, SQLITE_OPEN_READWRITE)) {
  thread_ = std::thread([this, logger = spdlog::default_logger()] {
    try {
      auto started = std::chrono::steady_clock::now();
      db_.set_busy_timeout(0);
      db_.exec("PRAGMA wal_checkpoint(PASSIVE)");
      db_.exec("PRAGMA wal_checkpoint(TRUNCATE)");
      logger->info("restore: checkpoint took {:.2f} s (in the background)", seconds_since(started));
    } catch (const SqliteError& e) {
      logger->debug("restore: background checkpoint stopped: {}", e.what());
    }
  });
}

BackgroundCheckpoint::~BackgroundCheckpoint() {
  sqlite3_interrupt(db_.handle());
  if (thread_.joinable()) thread_.join();
}

std::map<std::string, uint64_t> restored_own_until(Db& db) {
  std::map<std::string, uint64_t> out;
  if (!has_table(db, names::kMeta)) return out;
  auto s = db.prepare("SELECT key, value FROM __harmony_meta WHERE substr(key, 1, ?2) = ?1");
  s.bind(1, std::string_view(kOwnUntilPrefix));
  s.bind(2, static_cast<int64_t>(std::string_view(kOwnUntilPrefix).size()));
  while (s.step())
    out[s.column_text(0).substr(std::string_view(kOwnUntilPrefix).size())] =
        static_cast<uint64_t>(s.column_int(1));
  return out;
}

void forget_restored_own_until(Db& db, const std::string& stream) {
  auto s = db.prepare("DELETE FROM __harmony_meta WHERE key = ?1");
  s.bind(1, kOwnUntilPrefix + stream).run();
}

void remember_own_until(Db& db, const std::string& stream, uint64_t seq) {
  meta_set(db, kOwnUntilPrefix + stream, static_cast<int64_t>(seq));
}

}  // namespace harmony
