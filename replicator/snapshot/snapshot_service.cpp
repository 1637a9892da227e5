// Snapshot orchestration: -save-snapshot, the start-up restore decision and the lease holder's
// periodic snapshots (see snapshot_service.hpp).
#include "replicator/snapshot/snapshot_service.hpp"

#include <algorithm>
#include <filesystem>
#include <limits>
#include <optional>
#include <thread>
#include <vector>

#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <nlohmann/json.hpp>

#include "replicator/common/capture_sync.hpp"
#include "replicator/common/database.hpp"
#include "replicator/common/runtime_info.hpp"
#include "replicator/nats/nats_client.hpp"
#include "replicator/nats/nats_config.hpp"
#include "replicator/snapshot/snapshot_leader.hpp"
#include "replicator/snapshot/store_files.hpp"
#include "replicator/snapshot/transfer_status.hpp"
#include "shared/apply.hpp"
#include "shared/capture.hpp"
#include "shared/clock.hpp"
#include "shared/content_digest.hpp"
#include "shared/hlc.hpp"
#include "shared/meta_store.hpp"

namespace harmony {

namespace {

using namespace std::chrono_literals;

constexpr auto kMinSnapshotSpacing = 10s;
constexpr auto kInfoRefresh = 10s;
constexpr auto kFailureBackoff = 30s;

// A file removed (with its journal) when this goes out of scope.
struct TempFile {
  std::string path;
  ~TempFile() {
    std::error_code ec;
    std::filesystem::remove(path, ec);
    std::filesystem::remove(path + "-journal", ec);
  }
};

std::string temp_path_near(const std::string& db_path, const char* what) {
  return fmt::format("{}.{}-{}.tmp", db_path, what, new_nuid());
}

std::string positions_text(const std::map<std::string, uint64_t>& p) {
  std::string out;
  for (const auto& [stream, seq] : p)
    out += fmt::format("{}{}={}", out.empty() ? "" : ", ", stream, seq);
  return out.empty() ? "none" : out;
}

std::string when_text(int64_t ms) {
  int64_t age_s = std::max<int64_t>(0, (wall_clock_ms() - ms) / 1000);
  if (age_s < 120) return fmt::format("{} s ago", age_s);
  if (age_s < 7200) return fmt::format("{} min ago", age_s / 60);
  return fmt::format("{} h ago", age_s / 3600);
}

struct StreamView {
  std::string name;
  uint64_t position = 0;  // this node's
  StreamState state;
};

std::vector<StreamView> stream_views(const Config& config, NatsConnection& conn, Db& db) {
  auto positions = load_positions(db);
  std::vector<StreamView> out;
  for (int shard = 1; shard <= config.replication_log.shards; ++shard) {
    StreamView v;
    v.name = stream_name(config, shard);
    auto st = stream_state(conn, v.name);
    if (!st) continue;
    v.state = *st;
    if (auto it = positions.find(v.name); it != positions.end()) v.position = it->second;
    out.push_back(v);
  }
  return out;
}

bool has_hole(const StreamView& v) {
  return v.state.first_seq > v.position + 1;
}

std::string lease_bucket(const Config& config) {
  return config.nats.stream_prefix + "-snapshot-lease";
}

// Why `meta` cannot bring these streams back to a state they can continue from, or "".
std::string unusable_because(const SnapshotMeta& meta, const std::vector<StreamView>& views) {
  std::vector<std::string> why;
  for (const auto& v : views) {
    auto it = meta.positions.find(v.name);
    uint64_t at = it == meta.positions.end() ? 0 : it->second;
    if (at + 1 < v.state.first_seq)
      why.push_back(
          fmt::format("it is at {} in {}, which now starts at {}", at, v.name, v.state.first_seq));
    else if (at > v.state.last_seq)
      why.push_back(fmt::format("it is at {} in {}, which ends at {} (was the stream recreated?)",
                                at, v.name, v.state.last_seq));
  }
  std::string out;
  for (const auto& w : why) out += (out.empty() ? "" : "; ") + w;
  return out;
}

std::string refusal(const Config& config, const std::string& holes, const std::string& why) {
  std::string cfg = config.source_path.empty() ? "<config>" : config.source_path;
  return fmt::format(
      "this node cannot catch up: {}. It refuses to start rather than run with a hole in its "
      "data ({}). What to do: take a snapshot on a node that is up to date "
      "(harmonylite -config <that node's config> -save-snapshot, or let the lease holder take a "
      "periodic one) and start this node again: it restores the snapshot, then catches up. To "
      "avoid this, keep more history in the streams ([replication_log] max_entries, max_age) or "
      "take snapshots more often ([snapshot] interval, every_entries). To start this node over "
      "from scratch, move {} aside and start it with an empty database file (config {})",
      holes, why, config.db_path, cfg);
}

}  // namespace

SnapshotMeta save_snapshot(const Config& config, SnapshotStore& store,
                           const std::function<void()>& on_tick) {
  SnapshotPhase saving("saving");
  TempFile tmp{temp_path_near(config.db_path, "snapshot")};
  SnapshotMeta meta = make_snapshot_file(config.db_path, tmp.path);
  // A stream this node never applied anything from is at 0: say so explicitly.
  for (int shard = 1; shard <= config.replication_log.shards; ++shard)
    meta.positions.try_emplace(stream_name(config, shard), 0);
  store.put(tmp.path, meta, on_tick);
  spdlog::info("snapshot of node {} saved to {}: {:.1f} MB, positions {}", meta.origin_node,
               store.describe(), static_cast<double>(meta.size) / (1024.0 * 1024.0),
               positions_text(meta.positions));
  return meta;
}

int run_save_snapshot(const Config& config) {
  const std::string cfg = config.source_path.empty() ? "the defaults" : config.source_path;
  if (!config.snapshot.enabled) {
    spdlog::error(
        "-save-snapshot: snapshots are disabled in {} ([snapshot] enabled = false); enable them "
        "to save one",
        cfg);
    return 1;
  }
  if (config.snapshot.store == "file") {
    auto store = make_snapshot_store(config, nullptr);
    save_snapshot(config, *store);
    return 0;
  }
  // [nats] credentials and TLS as a node uses them; the node id is unknown here, so the name is
  // this command's.
  ConnectOptions connect = connect_options(config, 0);
  connect.name = "harmonylite-save-snapshot";
  std::string source = "[nats] urls";
  if (connect.urls.empty()) {
    auto running = running_replicator(config.db_path);
    if (!running || running->nats_url.empty()) {
      spdlog::error(
          "-save-snapshot needs NATS to store the snapshot in, and there is none: [nats] urls is "
          "empty in {} and no harmonylite replicator is running on {} (a running node provides "
          "its embedded NATS server). Start the node first (harmonylite -config {} with its "
          "cluster flags) and run -save-snapshot again, or set [nats] urls, or use [snapshot] "
          "store = \"file\"",
          cfg, config.db_path, config.source_path.empty() ? "<config>" : config.source_path);
      return 1;
    }
    connect.urls = {running->nats_url};
    source = fmt::format("the replicator running on {} (pid {})", config.db_path, running->pid);
  }
  std::unique_ptr<NatsConnection> conn;
  for (int attempt = 1; !conn; ++attempt) {
    try {
      conn = NatsConnection::connect_once(connect);
    } catch (const Error& e) {
      if (attempt >= 3) {
        spdlog::error("-save-snapshot: NATS from {} is not reachable: {}", source, e.what());
        return 1;
      }
      std::this_thread::sleep_for(1s);
    }
  }
  auto store = make_snapshot_store(config, conn.get());
  save_snapshot(config, *store);
  return 0;
}

namespace {

// Steps of restore_at_startup.

// The store, created at start-up while this node's cluster is complete (a node that saves a
// snapshot later may find servers down and could not create a replicated bucket then); null,
// with the reason in `problem`, when snapshots are off or the store cannot be made.
std::unique_ptr<SnapshotStore> open_store_at_startup(const Config& config, NatsConnection& conn,
                                                     std::string& problem) {
  if (!config.snapshot.enabled) return nullptr;
  try {
    return make_snapshot_store(config, &conn);
  } catch (const Error& e) {
    problem = e.what();
    spdlog::warn("snapshots are unavailable: {}", problem);
    return nullptr;
  }
}

// "" when every stream still holds what this node has not applied yet; else one phrase per
// stream with a hole.
std::string describe_holes(const std::vector<StreamView>& views) {
  std::string holes;
  for (const auto& v : views) {
    if (!has_hole(v)) continue;
    holes += fmt::format(
        "{}{}: this node applied up to {}, the stream now keeps {}..{} (sequences {}..{} are "
        "gone)",
        holes.empty() ? "" : "; ", v.name, v.position, v.state.first_seq, v.state.last_seq,
        v.position + 1, v.state.first_seq - 1);
  }
  return holes;
}

// The newest snapshot, downloaded to `into` after checking it covers every hole; nullopt, with
// the reason in `why_not`, when there is none that does (none, too old, snapshots off, no
// store). A snapshot that covers the holes but is rejected (corrupt, or a schema that would lose
// rows here) throws the refusal to start: that is a fault in the store the operator must see,
// not a missing snapshot.
std::optional<SnapshotMeta> fetch_usable_snapshot(const Config& config, SnapshotStore* store,
                                                  const std::string& store_problem,
                                                  const std::string& holes,
                                                  const std::vector<StreamView>& views,
                                                  const std::string& into, std::string& why_not) {
  if (!config.snapshot.enabled) {
    why_not = "snapshots are disabled here ([snapshot] enabled = false)";
    return std::nullopt;
  }
  if (!store) {
    why_not = "no snapshot store: " + store_problem;
    return std::nullopt;
  }
  auto info = store->info();
  if (!info) {
    why_not = "there is no snapshot in " + store->describe();
    return std::nullopt;
  }
  if (auto why = unusable_because(*info, views); !why.empty()) {
    why_not = fmt::format("the newest snapshot in {} (node {}, {}) is too old: {}",
                          store->describe(), info->origin_node, when_text(info->created_ms), why);
    return std::nullopt;
  }
  spdlog::warn("{}: restoring the newest snapshot (node {}, {}, positions {}), then catching up",
               holes, info->origin_node, when_text(info->created_ms),
               positions_text(info->positions));
  SnapshotMeta meta;
  try {
    // Room for the download next to the database and for the copy through its write-ahead log
    // (restore_into removes the download before the checkpoint moves the copy into the file).
    const std::string db_dir = std::filesystem::absolute(config.db_path).parent_path().string();
    require_free_space(db_dir, 2 * info->size, "the database's directory",
                       "the snapshot is downloaded next to the database, then copied into it "
                       "through its write-ahead log: twice its size");
    meta = store->get(into);
  } catch (const SnapshotRejected& e) {
    throw Error(refusal(config, holes, std::string("the snapshot was rejected: ") + e.what()));
  } catch (const LocalWriteError& e) {
    throw Error(fmt::format(
        "cannot restore the newest snapshot ({:.1f} MB) into {}: {}. The database is unchanged",
        static_cast<double>(info->size) / (1024.0 * 1024.0), config.db_path, e.what()));
  }
  if (auto why = unusable_because(meta, views); !why.empty()) {
    why_not = "the downloaded snapshot is too old: " + why;
    return std::nullopt;
  }
  return meta;
}

// No usable snapshot: continue every holed stream from its first retained sequence and leave
// the missing sequences to anti-entropy, which pulls the rows they carried from the peers with
// their versions (last-writer-wins, as the stream would have applied them). Chosen over
// restoring an older snapshot: this file already holds everything up to its own positions,
// which a snapshot older than the hole adds nothing to, and restoring would lock writers out
// for the copy. Nothing is lost: this node's unpublished changes stay in its outbox and are
// published as usual. The gap (in sequences) is kept in __harmony_meta until a round with every
// reachable peer finds nothing missing here (replicator/sync/anti_entropy.cpp); /health says
// "degraded" meanwhile. Without anti-entropy rounds nothing would fill the gap: refuse.
void skip_holes_for_anti_entropy(const Config& config, Db& db, const std::string& holes,
                                 const std::string& why_not, const std::vector<StreamView>& views,
                                 const std::atomic<bool>& stop) {
  if (config.anti_entropy.interval_ms <= 0)
    throw Error(refusal(config, holes,
                        why_not + "; and anti-entropy rounds are off here ([anti_entropy] "
                                  "interval = 0), so nothing would fill the gap"));
  int64_t gap = 0;
  write_transaction(
      db, stop,
      [&] {
        int64_t skipped = 0;
        for (const auto& v : views) {
          if (!has_hole(v)) continue;
          skipped += static_cast<int64_t>(v.state.first_seq - 1 - v.position);
          store_position(db, v.name, v.state.first_seq - 1);
        }
        gap = add_to_anti_entropy_gap(db, skipped);
      },
      "skipping trimmed sequences");
  spdlog::warn(
      "{}: no usable snapshot ({}). Continuing from the first sequence each stream retains and "
      "repairing a gap of {} sequence(s) by anti-entropy: the rows they carried come from the "
      "peers with their versions; this node's unpublished changes are kept and published",
      holes, why_not, gap);
}

// Restores the downloaded snapshot into the live database, then puts capture back; `checkpoint`
// gets the background checkpoint that moves the copy into the file. False when stopped meanwhile.
bool restore_downloaded(const Config& config, Db& db, const std::string& file,
                        const SnapshotMeta& meta, const std::vector<StreamView>& views,
                        uint64_t node, const std::atomic<bool>& stop,
                        std::unique_ptr<BackgroundCheckpoint>& checkpoint) {
  RestoreOptions ro;
  ro.node = node;
  ro.stop = &stop;
  for (const auto& v : views) ro.apply_own_until[v.name] = v.state.last_seq;
  ro.defer_checkpoint = true;
  RestoreReport report = restore_into(config.db_path, file, ro);
  if (report.interrupted) return false;
  // Start-up goes on while the copy moves from the log into the file; the node owns the
  // checkpoint until it stops (interrupted then; a later checkpoint finishes it).
  checkpoint = std::make_unique<BackgroundCheckpoint>(config.db_path);
  spdlog::info(
      "restored the snapshot of node {} ({:.1f} MB, positions {}); {} unpublished local "
      "change(s) found, {} kept on top and pending publication",
      meta.origin_node, static_cast<double>(report.bytes) / (1024.0 * 1024.0),
      positions_text(meta.positions), report.pending_rows, report.pending_kept);
  SyncReport sync;
  write_transaction(
      db, stop,
      [&] {
        ensure_base_schema(db);
        set_node_id(db, node);
        sync = sync_capture(db, table_selection(config));
      },
      "capture after restore");
  log_sync_report(sync);
  return true;
}

// Own-batch bounds a restore left (this one, or one whose start was interrupted) that the
// positions have not passed yet; the ones passed are forgotten.
std::map<std::string, uint64_t> pending_own_bounds(Db& db, const std::atomic<bool>& stop) {
  auto own = restored_own_until(db);
  auto positions = load_positions(db);
  for (auto it = own.begin(); it != own.end();) {
    auto p = positions.find(it->first);
    if (p != positions.end() && p->second >= it->second) {
      write_transaction(
          db, stop, [&] { forget_restored_own_until(db, it->first); }, "restore bookkeeping");
      it = own.erase(it);
    } else {
      spdlog::info(
          "{}: this node's own batches up to {} are applied (they are newer than the "
          "restored snapshot)",
          it->first, it->second);
      ++it;
    }
  }
  return own;
}

// A database file that never issued a batch: new, or recreated under a node id that published
// before (the id comes from the config, the batch counter from the file). Its batch ids must not
// start at 1 again: JetStream drops a message whose Nats-Msg-Id ("<node>-<batch>-<part>") it saw
// within the duplicate window and acknowledges it as a duplicate, so the rebuilt node's first
// batches would reach no one; and this node would skip its earlier incarnation's batches in the
// stream as its own echo. So the counter starts at the wall clock in microseconds (above any id
// an earlier incarnation issued, unless it issued more than one batch per microsecond since or
// the clock went back), and batches of this node id already in the streams are applied like any
// other node's (the same bookkeeping as after a restore, kept until the position passes them).
void claim_fresh_batch_ids(const Config& config, Db& db, NatsConnection& conn,
                           const std::atomic<bool>& stop) {
  if (meta_get(db, "next_batch_id")) return;
  constexpr int64_t kMicrosPerMs = 1000;
  const int64_t first_batch_id = std::max<int64_t>(1, wall_clock_ms() * kMicrosPerMs);
  std::map<std::string, uint64_t> earlier;
  for (int shard = 1; config.replicate && shard <= config.replication_log.shards; ++shard) {
    const std::string stream = stream_name(config, shard);
    if (const auto state = stream_state(conn, stream); state && state->last_seq > 0)
      earlier[stream] = state->last_seq;
  }
  write_transaction(
      db, stop,
      [&] {
        meta_set(db, "next_batch_id", first_batch_id);
        for (const auto& [stream, last] : earlier) remember_own_until(db, stream, last);
      },
      "first batch id");
  spdlog::info("this database has issued no batch yet: its batch ids start at {}", first_batch_id);
}

}  // namespace

StartupRestore restore_at_startup(const Config& config, Db& db, NatsConnection& conn, uint64_t node,
                                  const std::atomic<bool>& stop) {
  StartupRestore out;
  std::string store_problem;
  const std::unique_ptr<SnapshotStore> store = open_store_at_startup(config, conn, store_problem);
  if (config.replicate) {
    const auto views = stream_views(config, conn, db);
    if (const std::string holes = describe_holes(views); !holes.empty()) {
      TempFile tmp{temp_path_near(config.db_path, "restore")};
      // /health answers "starting: restoring snapshot" (503) with the step's progress meanwhile.
      SnapshotPhase restoring("restoring");
      std::string why_not;
      if (const auto meta = fetch_usable_snapshot(config, store.get(), store_problem, holes, views,
                                                  tmp.path, why_not)) {
        if (!restore_downloaded(config, db, tmp.path, *meta, views, node, stop, out.checkpoint))
          return out;
      } else {
        skip_holes_for_anti_entropy(config, db, holes, why_not, views, stop);
      }
    }
  }
  claim_fresh_batch_ids(config, db, conn, stop);
  out.own_until = pending_own_bounds(db, stop);
  return out;
}

// ---------------------------------------------------------------------------------------------

void save_snapshot_before_sleep(const Config& config, NatsConnection& conn, uint64_t node) {
  if (!config.snapshot.enabled) return;
  if (!config.publish || !config.replicate) {
    spdlog::info("no snapshot before sleeping: publish = {}, replicate = {} (both are needed)",
                 config.publish, config.replicate);
    return;
  }
  try {
    SnapshotLeader lease(conn, lease_bucket(config), node, config.snapshot.leader_ttl_ms,
                         config.snapshot.nats.replicas);
    if (!lease.tick()) {
      spdlog::info("no snapshot before sleeping: another node holds the snapshot lease");
      return;
    }
    Db db = open_database(config.db_path);
    for (const auto& v : stream_views(config, conn, db)) {
      if (has_hole(v)) {
        spdlog::warn("no snapshot before sleeping: this node is behind what {} retains", v.name);
        lease.release();
        return;
      }
    }
    spdlog::info("saving a snapshot before sleeping (sleep_timeout)");
    auto store = make_snapshot_store(config, &conn);
    save_snapshot(config, *store, [&] { lease.tick(); });
    lease.release();
  } catch (const std::exception& e) {
    spdlog::warn("the snapshot before sleeping failed: {}; exiting without it", e.what());
  }
}

SnapshotScheduler::SnapshotScheduler(const Config& config, NatsConnection& conn, uint64_t node)
    : config_(config), conn_(conn), node_(node) {}

namespace {

// The store and the lease bucket may not be creatable yet (servers down): keeps trying, quietly,
// until both exist or `stop`. Returns no lease when stopped first.
std::unique_ptr<SnapshotLeader> wait_for_lease(const Config& config, NatsConnection& conn,
                                               uint64_t node, std::unique_ptr<SnapshotStore>& store,
                                               const std::atomic<bool>& stop) {
  std::unique_ptr<SnapshotLeader> lease;
  for (auto last_log = std::chrono::steady_clock::time_point{}; !lease && !stop;) {
    try {
      if (!store) store = make_snapshot_store(config, &conn);
      lease = std::make_unique<SnapshotLeader>(conn, lease_bucket(config), node,
                                               config.snapshot.leader_ttl_ms,
                                               config.snapshot.nats.replicas);
    } catch (const Error& e) {
      auto now = std::chrono::steady_clock::now();
      if (now - last_log > 5min) {
        last_log = now;
        spdlog::warn("periodic snapshots are not possible yet: {}; retrying", e.what());
      }
      for (int i = 0; i < 100 && !stop; ++i) std::this_thread::sleep_for(100ms);
    }
  }
  return lease;
}

// What the streams say about a snapshot now, measured against the newest one.
struct SnapshotNeed {
  bool behind = false;  // a stream no longer holds messages this node has not applied
  bool ahead = false;   // this node applied messages the newest snapshot does not hold
  std::string reason;   // why to take one now; "" when no trigger fired
};

SnapshotNeed snapshot_need(const Config& config, const std::vector<StreamView>& views,
                           const std::optional<SnapshotMeta>& newest) {
  SnapshotNeed need;
  uint64_t grown = 0;
  for (const auto& v : views) {
    need.behind = need.behind || has_hole(v);
    uint64_t at = 0;
    if (newest)
      if (auto it = newest->positions.find(v.name); it != newest->positions.end()) at = it->second;
    need.ahead = need.ahead || v.position > at;
    uint64_t growth = v.state.last_seq > at ? v.state.last_seq - at : 0;
    grown += growth;
    if (config.replication_log.max_entries > 0 &&
        growth >=
            static_cast<uint64_t>(std::max<int64_t>(1, config.replication_log.max_entries / 2)) &&
        need.reason.empty())
      need.reason = fmt::format("{} grew by {} messages since the newest snapshot (max_entries {})",
                                v.name, growth, config.replication_log.max_entries);
  }
  if (need.behind || !need.ahead) return need;
  int64_t age_ms =
      newest ? wall_clock_ms() - newest->created_ms : std::numeric_limits<int64_t>::max();
  if (config.snapshot.every_entries > 0 &&
      grown >= static_cast<uint64_t>(config.snapshot.every_entries))
    need.reason = fmt::format("the streams grew by {} messages (every_entries {})", grown,
                              config.snapshot.every_entries);
  else if (config.snapshot.interval_ms > 0 && age_ms >= config.snapshot.interval_ms)
    need.reason = fmt::format("interval {} ms", config.snapshot.interval_ms);
  else if (config.replication_log.max_age_ms > 0 && age_ms >= config.replication_log.max_age_ms / 2)
    need.reason = fmt::format("the newest snapshot is older than half of max_age");
  return need;
}

}  // namespace

void SnapshotScheduler::run(const std::atomic<bool>& stop) {
  std::unique_ptr<SnapshotStore> store;
  std::unique_ptr<SnapshotLeader> lease = wait_for_lease(config_, conn_, node_, store, stop);
  if (!lease) return;
  SnapshotLeader& leader = *lease;
  Db db = open_database(config_.db_path);
  std::optional<SnapshotMeta> newest;
  auto info_read_at = std::chrono::steady_clock::time_point{};
  auto not_before = std::chrono::steady_clock::now();
  auto last_error_log = std::chrono::steady_clock::time_point{};
  bool warned_behind = false;
  struct Release {
    SnapshotLeader& l;
    ~Release() {
      try {
        l.release();
      } catch (...) {
      }
    }
  } release{leader};

  while (!stop) {
    for (int i = 0; i < 10 && !stop; ++i) std::this_thread::sleep_for(100ms);
    if (stop) break;
    auto now = std::chrono::steady_clock::now();
    std::string reason;
    try {
      if (!leader.tick() || now < not_before) continue;
      if (now - info_read_at > kInfoRefresh) {
        newest = store->info();
        info_read_at = now;
      }
      const SnapshotNeed need = snapshot_need(config_, stream_views(config_, conn_, db), newest);
      if (need.behind) {
        if (!warned_behind)
          spdlog::warn(
              "this node holds the snapshot lease but is behind what the streams "
              "retain: it takes no snapshots until it has caught up");
        warned_behind = true;
        continue;
      }
      warned_behind = false;
      if (!need.ahead) continue;  // nothing newer than the newest snapshot
      reason = need.reason;
      if (reason.empty()) continue;
      spdlog::info("taking a snapshot: {}", reason);
      not_before =
          now + std::min<std::chrono::milliseconds>(
                    kMinSnapshotSpacing, std::chrono::milliseconds(config_.snapshot.leader_ttl_ms));
      newest = save_snapshot(config_, *store, [&] { leader.tick(); });
      info_read_at = std::chrono::steady_clock::now();
    } catch (const std::exception& e) {
      not_before = std::chrono::steady_clock::now() + (reason.empty() ? 1s : kFailureBackoff);
      if (now - last_error_log > 60s || !reason.empty()) {
        last_error_log = now;
        spdlog::warn("snapshot {}failed: {}", reason.empty() ? "check " : "", e.what());
      }
    }
  }
}

}  // namespace harmony
