// Snapshot orchestration for the harmonylite process: -save-snapshot, the start-up decision to
// restore (and the restore itself), and the periodic snapshots taken by the lease holder.
// The database side is snapshot.hpp, the stores object_store.hpp, the lease snapshot_leader.hpp.
//
// When a node restores (decided per stream at start-up, before the publisher and consumers run):
// its position p (0 when it never applied anything) and the stream's first retained sequence F
// leave a hole when F > p + 1, i.e. messages it still needs were removed by retention. That
// covers both a node that was down too long and a brand-new node joining a stream whose start is
// gone; a brand-new node with the whole history (F <= 1) simply replays it. The newest snapshot is
// usable when its position for every stream is at least F - 1 (and not beyond the stream's end).
// No usable snapshot, or snapshots disabled: the node refuses to start and says what to do.
#pragma once
#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>

#include "replicator/config/config.hpp"
#include "replicator/snapshot/object_store.hpp"
#include "replicator/snapshot/snapshot.hpp"
#include "shared/sqlite_db.hpp"

namespace harmony {

class NatsConnection;

// -save-snapshot: takes a snapshot of config.db_path and stores it, also while a replicator runs
// on it. NATS: [nats] urls, or else the URL a running replicator recorded in the database; with
// the config's credentials. Returns the exit code (0 stored; 1 with a logged explanation).
int run_save_snapshot(const Config& config);

// Takes a snapshot into a temporary file next to the database and stores it.
SnapshotMeta save_snapshot(const Config& config, SnapshotStore& store,
                           const std::function<void()>& on_tick = nullptr);

// Start-up step, after the streams exist and before the publisher and consumers start: creates
// the snapshot bucket while the cluster is complete, restores the newest snapshot when a stream
// has a hole for this node and one covers it; with none that does, continues each holed stream
// from its first retained sequence and records the gap for anti-entropy to fill (throws Error to
// refuse to start only when a snapshot is rejected or rounds are off), and returns, per
// stream, the sequence up to which this node's own batches must be applied (a restore's content
// predates them; 0/absent = skip own batches as usual), plus the checkpoint a restore left
// running (the caller keeps it until it stops). own_until is empty when `stop` interrupted it.
struct StartupRestore {
  std::map<std::string, uint64_t> own_until;
  std::unique_ptr<BackgroundCheckpoint> checkpoint;  // null unless a snapshot was restored
};
StartupRestore restore_at_startup(const Config& config, Db& db, NatsConnection& conn, uint64_t node,
                                  const std::atomic<bool>& stop);

// sleep_timeout expired (HarmonyLite's scale-to-zero): with snapshots and publish enabled (and
// replicate, like the periodic snapshots) and this node holding or taking the snapshot lease,
// saves a snapshot so that the next node to wake finds a recent one. Call after the workers
// stopped (the periodic scheduler released the lease). Never throws: a failure is logged and
// the process exits anyway.
void save_snapshot_before_sleep(const Config& config, NatsConnection& conn, uint64_t node);

// Periodic snapshots ([snapshot] interval, every_entries, and a retention guard): only the node
// holding the lease takes them. Thread body: run() returns when `stop` becomes true.
// Triggers, checked every second by the lease holder:
//  - interval: the newest snapshot is older than [snapshot] interval ms;
//  - every_entries: the streams grew by that many messages since the newest snapshot;
//  - retention guard (always on): a stream grew by half of max_entries (or the snapshot is
//    older than half of max_age) since the newest snapshot, so a usable snapshot exists before
//    the stream drops what a lagging node would need.
// A snapshot is taken only when this node's positions are past the newest snapshot's and still
// within what the streams retain (so it is usable), at most one per min(10 s, leader_ttl).
class SnapshotScheduler {
 public:
  SnapshotScheduler(const Config& config, NatsConnection& conn, uint64_t node);
  void run(const std::atomic<bool>& stop);

 private:
  const Config& config_;
  NatsConnection& conn_;
  uint64_t node_;
};

}  // namespace harmony
