// Process orchestration (see replicator.hpp).
#include "replicator/replicator.hpp"

#include <signal.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <memory>
#include <string_view>
#include <thread>
#include <vector>

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <spdlog/spdlog.h>

#include "harmony_version.hpp"
#include "replicator/address.hpp"
#include "replicator/capture_sync.hpp"
#include "replicator/consumer.hpp"
#include "replicator/database.hpp"
#include "replicator/jetstream_io.hpp"
#include "replicator/log.hpp"
#include "replicator/nats_client.hpp"
#include "replicator/nats_server.hpp"
#include "replicator/ops.hpp"
#include "replicator/publisher.hpp"
#include "replicator/routes.hpp"
#include "replicator/schema_guard.hpp"
#include "replicator/snapshot_service.hpp"
#include "shared/capture.hpp"
#include "shared/fold.hpp"
#include "shared/hlc.hpp"
#include "shared/outbox.hpp"

namespace harmony {

namespace {

// How long to wait for JetStream to accept each publish before retrying it.
constexpr auto kPublishAckTimeout = std::chrono::seconds(5);
// How long a fresh embedded nats-server may take to accept clients.
constexpr auto kServerReadyTimeout = std::chrono::seconds(30);

TableSelection selection_from(const Config& c) {
  TableSelection s;
  s.include = c.include_tables;
  s.exclude = c.exclude_tables;
  s.capture_existing_rows = c.capture_existing_rows;
  return s;
}

constexpr std::string_view kExecutableName = "harmonylite";

// The file name of the program `pid` runs: its executable, or argv[0] when /proc/<pid>/exe cannot
// be read (another user's process).
std::string program_name(int64_t pid) {
  const std::string proc = fmt::format("/proc/{}", pid);
  std::error_code ec;
  const auto exe = std::filesystem::read_symlink(proc + "/exe", ec);
  if (!ec) {
    std::string name = exe.filename().string();
    // A binary replaced while it runs (an upgrade, a rebuild) reads as "harmonylite (deleted)".
    constexpr std::string_view kDeleted = " (deleted)";
    if (name.ends_with(kDeleted)) name.resize(name.size() - kDeleted.size());
    return name;
  }
  std::ifstream cmdline(proc + "/cmdline", std::ios::binary);
  std::string argv0;
  std::getline(cmdline, argv0, '\0');
  return std::filesystem::path(argv0).filename().string();
}

// A live process running the harmonylite executable. Only the program counts, not its
// arguments: after kill -9 the recorded pid may be reused by, say, `sqlite3 harmonylite-1.db`.
bool pid_is_harmonylite(int64_t pid) {
  if (pid <= 0 || kill(static_cast<pid_t>(pid), 0) != 0) return false;
  return program_name(pid) == kExecutableName;
}

// A thread that runs a loop body until `stop`; logs and keeps the process alive on failure
// (a component that throws is restarted after a pause, never silently lost).
class Worker {
 public:
  Worker(std::string name, std::atomic<bool>& stop, std::function<void()> body)
      : name_(std::move(name)), thread_([this, &stop, body = std::move(body)] {
          while (!stop) {
            try {
              body();
              return;
            } catch (const std::exception& e) {
              spdlog::error("{} failed: {}; restarting it in 2 s", name_, e.what());
            }
            for (int i = 0; i < 20 && !stop; ++i)
              std::this_thread::sleep_for(std::chrono::milliseconds(100));
          }
        }) {}
  ~Worker() {
    if (thread_.joinable()) thread_.join();
  }

 private:
  std::string name_;
  std::thread thread_;
};

}  // namespace

std::string stream_name(const Config& c, int shard) {
  return fmt::format("{}-{}", c.nats.stream_prefix, shard);
}
std::string subject_name(const Config& c, int shard) {
  return fmt::format("{}-{}", c.nats.subject_prefix, shard);
}
int publish_shard(const Config& c, uint64_t node) {
  return static_cast<int>(node % static_cast<uint64_t>(c.replication_log.shards)) + 1;
}

std::optional<RuntimeInfo> running_replicator(const std::string& db_path) {
  try {
    Db db = Db::open(db_path, SQLITE_OPEN_READONLY);
    if (db.query_int("SELECT count(*) FROM sqlite_schema WHERE name='__harmony_meta'") == 0)
      return std::nullopt;
    RuntimeInfo info;
    info.pid = meta_get_int(db, "runtime_pid", 0);
    if (auto url = meta_get(db, "runtime_nats_url"); url && std::holds_alternative<Text>(*url))
      info.nats_url = std::get<Text>(*url).bytes;
    if (!pid_is_harmonylite(info.pid) || info.pid == getpid()) return std::nullopt;
    return info;
  } catch (const std::exception&) {
    return std::nullopt;
  }
}

int run_cleanup(const Config& config, bool force) {
  if (auto running = running_replicator(config.db_path)) {
    spdlog::error("a harmonylite replicator (pid {}) is running on {}; stop it before -cleanup",
                  running->pid, config.db_path);
    return 1;
  }
  Db db = open_database(config.db_path);
  int64_t pending = 0;
  if (db.query_int("SELECT count(*) FROM sqlite_schema WHERE name='__harmony_tables'") > 0)
    pending = total_pending(db, captured_tables(db));
  if (pending > 0 && !force) {
    spdlog::error(
        "{} has {} unpublished change(s); -cleanup would lose them. Run the replicator until "
        "they are published, or add -force to drop them",
        config.db_path, pending);
    return 1;
  }
  Transaction tx(db);
  remove_all_objects(db);
  tx.commit();
  spdlog::info("removed every harmonylite object from {}{}", config.db_path,
               pending ? fmt::format(" ({} unpublished changes dropped)", pending) : "");
  return 0;
}

int run_replicator(const Config& config, const CliOptions& cli) {
  // Signals are taken synchronously by this thread; every thread started below inherits the mask.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  std::atomic<bool> stop{false};
  ReplicatorStats stats;

  // --- database and capture -----------------------------------------------------------------
  Db db = open_database(config.db_path);
  {
    auto mode = db.query_value("PRAGMA journal_mode = WAL");
    if (!mode || !std::holds_alternative<Text>(*mode) || std::get<Text>(*mode).bytes != "wal")
      throw Error(
          fmt::format("cannot switch {} to WAL mode (another connection may hold it open "
                      "in rollback mode); close other users and retry",
                      config.db_path));
  }
  uint64_t node = 0;
  SyncReport report;
  std::vector<std::string> schema_changed;  // tables altered while the replicator was stopped
  write_transaction(
      db, stop,
      [&] {
        ensure_base_schema(db);
        if (config.node_id) set_node_id(db, config.node_id);
        node = node_id(db);
        report = sync_capture(db, selection_from(config));
        schema_changed = record_schema_hashes(db, captured_tables(db));
      },
      "installing capture");
  setup_logging(config.logging.verbose, config.logging.format, node);
  auto tables = captured_tables(db);
  stats.tables_tracked = static_cast<int64_t>(tables.size());
  stats.capture_installed = !tables.empty();
  stats.db_ok = true;
  std::vector<std::string> names;
  for (const auto& t : tables) names.push_back(t.name);
  spdlog::info("harmonylite {} node {} on {}: replicating {} table(s): {}", build::kVersion, node,
               config.db_path, tables.size(), fmt::join(names, ", "));
  log_sync_report(report);
  {
    const LocalSchema local = LocalSchema::load(db);
    for (const auto& t : schema_changed)
      spdlog::info(
          "schema of table {} changed while harmonylite was stopped: hash {} (previous "
          "{} is still accepted from nodes not yet upgraded)",
          t, local.find(t)->hash, local.find(t)->previous.front());
    stats.set_schema(local.by_name());
  }
  if (tables.empty())
    spdlog::warn(
        "no table is replicated: create tables with a PRIMARY KEY (capture is added as "
        "soon as they appear)");
  if (!config.seq_map_path.empty())
    spdlog::info(
        "seq_map_path is accepted for compatibility but unused: stream positions are kept "
        "in the database (__harmony_positions), in the same transaction as the changes");
  if (!config.publish)
    spdlog::warn(
        "publish = false: local changes are captured and kept pending ({} now); they are "
        "published once publish is enabled again",
        total_pending(db, tables));
  if (!config.replicate)
    spdlog::warn(
        "replicate = false: changes from other nodes are not applied (stream positions "
        "do not advance)");

  // Health and metrics answer from here on (a probe reports NATS as down until it connects).
  OpsEndpoints endpoints(config, node, stats);

  // --- NATS -----------------------------------------------------------------------------------
  std::unique_ptr<EmbeddedServer> server;
  ConnectOptions connect;
  connect.urls = config.nats.urls;
  connect.name = fmt::format("harmonylite-{}", node);
  connect.user = config.nats.user_name;
  connect.password = config.nats.user_password;
  connect.nkey_seed_file = config.nats.seed_file;
  connect.ca_file = config.nats.ca_file;
  connect.cert_file = config.nats.cert_file;
  connect.key_file = config.nats.key_file;
  connect.reconnect_wait_ms = config.nats.reconnect_wait_seconds * 1000;
  connect.connect_attempts = config.nats.connect_retries;
  if (config.nats.urls.empty()) {
    EmbeddedServerOptions so;
    so.binary = config.nats.server_binary;
    so.server_name = fmt::format("harmonylite-{}", node);
    // Validated when the config was loaded. The host stays bare (no brackets) from here on:
    // nats-server's -a takes "::1", and client_url() adds the brackets a URL needs.
    const auto bind = parse_host_port(config.nats.bind_address, true);
    if (!bind)
      throw Error(
          fmt::format("[nats] bind_address \"{}\" is not host:port", config.nats.bind_address));
    so.client_host = bind->host;
    so.client_port = bind->port;
    so.cluster_listen = cli.cluster_addr;
    // nats-server understands only nats:// routes: dns://name:port/ becomes one per address.
    std::vector<std::string> route_problems;
    so.routes = expand_routes(cli.cluster_peers, route_problems);
    so.leaf_remotes = expand_routes(cli.leaf_servers, route_problems);
    for (const auto& p : route_problems) spdlog::warn("{}; that route is left out", p);
    so.config_file = config.nats.server_config;
    so.store_dir = config.nats.store_dir.empty() ? config.db_path + "-nats" : config.nats.store_dir;
    so.user = config.nats.user_name;
    so.password = config.nats.user_password;
    server = std::make_unique<EmbeddedServer>(so);
    spdlog::info("starting embedded nats-server {} (store {}, cluster {}, routes [{}])",
                 so.server_name, so.store_dir,
                 so.cluster_listen.empty() ? "off" : so.cluster_listen, fmt::join(so.routes, ", "));
    server->start(kServerReadyTimeout);
    connect.urls = {server->client_url()};
    spdlog::info("embedded nats-server running (pid {}) at {}", server->pid(),
                 server->client_url());
  }

  // From here on, SIGINT/SIGTERM must interrupt long waits (connect, stream creation).
  std::thread signal_watch([&] {
    int sig = 0;
    while (!stop) {
      timespec ts{0, 200'000'000};
      sig = sigtimedwait(&signals, nullptr, &ts);
      if (sig == SIGINT || sig == SIGTERM) {
        spdlog::info("received {}, shutting down", sig == SIGINT ? "SIGINT" : "SIGTERM");
        stop = true;
      }
    }
  });
  struct JoinOnExit {
    std::atomic<bool>& stop;
    std::thread& t;
    ~JoinOnExit() {
      stop = true;
      if (t.joinable()) t.join();
    }
  } join_signal_watch{stop, signal_watch};

  auto conn = NatsConnection::connect(connect, stop);
  if (!conn) return 0;
  stats.nats_connected = true;
  for (int shard = 1; shard <= config.replication_log.shards; ++shard) {
    StreamSpec spec;
    spec.name = stream_name(config, shard);
    spec.subject = subject_name(config, shard);
    spec.replicas = config.replication_log.replicas;
    spec.max_msgs = config.replication_log.max_entries;
    spec.max_age_ms = config.replication_log.max_age_ms;
    spec.duplicate_window_ms = config.replication_log.duplicate_window_ms;
    spec.update_existing = config.replication_log.update_existing;
    if (!ensure_stream(*conn, spec, stop)) return 0;
  }
  spdlog::info("{} stream(s) ready ({}-1..{}, replicas {})", config.replication_log.shards,
               config.nats.stream_prefix, config.replication_log.shards,
               config.replication_log.replicas);
  // Restore the newest snapshot when a stream no longer holds what this node needs (refuses to
  // start when none is usable); returns how far own batches must be applied after a restore.
  auto own_until = restore_at_startup(config, db, *conn, node, stop);
  if (stop) return 0;
  write_transaction(
      db, stop,
      [&] {
        meta_set(db, "runtime_pid", static_cast<int64_t>(getpid()));
        meta_set(db, "runtime_nats_url", Text{connect.urls.front()});
      },
      "recording runtime info");

  // --- workers ----------------------------------------------------------------------------------
  std::unique_ptr<SnapshotScheduler> snapshots;             // before `workers`: they join first
  const TableSelection selection = selection_from(config);  // outlives the consumers
  std::unique_ptr<OpsMonitor> monitor;                      // before `workers`: they join first
  std::vector<std::unique_ptr<Worker>> workers;
  std::unique_ptr<JetStreamTransport> transport;
  std::unique_ptr<Publisher> publisher;
  {
    int shard = publish_shard(config, node);
    transport = std::make_unique<JetStreamTransport>(
        conn->get(), subject_name(config, shard), stream_name(config, shard), kPublishAckTimeout);
    PublisherOptions po;
    po.db_path = config.db_path;
    po.node = node;
    po.compress = config.replication_log.compress;
    po.batch_rows = static_cast<size_t>(config.scan_max_changes);
    po.poll_interval = std::chrono::milliseconds(
        config.polling_interval_ms > 0 ? config.polling_interval_ms : 1000);
    po.selection = selection_from(config);
    po.publish_enabled = config.publish;
    publisher = std::make_unique<Publisher>(po, *transport, stats);
    workers.push_back(std::make_unique<Worker>("publisher", stop, [&] { publisher->run(stop); }));
  }
  std::vector<std::unique_ptr<JetStreamSource>> sources;
  std::vector<std::unique_ptr<Consumer>> consumers;
  if (config.replicate) {
    for (int shard = 1; shard <= config.replication_log.shards; ++shard) {
      sources.push_back(std::make_unique<JetStreamSource>(conn->get(), stream_name(config, shard),
                                                          subject_name(config, shard), &stats));
      ConsumerOptions co;
      co.db_path = config.db_path;
      co.stream = stream_name(config, shard);
      co.node = node;
      co.max_rows_per_txn = static_cast<size_t>(config.apply_batch_rows);
      co.schema_generation = &publisher->schema_generation();
      co.selection = &selection;
      if (auto own = own_until.find(co.stream); own != own_until.end())
        co.apply_own_until = own->second;
      consumers.push_back(std::make_unique<Consumer>(co, *sources.back(), stats));
      Consumer* c = consumers.back().get();
      workers.push_back(std::make_unique<Worker>(fmt::format("consumer {}", co.stream), stop,
                                                 [&stop, c] { c->run(stop); }));
    }
  }
  if (config.snapshot.enabled && config.replicate) {
    snapshots = std::make_unique<SnapshotScheduler>(config, *conn, node);
    workers.push_back(std::make_unique<Worker>("snapshots", stop, [&] { snapshots->run(stop); }));
  }
  monitor = std::make_unique<OpsMonitor>(config, node, stats, *conn, server.get());
  workers.push_back(std::make_unique<Worker>("monitor", stop, [&] { monitor->run(stop); }));
  spdlog::info("node {} is replicating (publish={}, replicate={})", node, config.publish,
               config.replicate);

  // --- housekeeping until a signal --------------------------------------------------------------
  auto snapshot_before_sleep = [&] {};  // see SNAPSHOT HOOK below
  auto last_activity = std::chrono::steady_clock::now();
  int64_t last_count = -1;
  auto next_housekeeping = std::chrono::steady_clock::now();
  while (!stop) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    auto now = std::chrono::steady_clock::now();
    stats.nats_connected = conn->connected();
    if (now >= next_housekeeping) {
      next_housekeeping =
          now + std::chrono::milliseconds(std::max<int64_t>(config.cleanup_interval_ms, 500));
      try {
        auto now_tables = captured_tables(db);
        stats.pending_rows = total_pending(db, now_tables);
        stats.dead_letters_stored = db.query_int("SELECT count(*) FROM __harmony_dead_letters");
        bool installed = !now_tables.empty();
        for (const auto& t : now_tables) installed = installed && triggers_installed(db, t);
        stats.capture_installed = installed;
        stats.db_ok = true;
      } catch (const std::exception& e) {
        stats.db_ok = false;
        spdlog::warn("database check failed: {}", e.what());
      }
    }
    // HarmonyLite's "pulse": every publish and every received change counts as activity.
    int64_t activity = stats.rows_published + stats.rows_applied + stats.batches_skipped_own +
                       stats.rows_skipped_older + stats.rows_dead_lettered +
                       stats.batches_dead_lettered;
    if (activity != last_count) {
      last_count = activity;
      last_activity = now;
    }
    if (config.sleep_timeout_ms > 0 &&
        now - last_activity > std::chrono::milliseconds(config.sleep_timeout_ms)) {
      spdlog::info("no replication activity for {} ms (sleep_timeout): exiting",
                   config.sleep_timeout_ms);
      // SNAPSHOT HOOK (sleep_timeout): HarmonyLite saves a snapshot here when snapshots and
      // publish are enabled and this node is the snapshot leader, then exits 0. The snapshot
      // code provides this call; until then it does nothing.
      snapshot_before_sleep();
      stop = true;
    }
  }

  // --- shutdown -------------------------------------------------------------------------------
  spdlog::info("stopping: finishing the batch in hand");
  if (publisher) publisher->wake();
  workers.clear();  // joins
  monitor.reset();
  snapshots.reset();
  consumers.clear();
  sources.clear();
  publisher.reset();
  transport.reset();
  try {
    Transaction tx(db);
    meta_set(db, "runtime_pid", int64_t{0});
    tx.commit();
  } catch (const std::exception&) {
  }
  conn.reset();
  if (server) server->stop();
  spdlog::info("stopped");
  return 0;
}

}  // namespace harmony
