// The replicator cluster a soak run drives: one real harmonylite process per node, each with its
// embedded nats-server clustered with the others, either on loopback ports or (for partitions)
// each inside its own network namespace on 10.77.0.<n>. Owns those processes (and the NetnsLab):
// kill -9 / restart of a replicator, kill -9 / SIGSTOP / SIGCONT of its nats-server child, and
// stopping everything by PID on destruction.
#pragma once
#include <sys/types.h>

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "tests/support/netns.hpp"
#include "tests/support/support.hpp"

namespace harmony::test {

struct SoakClusterOptions {
  int nodes = 3;
  int replicas = 3;
  bool netns = false;                // each node in its own network namespace (partitions)
  std::string schema;                // executed on every node's fresh database
  std::vector<std::string> exclude;  // exclude_tables
  int64_t max_entries = 1000000;
  std::string extra_config;  // top-level TOML keys added to every node's config
  bool verbose = false;
  bool stream_audit = true;                 // [replication_log] stream_audit
  int64_t anti_entropy_interval_ms = 5000;  // [anti_entropy] interval
};

// Counters a node's replicator exports on /metrics, summed over its restarts (each process
// starts from zero): what anti-entropy and the stream audit did and cost.
struct RepairVolumes {
  int64_t rounds = 0, rows_compared = 0, rows_repaired = 0;  // anti-entropy
  int64_t audit_checked = 0, audit_reapplied = 0;            // stream audit
  int64_t leader_reads = 0, leader_bytes = 0;                // ... and its cost
  int64_t samples = 0;                                       // /metrics answers read
  // CPU seconds (user + system) of the node's replicator processes and of their nats-server
  // children, as last sampled from /proc (a process's time after its last sample is not seen).
  double replicator_cpu_s = 0, nats_cpu_s = 0;
};

class SoakCluster {
 public:
  SoakCluster(SoakClusterOptions options, const std::string& dir);
  ~SoakCluster();
  SoakCluster(const SoakCluster&) = delete;
  SoakCluster& operator=(const SoakCluster&) = delete;

  int size() const { return static_cast<int>(nodes_.size()); }
  const std::string& db(int i) const { return node(i).db; }
  const std::string& log_path(int i) const { return node(i).log; }
  uint64_t node_id(int i) const { return static_cast<uint64_t>(i) + 1; }
  bool netns() const { return lab_ != nullptr; }
  std::string netns_name(int i) const { return lab_ ? lab_->ns(i) : std::string(); }

  // `env`: extra environment of the replicator (e.g. HARMONY_TEST_CLOCK_OFFSET_MS).
  void start(int i, const std::map<std::string, std::string>& env = {});
  void start_all();
  // Waits until node i logged "is replicating" since its last start.
  bool wait_ready(int i, std::chrono::milliseconds timeout);
  void kill9(int i);
  int stop(int i);  // SIGTERM, then SIGKILL after 20 s
  void stop_all();
  bool running(int i);
  pid_t pid(int i);  // -1 when not running
  // The nats-server children of node i's replicator (normally one, none while it restarts).
  std::vector<pid_t> nats_pids(int i);
  // Sends `sig` to every nats-server child of node i; returns how many got it.
  int signal_nats(int i, int sig);
  // Partitions (netns only).
  void cut(int i);
  void heal(int i);
  bool is_cut(int i) const;
  // The last `lines` lines of node i's log.
  std::string log_tail(int i, int lines) const;
  // Lines of every node's log containing `needle` (e.g. "error").
  std::vector<std::string> grep_logs(const std::string& needle) const;
  // Reads node i's /metrics now (a no-op when it is not running or does not answer); done
  // before every kill and stop too, so a restart loses at most what the process did since.
  void sample_metrics(int i);
  RepairVolumes repair_volumes(int i) const;

 private:
  struct Node {
    std::string db, config, log, store, cluster_host;
    int cluster_port = 0;
    int metrics_port = 0;  // [prometheus] bind, on the node's own loopback
    std::unique_ptr<Process> process;
    RepairVolumes banked, current;  // finished processes; the running one's last sample
    std::map<pid_t, double> replicator_cpu, nats_cpu;  // CPU seconds by pid, last sample
  };
  // A last sample, then what the process counted is kept: it is about to be killed or stopped.
  void bank_metrics(int i);
  const Node& node(int i) const { return nodes_.at(static_cast<size_t>(i)); }
  Node& node(int i) { return nodes_.at(static_cast<size_t>(i)); }
  SoakClusterOptions options_;
  std::unique_ptr<NetnsLab> lab_;
  std::vector<Node> nodes_;
};

// Direct children of `parent` whose command name is `comm` (from /proc).
std::vector<pid_t> child_pids(pid_t parent, const std::string& comm);

}  // namespace harmony::test
