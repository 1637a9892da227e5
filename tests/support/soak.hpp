// A randomized, seeded convergence run: a SoakCluster of real harmonylite processes, the soak
// Workload writing on every node, faults injected one at a time from a seeded schedule, then
// quiescing, waiting for convergence and the soak_check verdict. Owns the run's directory (kept
// when the run fails or when asked), the fault timeline and the summary table. Used by
// build/harmony_soak (tests/soak/) and by the short [soak] integration test.
#pragma once
#include <chrono>
#include <functional>
#include <map>
#include <optional>
#include <ostream>
#include <set>
#include <string>
#include <vector>

#include "tests/support/soak_check.hpp"
#include "tests/support/soak_cluster.hpp"
#include "tests/support/soak_workload.hpp"

namespace harmony::test {

enum class FaultKind {
  KillReplicator,
  KillNats,
  Partition,
  NatsDown,
  LongTxn,
  SchemaChange,  // a rolling ADD / RENAME / DROP COLUMN or CREATE TABLE, node by node
  ClockSkew,     // one node's replicator restarted with its clock skewed, then without
};
const char* fault_name(FaultKind kind);
const std::vector<FaultKind>& all_fault_kinds();
// By fault_name ("schema-change") or enum name ("SchemaChange"); nullopt when unknown.
std::optional<FaultKind> fault_named(const std::string& name);

struct SoakOptions {
  uint64_t seed = 1;
  int nodes = 3;
  std::chrono::seconds duration{60};  // writing phase; faults happen during it
  WorkloadOptions workload;
  std::set<FaultKind> faults;             // drawn at random, one at a time
  std::vector<FaultKind> fault_sequence;  // instead: exactly these, in this order
  std::chrono::milliseconds fault_gap_min{5000}, fault_gap_max{20000};
  std::chrono::milliseconds replicator_down_min{500}, replicator_down_max{8000};
  std::chrono::milliseconds partition_min{5000}, partition_max{30000};
  std::chrono::milliseconds nats_down{30000};
  std::chrono::milliseconds long_txn_min{2000}, long_txn_max{9000};
  // SchemaChange: the pause between one node's DDL and the next one's.
  std::chrono::milliseconds schema_gap_min{0}, schema_gap_max{10000};
  int max_created_tables = 4;  // CREATE TABLE is drawn until this many exist
  // ClockSkew: how long the skewed replicator runs, and the skews drawn from (ms).
  std::chrono::milliseconds skew_min{5000}, skew_max{30000};
  std::vector<int64_t> skews_ms{5'000, 30'000, 300'000, -300'000};
  std::chrono::seconds converge_timeout{300};
  std::string work_dir;  // "" = a fresh directory under /tmp
  bool keep = false;     // keep the directory even when the run passes
  bool verbose_replicators = false;
  bool hold_on_failure = false;  // keep the cluster running after a failed check until interrupted
  bool stream_audit = true;      // false: [replication_log] stream_audit = false on every node
  // [anti_entropy] interval of every node: well under the convergence wait, so a difference
  // the streams leave is repaired (and measured) within it; the product default is 30 s.
  std::chrono::milliseconds anti_entropy_interval{5000};
  std::function<bool()> interrupted;  // polled; true = wind down now
  std::ostream* out = nullptr;        // timeline and progress lines
};

struct SoakReport {
  SoakOptions options;
  std::string dir;
  bool netns = false;
  bool interrupted = false;
  double run_seconds = 0;
  int64_t transactions = 0, committed = 0, rolled_back = 0, failed = 0, statements = 0;
  int64_t locked = 0, app_errors = 0, shell_runs = 0, extension_txns = 0, plain_txns = 0;
  int64_t long_txns = 0;
  int64_t schema_errors = 0;  // statements that met a rolling schema change (expected)
  std::map<FaultKind, int> faults;
  std::map<std::string, int> schema_changes;  // "ADD COLUMN" ... -> how many rolled
  std::map<int64_t, int> clock_skews;         // offset ms -> how many
  int64_t bad_messages = 0;  // raw garbage published (not injected by this harness)
  bool converged = false;
  double converge_seconds = -1;
  SoakCheckResult check;
  std::vector<std::string> problems;  // harness-level: a node that did not come back...
  std::vector<std::string> app_error_samples;
  std::vector<std::string> schema_error_samples;
  std::vector<std::string> replicator_errors;  // error lines from the replicators' logs
  // Messages a node had read differently from the stream leader's copy and re-applied from it
  // (replicator/receive/stream_audit.hpp), from the replicators' warnings; and how many warnings.
  int64_t repaired_messages = 0, repairs = 0;
  // Per node, from its /metrics (summed over its restarts): anti-entropy and stream audit.
  std::vector<RepairVolumes> repair_volumes;
  bool passed() const;
  std::string summary() const;  // the table
};

SoakReport run_soak(const SoakOptions& options);

}  // namespace harmony::test
