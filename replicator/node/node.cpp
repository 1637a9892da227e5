// A running replicator node (see node.hpp): start-up steps, housekeeping, orderly shutdown.
#include "replicator/node/node.hpp"

#include <unistd.h>

#include <chrono>

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <spdlog/spdlog.h>

#include "harmony_version.hpp"
#include "replicator/common/database.hpp"
#include "replicator/common/harmonylite_leftovers.hpp"
#include "replicator/common/log.hpp"
#include "replicator/common/runtime_info.hpp"
#include "replicator/common/schema_guard.hpp"
#include "replicator/nats/nats_client.hpp"
#include "replicator/nats/nats_config.hpp"
#include "replicator/nats/nats_server.hpp"
#include "replicator/node/jetstream_io.hpp"
#include "replicator/node/node_options.hpp"
#include "replicator/ops/ops.hpp"
#include "replicator/publish/publisher.hpp"
#include "replicator/receive/consumer.hpp"
#include "replicator/snapshot/snapshot_service.hpp"
#include "replicator/sync/anti_entropy.hpp"
#include "shared/capture.hpp"
#include "shared/dead_letters.hpp"
#include "shared/error.hpp"
#include "shared/hlc.hpp"
#include "shared/outbox.hpp"

namespace harmony {

namespace {

// How long to wait for JetStream to accept each publish before retrying it.
constexpr auto kPublishAckTimeout = std::chrono::seconds(5);
// How long a fresh embedded nats-server may take to accept clients.
constexpr auto kServerReadyTimeout = std::chrono::seconds(30);
// A failed worker body is restarted after this pause (checked for stop every tick).
constexpr auto kWorkerRestartPause = std::chrono::seconds(2);
constexpr auto kStopCheckTick = std::chrono::milliseconds(100);
// Database checks for health and metrics never run more often than this, whatever
// cleanup_interval says.
constexpr int64_t kMinHousekeepingIntervalMs = 500;

}  // namespace

Worker::Worker(std::string name, std::atomic<bool>& stop, std::function<void()> body)
    : name_(std::move(name)), stop_(stop), thread_([this, body = std::move(body)] { run(body); }) {}

Worker::~Worker() {
  stop_ = true;
  if (thread_.joinable()) thread_.join();
}

void Worker::run(const std::function<void()>& body) {
  while (!stop_) {
    try {
      body();
      return;
    } catch (const std::exception& e) {
      spdlog::error("{} failed: {}; restarting it in {} s", name_, e.what(),
                    std::chrono::duration_cast<std::chrono::seconds>(kWorkerRestartPause).count());
    }
    for (auto waited = std::chrono::milliseconds(0); waited < kWorkerRestartPause && !stop_;
         waited += kStopCheckTick)
      std::this_thread::sleep_for(kStopCheckTick);
  }
}

Node::Node(const Config& config, const CliOptions& cli, std::atomic<bool>& stop)
    : config_(config),
      cli_(cli),
      stop_(stop),
      lock_(config.db_path),
      selection_(table_selection(config)) {
  prepare_database();
  // Health and metrics answer from here on (a probe reports NATS as down until it connects).
  endpoints_ = std::make_unique<OpsEndpoints>(config_, node_, stats_);
  if (config_.nats.urls.empty()) start_embedded_server();
}

Node::~Node() {
  stop_workers();
  try {
    Transaction tx(db_);
    clear_runtime_info(db_);
    tx.commit();
  } catch (const std::exception&) {
    // Best effort: a stale pid is recognised as not ours (running_replicator checks the exe).
  }
  // The members go in reverse declaration order from here: sources, publisher and transport
  // before the connection, the connection before the server it talks to.
}

void Node::prepare_database() {
  // First, so an unusable key file stops the start before anything is opened or started.
  if (!config_.nats.cluster_key_file.empty())
    cluster_key_ = std::make_shared<const ClusterKey>(load_cluster_key(
        config_.nats.cluster_key_file, config_.nats.cluster_key_mode != "sign-only"));
  db_ = open_database(config_.db_path);
  auto mode = db_.query_value("PRAGMA journal_mode = WAL");
  if (!mode || !std::holds_alternative<Text>(*mode) || std::get<Text>(*mode).bytes != "wal")
    throw Error(
        fmt::format("cannot switch {} to WAL mode (another connection may hold it open "
                    "in rollback mode); close other users and retry",
                    config_.db_path));
  SyncReport report;
  std::vector<std::string> schema_changed;  // tables altered while the replicator was stopped
  write_transaction(
      db_, stop_,
      [&] {
        ensure_base_schema(db_);
        if (config_.node_id) set_node_id(db_, config_.node_id);
        node_ = node_id(db_);
        load_clock(db_);  // refuses (throws) a stored clock beyond the range versions may take
        report = sync_capture(db_, selection_);
        schema_changed = record_schema_hashes(db_, captured_tables(db_));
      },
      "installing capture");
  setup_logging(config_.logging.verbose, config_.logging.format, node_);
  log_start_up_state(report, schema_changed);
  // A database migrated from HarmonyLite: its triggers still fire on every write (issue 19).
  if (const auto leftovers = find_harmonylite_leftovers(db_); !leftovers.empty())
    spdlog::warn("{}", harmonylite_leftovers_warning(leftovers, config_.db_path));
}

void Node::log_start_up_state(const SyncReport& report,
                              const std::vector<std::string>& schema_changed) {
  auto tables = captured_tables(db_);
  stats_.tables_tracked = static_cast<int64_t>(tables.size());
  stats_.capture_installed = !tables.empty();
  stats_.db_ok = true;
  std::vector<std::string> names;
  for (const auto& t : tables) names.push_back(t.name);
  spdlog::info("harmonylite {} node {} on {}: replicating {} table(s): {}", build::kVersion, node_,
               config_.db_path, tables.size(), fmt::join(names, ", "));
  log_sync_report(report);
  const LocalSchema local = LocalSchema::load(db_);
  for (const auto& t : schema_changed)
    spdlog::info(
        "schema of table {} changed while harmonylite was stopped: hash {} (previous "
        "{} is still accepted from nodes not yet upgraded)",
        t, local.find(t)->hash, local.find(t)->previous.front());
  stats_.set_schema(local.by_name());
  if (tables.empty())
    spdlog::warn(
        "no table is replicated: create tables with a PRIMARY KEY (capture is added as "
        "soon as they appear)");
  if (!config_.seq_map_path.empty())
    spdlog::info(
        "seq_map_path is accepted for compatibility but unused: stream positions are kept "
        "in the database (__harmony_positions), in the same transaction as the changes");
  if (!config_.publish)
    spdlog::warn(
        "publish = false: local changes are captured and kept pending ({} now); they are "
        "published once publish is enabled again",
        total_pending(db_, tables));
  if (!config_.replicate)
    spdlog::warn(
        "replicate = false: changes from other nodes are not applied (stream positions "
        "do not advance)");
}

void Node::start_embedded_server() {
  std::vector<std::string> route_problems;
  EmbeddedServerOptions so = embedded_server_options(config_, cli_, node_, route_problems);
  for (const auto& p : route_problems) spdlog::warn("{}; that route is left out", p);
  server_ = std::make_unique<EmbeddedServer>(so);
  std::vector<std::string> shown_routes;  // a route URL may carry a password
  for (const auto& r : so.routes) shown_routes.push_back(redact_url(r));
  spdlog::info("starting embedded nats-server {} (store {}, cluster {}, routes [{}])",
               so.server_name, so.store_dir, so.cluster_listen.empty() ? "off" : so.cluster_listen,
               fmt::join(shown_routes, ", "));
  server_->start(kServerReadyTimeout);
  spdlog::info("embedded nats-server running (pid {}) at {}", server_->pid(),
               server_->client_url());
}

bool Node::connect() {
  ConnectOptions connect = connect_options(config_, node_);
  if (server_) connect.urls = {server_->client_url()};
  conn_ = NatsConnection::connect(connect, stop_);
  if (!conn_) return false;
  stats_.nats_connected = true;
  for (int shard = 1; shard <= config_.replication_log.shards; ++shard)
    if (!ensure_stream(*conn_, stream_spec(config_, shard), stop_)) return false;
  spdlog::info("{} stream(s) ready ({}-1..{}, replicas {}, stream audit {})",
               config_.replication_log.shards, config_.nats.stream_prefix,
               config_.replication_log.shards, config_.replication_log.replicas,
               config_.replication_log.stream_audit ? "on" : "off");
  // Restore the newest snapshot when a stream no longer holds what this node needs (with none
  // usable, skip to the stream's start and leave the gap to anti-entropy); returns how far own
  // batches must be applied after a restore.
  StartupRestore restored = restore_at_startup(config_, db_, *conn_, node_, stop_);
  own_until_ = std::move(restored.own_until);
  restore_checkpoint_ = std::move(restored.checkpoint);
  if (stop_) return false;
  write_transaction(
      db_, stop_, [&] { record_runtime_info(db_, connect.urls.front()); },
      "recording runtime info");
  return true;
}

void Node::start_worker(std::string name, std::function<void()> body, const StartupHooks& hooks) {
  workers_.push_back(std::make_unique<Worker>(name, stop_, std::move(body)));
  if (hooks.worker_started) hooks.worker_started(name);
}

void Node::start_workers(const StartupHooks& hooks) {
  const int own_shard = publish_shard(config_, node_);
  transport_ =
      std::make_unique<JetStreamTransport>(conn_->get(), subject_name(config_, own_shard),
                                           stream_name(config_, own_shard), kPublishAckTimeout);
  PublisherOptions po = publisher_options(config_, node_);
  po.cluster_key = cluster_key_;
  publisher_ = std::make_unique<Publisher>(std::move(po), *transport_, stats_);
  start_worker(
      "publisher", [this] { publisher_->run(stop_); }, hooks);
  for (int shard = 1; config_.replicate && shard <= config_.replication_log.shards; ++shard) {
    ConsumerOptions co = consumer_options(config_, shard, node_, publisher_->schema_generation());
    if (auto own = own_until_.find(co.stream); own != own_until_.end())
      co.apply_own_until = own->second;
    co.cluster_key = cluster_key_;
    sources_.push_back(std::make_unique<JetStreamSource>(conn_->get(), co.stream,
                                                         subject_name(config_, shard), &stats_,
                                                         config_.replication_log.stream_audit));
    consumers_.push_back(std::make_unique<Consumer>(co, *sources_.back(), stats_));
    Consumer* consumer = consumers_.back().get();
    start_worker(
        fmt::format("consumer {}", co.stream), [this, consumer] { consumer->run(stop_); }, hooks);
  }
  if (config_.snapshot.enabled && config_.replicate) {
    snapshots_ = std::make_unique<SnapshotScheduler>(config_, *conn_, node_);
    start_worker(
        "snapshots", [this] { snapshots_->run(stop_); }, hooks);
  }
  start_anti_entropy(hooks);
  monitor_ = std::make_unique<OpsMonitor>(config_, node_, stats_, *conn_, server_.get());
  start_worker(
      "monitor", [this] { monitor_->run(stop_); }, hooks);
  spdlog::info("node {} is replicating (publish={}, replicate={})", node_, config_.publish,
               config_.replicate);
}

// Anti-entropy (docs/anti-entropy.md): the stored digests are rebuilt from __harmony_rows at
// every start (one scan per table: covers a file copied back, recreated or restored, and a
// database from before digests existed); the responder answers peers even when this node's
// own rounds are off (interval 0).
void Node::start_anti_entropy(const StartupHooks& hooks) {
  AntiEntropyOptions ao;
  ao.db_path = config_.db_path;
  ao.node = node_;
  ao.subject_prefix = config_.nats.subject_prefix + "-sync";
  ao.interval_ms = config_.anti_entropy.interval_ms;
  ao.max_repair_rows = config_.anti_entropy.max_repair_rows_per_round;
  ao.digest_check_rounds = config_.anti_entropy.digest_check_rounds;
  ao.scrub_rows = config_.anti_entropy.scrub_rows;
  ao.max_drift_ms = config_.max_clock_drift_ms;
  ao.cluster_key = cluster_key_;
  ao.gc_interval_ms = config_.tombstones.gc_interval_ms;
  ao.member_retention_ms = config_.tombstones.member_retention_ms;
  // Tombstone GC's safe mark needs the streams' last sequences from the server; a node that
  // applies nothing (replicate = false) never is caught up, so it takes no mark.
  if (config_.replicate)
    ao.stream_tails = [this]() -> std::optional<std::map<std::string, uint64_t>> {
      if (!conn_->connected()) return std::nullopt;
      std::map<std::string, uint64_t> tails;
      for (int shard = 1; shard <= config_.replication_log.shards; ++shard) {
        const std::string name = stream_name(config_, shard);
        std::optional<StreamState> state;
        try {
          state = stream_state(*conn_, name);
        } catch (const std::exception&) {
          return std::nullopt;  // not answerable now: no mark this round
        }
        if (!state) return std::nullopt;
        tails[name] = state->last_seq;
      }
      return tails;
    };
  anti_entropy_ = std::make_unique<AntiEntropy>(ao, conn_->get(), &stats_);
  for (const auto& t : anti_entropy_->rebuild())
    spdlog::info("anti-entropy: content digest of table {} rebuilt from __harmony_rows", t);
  anti_entropy_->start_responder();
  if (config_.replicate && ao.interval_ms > 0)
    start_worker(
        "anti-entropy", [this] { anti_entropy_->run(stop_); }, hooks);
}

void Node::refresh_database_stats() {
  try {
    auto tables = captured_tables(db_);
    stats_.pending_rows = total_pending(db_, tables);
    bool installed = !tables.empty();
    for (const auto& t : tables) installed = installed && triggers_installed(db_, t);
    stats_.capture_installed = installed;
    stats_.db_ok = true;
  } catch (const std::exception& e) {
    stats_.db_ok = false;
    spdlog::warn("database check failed: {}", e.what());
  }
}

// Keeps __harmony_dead_letters within [dead_letters] (issue 14 item 8). Runs on the tick after
// an apply transaction added dead letters, so the table exceeds its bound by at most what
// arrived in one tick, and on every housekeeping round for max_age. The consumers only insert:
// this is the one place that deletes, on the node's own connection, in a short write
// transaction (one DELETE per bound).
void Node::prune_dead_letters_now() {
  PruneResult pruned;
  try {
    write_transaction(
        db_, stop_,
        [&] { pruned = prune_dead_letters(db_, wall_clock_ms(), config_.dead_letters); },
        "pruning dead letters");
    const DeadLetterUsage stored = dead_letter_usage(db_);
    stats_.dead_letters_stored = stored.rows;
    stats_.dead_letters_bytes = stored.bytes;
  } catch (const std::exception& e) {
    spdlog::warn("pruning dead letters failed: {}", e.what());
    return;
  }
  if (pruned.total() == 0) return;
  stats_.dead_letters_pruned += pruned.total();
  // One line per round, not per row: a flood would otherwise flood the log too.
  spdlog::warn(
      "dead letters pruned: {} row(s), the oldest ({} older than max_age = {} ms, {} beyond "
      "max_rows = {}, {} beyond max_bytes = {})",
      pruned.total(), pruned.by_age, config_.dead_letters.max_age_ms, pruned.by_rows,
      config_.dead_letters.max_rows, pruned.by_bytes, config_.dead_letters.max_bytes);
}

// Rows and messages the consumers have dead-lettered since start.
int64_t Node::dead_lettered() const {
  return stats_.rows_dead_lettered + stats_.batches_dead_lettered;
}

// HarmonyLite's "pulse": every publish and every received change counts as activity.
int64_t Node::replication_activity() const {
  return stats_.rows_published + stats_.rows_applied + stats_.batches_skipped_own +
         stats_.rows_skipped_older + stats_.rows_dead_lettered + stats_.batches_dead_lettered;
}

void Node::run_until_stopped() {
  const auto housekeeping_interval = std::chrono::milliseconds(
      std::max<int64_t>(config_.cleanup_interval_ms, kMinHousekeepingIntervalMs));
  const auto sleep_timeout = std::chrono::milliseconds(config_.sleep_timeout_ms);
  auto last_activity = std::chrono::steady_clock::now();
  int64_t last_count = -1;
  int64_t dead_lettered_at_prune = -1;  // dead_lettered() when the table was last pruned
  auto next_housekeeping = last_activity;
  while (!stop_) {
    std::this_thread::sleep_for(kStopCheckTick);
    const auto now = std::chrono::steady_clock::now();
    stats_.nats_connected = conn_->connected();
    const bool housekeeping = now >= next_housekeeping;
    if (housekeeping || dead_lettered() != dead_lettered_at_prune) {
      dead_lettered_at_prune = dead_lettered();
      prune_dead_letters_now();
    }
    if (housekeeping) {
      next_housekeeping = now + housekeeping_interval;
      refresh_database_stats();
    }
    if (int64_t activity = replication_activity(); activity != last_count) {
      last_count = activity;
      last_activity = now;
    }
    if (sleep_timeout.count() > 0 && now - last_activity > sleep_timeout) {
      spdlog::info("no replication activity for {} ms (sleep_timeout): exiting",
                   config_.sleep_timeout_ms);
      slept_ = true;
      stop_ = true;
    }
  }
  stop_workers();
  // HarmonyLite's scale-to-zero: the next node to wake restores from a recent snapshot. After
  // the workers stopped, so the publisher finished its batch and the scheduler let the lease go.
  if (slept_) save_snapshot_before_sleep(config_, *conn_, node_);
}

void Node::stop_workers() {
  if (workers_.empty()) return;
  spdlog::info("stopping: finishing the batch in hand");
  stop_ = true;
  if (publisher_) publisher_->wake();
  workers_.clear();  // each one joins
}

}  // namespace harmony
