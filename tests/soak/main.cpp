// build/harmony_soak: command line of the long randomized convergence run (tests/support/soak.hpp).
// Parses the options, turns SIGINT/SIGTERM/SIGHUP into an orderly wind-down (every process
// stopped by PID, every namespace deleted), prints the timeline and the summary table.
// Exit status: 0 pass, 1 loss/divergence/problem, 2 usage, 130 interrupted.
#include <signal.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <iostream>
#include <random>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "tests/support/netns.hpp"
#include "tests/support/soak.hpp"

using namespace harmony::test;

namespace {

std::atomic<bool> g_interrupted{false};

void on_signal(int) {
  g_interrupted = true;
}

const char* kUsage = R"(usage: harmony_soak [options]

Three (or --nodes) real harmonylite processes with embedded nats-server clusters and R3 streams;
application writers on every node; faults injected one at a time; then every node must hold the
same content and no committed write may be lost.

  --duration D            writing phase: seconds, or with a unit: 90s, 20m, 1h (default 60s)
  --seed N                random seed (default: drawn and printed); same seed = same schedule
  --nodes N               nodes (default 3)
  --writers N             writer connections per node (default 2: plain + extension loaded)
  --shell-fraction F      share of transactions run by the sqlite3 shell (default 0.08)
  --think MIN-MAX         pause between a writer's transactions, ms (default 20-200)
  --kill-replicator       fault: kill -9 a replicator, restart it after a random pause
  --kill-nats             fault: kill -9 a nats-server child (its supervisor restarts it)
  --partition             fault: cut a node off the network, then heal (network namespaces; root)
  --nats-down             fault: SIGSTOP every nats-server for --nats-down-seconds, then SIGCONT
  --long-txn              fault: an application holds BEGIN IMMEDIATE for seconds
  --schema-change         fault: a rolling ADD / RENAME / DROP COLUMN or CREATE TABLE, node by
                          node with pauses of --schema-gap while the writers keep writing
  --clock-skew            fault: restart one node's replicator with its clock +5 s, +30 s, +5 min
                          or -5 min off (HARMONY_TEST_CLOCK_OFFSET_MS) for --skew-seconds, then
                          restart it with the clock right
  --all-faults            all of the above
  --faults LIST           these faults, comma-separated: kill-replicator, KillNats, SchemaChange...
  --fault-gap MIN-MAX     seconds between faults (default 5-20)
  --down MIN-MAX          seconds a killed replicator stays down (default 0.5-8)
  --partition-seconds MIN-MAX   (default 5-30)
  --nats-down-seconds N   (default 30)
  --long-txn-seconds MIN-MAX    (default 2-9)
  --schema-gap MIN-MAX    seconds between one node's DDL and the next one's (default 0-10)
  --skew-seconds MIN-MAX  seconds a skewed replicator runs (default 5-30)
  --converge-timeout N    seconds to wait for convergence after the writers stop (default 300)
  --no-stream-audit       every node runs with [replication_log] stream_audit = false: no reads
                          of the stream leader, anti-entropy alone repairs what the streams miss
  --anti-entropy-interval D   [anti_entropy] interval of every node (default 5s)
  --dir PATH              run directory (default: a fresh /tmp/harmony-soak-*, removed on success)
  --keep                  keep the run directory on success too
  --check DIR             only judge the databases of a kept run directory (node-<n>.db)
  --hold-on-failure       after a failed check keep the cluster running until interrupted
  --verbose               replicators log at debug level
  --help
)";

[[noreturn]] void usage_error(const std::string& msg) {
  std::cerr << "harmony_soak: " << msg << "\n\n" << kUsage;
  std::exit(2);
}

double parse_number(const std::string& flag, const std::string& v) {
  try {
    size_t used = 0;
    double d = std::stod(v, &used);
    if (used != v.size() || d < 0) throw std::invalid_argument(v);
    return d;
  } catch (const std::exception&) {
    usage_error(fmt::format("{} needs a non-negative number, got '{}'", flag, v));
  }
}

std::chrono::seconds parse_duration(const std::string& flag, std::string v) {
  double mult = 1;
  if (!v.empty() && (v.back() == 's' || v.back() == 'm' || v.back() == 'h')) {
    mult = v.back() == 'h' ? 3600 : v.back() == 'm' ? 60 : 1;
    v.pop_back();
  }
  return std::chrono::seconds(static_cast<int64_t>(parse_number(flag, v) * mult));
}

std::pair<std::chrono::milliseconds, std::chrono::milliseconds> parse_range(const std::string& flag,
                                                                            const std::string& v,
                                                                            double unit_ms) {
  auto dash = v.find('-');
  std::string lo = dash == std::string::npos ? v : v.substr(0, dash);
  std::string hi = dash == std::string::npos ? v : v.substr(dash + 1);
  auto a = std::chrono::milliseconds(static_cast<int64_t>(parse_number(flag, lo) * unit_ms));
  auto b = std::chrono::milliseconds(static_cast<int64_t>(parse_number(flag, hi) * unit_ms));
  if (b < a) usage_error(fmt::format("{}: {} is not MIN-MAX", flag, v));
  return {a, b};
}

}  // namespace

int main(int argc, char** argv) {
  SoakOptions o;
  std::string check_dir;
  o.seed = std::random_device{}() % 1000000;
  o.out = &std::cout;
  std::vector<std::string> args;  // --flag=value becomes --flag value
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto eq = a.find('=');
    if (a.rfind("--", 0) == 0 && eq != std::string::npos) {
      args.push_back(a.substr(0, eq));
      args.push_back(a.substr(eq + 1));
    } else {
      args.push_back(a);
    }
  }
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string a = args[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= args.size()) usage_error(a + " needs a value");
      return args[++i];
    };
    if (a == "--help" || a == "-h") {
      std::cout << kUsage;
      return 0;
    } else if (a == "--duration") {
      o.duration = parse_duration(a, value());
    } else if (a == "--seed") {
      o.seed = static_cast<uint64_t>(parse_number(a, value()));
    } else if (a == "--nodes") {
      o.nodes = static_cast<int>(parse_number(a, value()));
      if (o.nodes < 2 || o.nodes > 9) usage_error("--nodes must be 2..9");
    } else if (a == "--writers") {
      o.workload.writers_per_node = static_cast<int>(parse_number(a, value()));
      if (o.workload.writers_per_node < 1) usage_error("--writers must be at least 1");
    } else if (a == "--shell-fraction") {
      o.workload.shell_fraction = parse_number(a, value());
    } else if (a == "--think") {
      auto [lo, hi] = parse_range(a, value(), 1);
      o.workload.think_min_ms = static_cast<int>(lo.count());
      o.workload.think_max_ms = static_cast<int>(hi.count());
    } else if (a == "--kill-replicator") {
      o.faults.insert(FaultKind::KillReplicator);
    } else if (a == "--kill-nats") {
      o.faults.insert(FaultKind::KillNats);
    } else if (a == "--partition") {
      o.faults.insert(FaultKind::Partition);
    } else if (a == "--nats-down") {
      o.faults.insert(FaultKind::NatsDown);
    } else if (a == "--long-txn") {
      o.faults.insert(FaultKind::LongTxn);
    } else if (a == "--schema-change") {
      o.faults.insert(FaultKind::SchemaChange);
    } else if (a == "--clock-skew") {
      o.faults.insert(FaultKind::ClockSkew);
    } else if (a == "--faults") {
      std::string list = value();
      for (size_t pos = 0; pos <= list.size();) {
        size_t comma = std::min(list.find(',', pos), list.size());
        std::string name = list.substr(pos, comma - pos);
        auto kind = fault_named(name);
        if (!kind) usage_error("--faults: unknown fault '" + name + "'");
        o.faults.insert(*kind);
        pos = comma + 1;
      }
    } else if (a == "--schema-gap") {
      std::tie(o.schema_gap_min, o.schema_gap_max) = parse_range(a, value(), 1000);
    } else if (a == "--skew-seconds") {
      std::tie(o.skew_min, o.skew_max) = parse_range(a, value(), 1000);
    } else if (a == "--all-faults") {
      for (auto k : all_fault_kinds()) o.faults.insert(k);
    } else if (a == "--fault-gap") {
      std::tie(o.fault_gap_min, o.fault_gap_max) = parse_range(a, value(), 1000);
    } else if (a == "--down") {
      std::tie(o.replicator_down_min, o.replicator_down_max) = parse_range(a, value(), 1000);
    } else if (a == "--partition-seconds") {
      std::tie(o.partition_min, o.partition_max) = parse_range(a, value(), 1000);
    } else if (a == "--nats-down-seconds") {
      o.nats_down =
          std::chrono::milliseconds(static_cast<int64_t>(parse_number(a, value()) * 1000));
    } else if (a == "--long-txn-seconds") {
      std::tie(o.long_txn_min, o.long_txn_max) = parse_range(a, value(), 1000);
    } else if (a == "--converge-timeout") {
      o.converge_timeout = parse_duration(a, value());
    } else if (a == "--no-stream-audit") {
      o.stream_audit = false;
    } else if (a == "--anti-entropy-interval") {
      std::string v = value();
      // Milliseconds allowed ("500ms"); otherwise the units of --duration.
      if (v.size() > 2 && v.compare(v.size() - 2, 2, "ms") == 0)
        o.anti_entropy_interval = std::chrono::milliseconds(
            static_cast<int64_t>(parse_number(a, v.substr(0, v.size() - 2))));
      else
        o.anti_entropy_interval = parse_duration(a, v);
      if (o.anti_entropy_interval.count() <= 0) usage_error(a + " must be more than 0");
    } else if (a == "--dir") {
      o.work_dir = value();
    } else if (a == "--keep") {
      o.keep = true;
    } else if (a == "--check") {
      check_dir = value();
    } else if (a == "--hold-on-failure") {
      o.hold_on_failure = true;
    } else if (a == "--verbose") {
      o.verbose_replicators = true;
    } else {
      usage_error("unknown option " + a);
    }
  }

  if (!check_dir.empty()) {
    // Verdict on a kept run directory (without the in-memory expectations of that run).
    std::vector<SoakNodeState> states;
    for (int i = 1; i <= o.nodes; ++i)
      states.push_back(read_node_state(fmt::format("{}/node-{}.db", check_dir, i)));
    SoakCheckResult r = check_soak(states, {}, {});
    std::cout << fmt::format(
        "keys {} writes {} rows lost {} nodes diverged {} dead letters {} pending {}\n",
        r.keys_checked, r.writes_logged, r.rows_lost, r.nodes_diverged, r.dead_letters, r.pending);
    for (const auto& d : r.divergence) std::cout << "  " << d << "\n";
    for (const auto& v : r.violations)
      std::cout << fmt::format("  node {} {}: {}\n    {}\n", v.node, describe_key(v.key), v.what,
                               v.history);
    return r.ok() ? 0 : 1;
  }

  struct sigaction sa {};
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  for (int sig : {SIGINT, SIGTERM, SIGHUP}) sigaction(sig, &sa, nullptr);
  o.interrupted = [] { return g_interrupted.load(); };

  std::string faults;
  for (auto k : o.faults) faults += std::string(faults.empty() ? "" : " ") + "--" + fault_name(k);
  std::cout << fmt::format(
                   "reproduce: harmony_soak --seed {} --duration {}s --nodes {} --writers {}{}{}{}",
                   o.seed, o.duration.count(), o.nodes, o.workload.writers_per_node,
                   faults.empty() ? "" : " ", faults, o.stream_audit ? "" : " --no-stream-audit")
            << std::endl;
  SoakReport report;
  try {
    report = run_soak(o);
  } catch (const std::exception& e) {
    cleanup_netns_labs();
    std::cerr << "harmony_soak: " << e.what() << "\n";
    return 1;
  }
  cleanup_netns_labs();
  std::cout << "\n" << report.summary() << std::flush;
  if (report.interrupted) return 130;
  return report.passed() ? 0 : 1;
}
