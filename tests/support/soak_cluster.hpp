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

 private:
  struct Node {
    std::string db, config, log, store, cluster_host;
    int cluster_port = 0;
    std::unique_ptr<Process> process;
  };
  const Node& node(int i) const { return nodes_.at(static_cast<size_t>(i)); }
  Node& node(int i) { return nodes_.at(static_cast<size_t>(i)); }
  SoakClusterOptions options_;
  std::unique_ptr<NetnsLab> lab_;
  std::vector<Node> nodes_;
};

// Direct children of `parent` whose command name is `comm` (from /proc).
std::vector<pid_t> child_pids(pid_t parent, const std::string& comm);

}  // namespace harmony::test
