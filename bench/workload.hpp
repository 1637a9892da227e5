// Workload pieces of the replication benchmark: a benchmark cluster (real harmonylite processes
// through tests/support/cluster.hpp) in one of two modes, a writer on a node's database file,
// readers that follow a replica, and per-process resource readings.
#pragma once
#include <sys/types.h>

#include <atomic>
#include <memory>
#include <string>
#include <vector>

#include "bench/bench_rows.hpp"
#include "bench/bench_util.hpp"
#include "shared/sqlite_db.hpp"
#include "tests/support/cluster.hpp"

namespace harmony::bench {

// The tables and rows (bench_rows.hpp). Delay is measured at these commit rates (txn/s), each
// into its own table delay_<rate>; 50/s is an application's steady pace, where a missed wake-up
// shows as the publisher's 1 s timer.
constexpr double kDelayRates[] = {50.0, 100.0, 1000.0};

// Ours: this build. Main: another build's harmonylite (scripts/bench.sh --baseline REF builds
// it), run beside ours so both face the same machine load. Naive: this build configured like
// HarmonyLite (optional since issue 18: its ratios are settled, main is the reference now).
enum class Mode { Ours, Main, Naive };
const char* mode_name(Mode m);
// TOML lines that select the mode. Naive = HarmonyLite's structure: one row per published
// batch, published synchronously and waited for, and one apply transaction per row.
std::string mode_config(Mode m);

// Three harmonylite processes on loopback, each with its embedded nats-server, clustered.
class BenchCluster {
 public:
  // `binary`: the harmonylite to run ("" = this build's). `verbose`: debug logging, which
  // carries the per-batch delay trace lines that --trace-delay reads.
  BenchCluster(Mode mode, int replicas, int64_t max_entries, const std::string& binary = "",
               bool verbose = false);
  Mode mode() const { return mode_; }
  test::TestCluster& cluster() { return *cluster_; }
  const std::string& db(int i) const { return cluster_->db(i); }
  // Starts every node (launch), then waits until each replicates and a row written on node 1
  // shows on all (wait_started). Two clusters can be launched before waiting for either.
  void launch() { cluster_->start_all(); }
  void wait_started();
  void stop(int i) { cluster_->stop(i); }
  void restart(int i);
  bool wait_ready(int i, std::chrono::milliseconds timeout) {
    return cluster_->wait_ready(i, timeout);
  }
  pid_t pid(int i) { return cluster_->process(i) ? cluster_->process(i)->pid() : -1; }
  // harmonylite and its nats-server child.
  ProcSample replicator_sample(int i);
  ProcSample nats_sample(int i);

 private:
  Mode mode_;
  std::unique_ptr<test::TestCluster> cluster_;
};

// Writes rows (id, t_us, payload) into one table of a node's database, like an application:
// its own connection, WAL, synchronous=NORMAL, a busy timeout.
class Writer {
 public:
  Writer(const std::string& db_path, const std::string& table);
  // One transaction of `rows` rows with ids first_id, first_id+1, ...
  void write_txn(int64_t first_id, int rows);
  // One autocommit INSERT (a single-row transaction without BEGIN/COMMIT).
  void write_one(int64_t id);

 private:
  void insert(int64_t id);
  Db db_;
  Stmt begin_, commit_, insert_;
};

// Highest id in one table of a node's database (ids are written in increasing order and applied
// in order, so this is how far the node got).
class Progress {
 public:
  Progress(const std::string& db_path, const std::string& table);
  int64_t max_id();

 private:
  Db db_;
  Stmt max_;
};

}  // namespace harmony::bench
