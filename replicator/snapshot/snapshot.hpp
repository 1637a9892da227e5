// Snapshots, database side: making a snapshot file from a live database (a consistent copy that
// keeps row versions and tombstones but drops node-local state, with the stream positions it is
// consistent with) and restoring one into a live database through the SQLite backup API, so
// connections other programs hold stay valid. Local changes not yet published survive a
// restore: they are re-applied on top of the snapshot with their versions and stay pending.
// No NATS here: stores are in object_store.hpp, orchestration in snapshot_service.hpp.
#pragma once
#include <atomic>
#include <cstdint>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "shared/sqlite_db.hpp"

namespace harmony {

// Version of the snapshot layout (metadata + what the file holds). A reader refuses newer ones.
inline constexpr int kSnapshotFormat = 1;
// The object name snapshots are stored under (HarmonyLite's name).
inline constexpr const char* kSnapshotObjectName = "snapshot.db";

struct SnapshotMeta {
  int format = kSnapshotFormat;
  int64_t storage_format = 0;  // __harmony_meta "format" of the copied database
  uint64_t origin_node = 0;    // node that took it
  int64_t created_ms = 0;      // wall clock of the origin when it was taken
  uint64_t size = 0;           // bytes of the file
  std::string sha256;          // lowercase hex digest of the file
  int64_t page_size = 0;
  std::map<std::string, uint64_t> positions;  // stream -> last applied sequence in the copy
  std::map<std::string, std::string> schema;  // table -> TableInfo::schema_hash (user tables)

  std::string to_json() const;
  // Throws Error naming what is wrong.
  static SnapshotMeta from_json(const std::string& text);
};

// Copies `db_path` into a new file `out_path` (replaced if present) in one read transaction
// (sqlite3_backup, so writers are never blocked), then removes node-local state from the copy:
// change logs emptied, dirty flags cleared, dead letters and the capture mute emptied, and every
// __harmony_meta key but "format" and "hlc" (the clock) deleted. Row versions and tombstones
// (__harmony_rows_<id>), the table registry and __harmony_positions stay: the positions in the
// copy are exactly the ones its content is consistent with. Throws Error when the database was
// never set up by harmonylite.
SnapshotMeta make_snapshot_file(const std::string& db_path, const std::string& out_path);

// Size and SHA-256 (hex) of a file.
std::pair<uint64_t, std::string> file_digest(const std::string& path);

struct RestoreOptions {
  uint64_t node = 0;  // this node's id (kept)
  // Last stream sequence at restore time, per stream: this node's own batches up to there are
  // applied after the restore (the snapshot may predate them). Persisted in __harmony_meta.
  std::map<std::string, uint64_t> apply_own_until;
  const std::atomic<bool>* stop = nullptr;  // interrupts the wait for the write lock
  // Leave moving the copy from the write-ahead log into the file to the caller (a
  // BackgroundCheckpoint) instead of doing it before returning.
  bool defer_checkpoint = false;
};

struct RestoreReport {
  int64_t pending_rows = 0;  // unpublished local changes found before the restore
  int64_t pending_kept = 0;  // of those, re-applied on top and still pending
  uint64_t bytes = 0;        // size of the restored database
  double lock_seconds = 0;   // how long application writers were locked out
  double copy_mb_per_s = 0;  // speed of the copy into the live file
  bool interrupted = false;  // `stop` became true while waiting; nothing changed
};

// Restores `snapshot_file` (already verified) into the live database at `live_path`. Refuses
// (Error, nothing changed) when a user table of the live database is missing from the snapshot
// or has a different schema there. Otherwise, holding the database's write lock for the whole
// switch: reads this node's unpublished changes (the change logs folded in memory, like
// fold_all, plus the dirty rows) and its node-local meta, writes them into the snapshot copy
// (changes re-applied by last-writer-wins with their versions and marked dirty so they are
// published; node id, batch counter and runtime keys kept; the clock is the larger of both),
// then copies the result into the live database with sqlite3_backup in one transaction. The
// snapshot file is modified, and removed once the copy is committed. Connections of other programs
// stay valid and see the new content.
RestoreReport restore_into(const std::string& live_path, const std::string& snapshot_file,
                           const RestoreOptions& options);

// After a restore the copy sits in the write-ahead log; moving it into the database file writes
// the whole snapshot once more (and flushes it to the disk), which need not hold up start-up:
// this runs a PASSIVE checkpoint (never blocks readers or writers; an application's own
// auto-checkpoint meanwhile finds the checkpoint busy and skips it), then a TRUNCATE to shrink the
// log, on a thread of its own, logging the time it took. The destructor interrupts it (a later
// checkpoint continues where it stopped: nothing is lost) and joins.
class BackgroundCheckpoint {
 public:
  explicit BackgroundCheckpoint(const std::string& db_path);
  ~BackgroundCheckpoint();
  BackgroundCheckpoint(const BackgroundCheckpoint&) = delete;
  BackgroundCheckpoint& operator=(const BackgroundCheckpoint&) = delete;

 private:
  Db db_;
  std::thread thread_;
};

// Why the snapshot at `snapshot_file` cannot replace the database at `live_path` (a user table
// with rows missing there or with another schema), or "" when it can. A table whose snapshot
// version only lacks columns added here since is no conflict: it goes to `notes`.
std::string schema_conflict(Db& live, Db& snapshot, std::vector<std::string>* notes = nullptr);

// Own-batch bounds a restore left in __harmony_meta ("restore_apply_own_until:<stream>").
std::map<std::string, uint64_t> restored_own_until(Db& db);
// Deletes that bound for `stream` (once the stream position passed it). Inside a transaction.
void forget_restored_own_until(Db& db, const std::string& stream);
// Records such a bound. Inside a transaction.
void remember_own_until(Db& db, const std::string& stream, uint64_t seq);

}  // namespace harmony
