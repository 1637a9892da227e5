// One running replicator node: the database connection, the embedded nats-server, the NATS
// connection, the publisher and consumers with their transports, and the worker threads that
// run them. Members are declared in dependency order and destroyed in reverse, so on every way
// out - a signal, sleep_timeout, or a start-up step that throws while some workers already run -
// the workers are told to stop and joined before anything they use is destroyed.
#pragma once
#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "replicator/common/capture_sync.hpp"
#include "replicator/common/stats.hpp"
#include "replicator/config/config.hpp"
#include "replicator/config/flags.hpp"
#include "replicator/node/instance_lock.hpp"
#include "replicator/node/replicator.hpp"
#include "replicator/snapshot/snapshot.hpp"
#include "replicator/wire/message_auth.hpp"
#include "shared/sqlite_db.hpp"

namespace harmony {

class AntiEntropy;
class Consumer;
class EmbeddedServer;
class JetStreamSource;
class JetStreamTransport;
class NatsConnection;
class OpsEndpoints;
class OpsMonitor;
class Publisher;
class SnapshotScheduler;

// A thread that runs a loop body until `stop`; logs and restarts the body after a pause when it
// throws (a component is never silently lost). Destruction sets `stop` and joins: a worker can
// only be destroyed while its node shuts down, and a join without the signal would wait forever.
class Worker {
 public:
  Worker(std::string name, std::atomic<bool>& stop, std::function<void()> body);
  ~Worker();
  Worker(const Worker&) = delete;
  Worker& operator=(const Worker&) = delete;

 private:
  void run(const std::function<void()>& body);
  std::string name_;
  std::atomic<bool>& stop_;
  std::thread thread_;
};

class Node {
 public:
  // Opens the database (WAL), installs capture, logs what is replicated, starts the health and
  // metrics endpoints, and starts the embedded nats-server when [nats] urls is empty.
  Node(const Config& config, const CliOptions& cli, std::atomic<bool>& stop);
  // Stops and joins the workers, clears the runtime pid, closes NATS, stops the server.
  ~Node();
  Node(const Node&) = delete;
  Node& operator=(const Node&) = delete;

  // Connects, makes sure the streams exist, restores a snapshot when needed and records the
  // runtime pid/URL. Returns false when `stop` interrupted it.
  bool connect();
  // Starts the publisher, the consumers, the snapshot scheduler and the monitor.
  void start_workers(const StartupHooks& hooks);
  // Housekeeping until `stop` (a signal) or sleep_timeout; then stops the workers and, after
  // sleep_timeout, saves a snapshot when snapshots are enabled.
  void run_until_stopped();

 private:
  void prepare_database();
  void log_start_up_state(const SyncReport& report, const std::vector<std::string>& schema_changed);
  void start_embedded_server();
  void start_worker(std::string name, std::function<void()> body, const StartupHooks& hooks);
  void start_anti_entropy(const StartupHooks& hooks);
  void refresh_database_stats();
  void prune_dead_letters_now();
  int64_t dead_lettered() const;
  int64_t replication_activity() const;
  void stop_workers();

  const Config& config_;
  const CliOptions& cli_;
  std::atomic<bool>& stop_;
  // Before everything that touches the database or starts a server, and released last: one
  // replicator per database file.
  InstanceLock lock_;
  ReplicatorStats stats_;
  Db db_;
  uint64_t node_ = 0;
  bool slept_ = false;  // stopped by sleep_timeout
  const TableSelection selection_;
  std::shared_ptr<const ClusterKey> cluster_key_;  // [nats] cluster_key_file, loaded at start
  std::unique_ptr<OpsEndpoints> endpoints_;
  std::unique_ptr<EmbeddedServer> server_;
  std::unique_ptr<NatsConnection> conn_;
  std::string nats_url_;
  std::map<std::string, uint64_t> own_until_;  // per stream, from a start-up restore
  // Moves a restored snapshot from the write-ahead log into the file while the node runs.
  std::unique_ptr<BackgroundCheckpoint> restore_checkpoint_;
  // Used by the workers: everything below is destroyed before the connection and the server.
  std::unique_ptr<JetStreamTransport> transport_;
  std::unique_ptr<Publisher> publisher_;
  std::vector<std::unique_ptr<JetStreamSource>> sources_;
  std::vector<std::unique_ptr<Consumer>> consumers_;
  std::unique_ptr<SnapshotScheduler> snapshots_;
  std::unique_ptr<OpsMonitor> monitor_;
  std::unique_ptr<AntiEntropy> anti_entropy_;  // digests, the responder, rounds (replicator/sync)
  // Last, so destroyed (stopped and joined) first.
  std::vector<std::unique_ptr<Worker>> workers_;
};

}  // namespace harmony
