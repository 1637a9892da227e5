// A cluster of real harmonylite processes for integration tests: each node gets a SQLite file
// (with the schema the test gives), a generated TOML config and its own embedded nats-server
// clustered with the others on free loopback ports - or an external NATS URL - and a health
// endpoint on a free loopback port, which tells when the node is ready.
#pragma once
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "tests/support/support.hpp"

namespace harmony {
class Db;
}

namespace harmony::test {

struct ClusterOptions {
  int nodes = 3;
  std::string schema =  // HarmonyLite's e2e schema
      "CREATE TABLE Books (id INTEGER PRIMARY KEY AUTOINCREMENT, title TEXT NOT NULL, author TEXT "
      "NOT NULL, publication_year INTEGER);"
      "CREATE TABLE Authors (id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT NOT NULL, "
      "birth_year INTEGER);";
  int shards = 1;
  int replicas = 1;  // keep R1 unless the test needs failover (faster cluster start)
  int64_t max_entries = 100000;
  std::string external_nats_url;  // set: every node uses it instead of an embedded server
  std::string extra_config;       // appended to every node's TOML (top-level keys first!)
  std::string nats_extra;         // lines added to every node's [nats] table
  std::string log_format = "console";
  bool verbose = false;
  bool dns_peers = false;  // -cluster-peers as dns://localhost:port/ (expanded by harmonylite)
  // Each database in a directory of its own (node-<i>/data.db), as in most deployments: then
  // nothing but the application and the replicator touches that directory, and file events
  // from other nodes' files cannot wake a publisher early.
  bool separate_dirs = false;
  // exec() runs through one connection per node kept open for the cluster's life (busy timeout
  // 5 s, no extension loaded), as applications do, instead of a fresh `sqlite3` shell each time.
  bool app_connections = false;
  // The harmonylite binary to run; empty: this build's (the benchmark runs another build's
  // binary beside it to compare).
  std::string binary;
};

class TestCluster {
 public:
  explicit TestCluster(ClusterOptions options = {});
  ~TestCluster();

  int size() const { return static_cast<int>(nodes_.size()); }
  const std::string& db(int i) const { return nodes_.at(i).db; }
  const std::string& config(int i) const { return nodes_.at(i).config; }
  const std::string& dir() const { return dir_.path(); }
  uint64_t node_id(int i) const { return static_cast<uint64_t>(i) + 1; }

  // `env`: variables added to the process's environment (e.g. a test hook).
  void start(int i, const std::vector<std::string>& extra_flags = {},
             const std::map<std::string, std::string>& env = {});
  void start_all();
  int stop(int i);  // SIGTERM; returns the exit status
  void kill9(int i);
  bool running(int i);
  std::string log(int i) const;
  Process* process(int i) { return nodes_.at(i).process.get(); }
  // Rewrites node i's config with `extra` appended to the top-level keys (e.g. "publish=false").
  void set_node_config(int i, const std::string& top_level_extra);
  // Appends whole TOML tables (e.g. "[health_check]\nenable = true\n") to node i's config.
  // A [health_check] table among them replaces the cluster's own health endpoint of that node.
  void set_node_sections(int i, const std::string& sections);

  // Waits until node i is replicating: its health endpoint answers 200 and lists every stream
  // (each consumer has started). Where the endpoint cannot say so (the test configured its own
  // without details or on an address out of reach, or replicate = false, where no stream is
  // listed), waits for the node's log line "is replicating" instead.
  bool wait_ready(int i, std::chrono::milliseconds timeout = 60s);
  // The port of node i's health endpoint that the cluster configured (0 when the test set its
  // own [health_check]).
  int health_port(int i) const;
  // Waits until every running node has the same content checksum and nothing pending.
  bool wait_converged(std::chrono::milliseconds timeout = 30s);
  std::string checksum(int i) const;
  int64_t pending(int i) const;
  int64_t query_int(int i, const std::string& sql) const;
  std::string query_text(int i, const std::string& sql) const;
  // Runs SQL through the stock sqlite3 shell (a connection that never loaded libharmony).
  void exec(int i, const std::string& sql) const;
  // Dumps logs of every node (for failure messages).
  std::string all_logs() const;

 private:
  struct Node {
    std::string db, config, log;
    int cluster_port = 0;
    int health_port = 0;  // the cluster's health endpoint; 0 when the test configures its own
    std::unique_ptr<Process> process;
    std::string top_level_extra;
    std::string sections;
    // ClusterOptions::app_connections: opened by the first exec() (the test's app, not cluster
    // state, so exec() stays const).
    mutable std::shared_ptr<Db> app;
  };
  void write_config(int i);
  bool logged_ready(int i) const;
  ClusterOptions options_;
  TempDir dir_;
  std::vector<Node> nodes_;
};

// The stored content digest of `table` on node i as text (chunk:hex of every chunk that is not
// all zeros), comparable between nodes whatever their local table ids are.
std::string stored_digest_text(const TestCluster& c, int i, const std::string& table);

// A standalone JetStream nats-server (the [nats] urls mode) on 127.0.0.1:`port`, its store and
// log in `dir`; returns once it is ready (throws after 10 s). Restartable on the same store.
std::unique_ptr<Process> start_external_nats(const TempDir& dir, int port);

}  // namespace harmony::test
