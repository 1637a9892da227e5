// Randomized convergence run (see soak.hpp).
#include "tests/support/soak.hpp"

#include <signal.h>
#include <stdlib.h>

#include <algorithm>
#include <filesystem>
#include <random>
#include <sstream>
#include <thread>

#include <fmt/format.h>

#include "shared/capture.hpp"
#include "shared/clock.hpp"
#include "shared/hlc.hpp"
#include "shared/outbox.hpp"
#include "shared/sqlite_db.hpp"
#include "tests/support/soak_cluster.hpp"
#include "tests/support/support.hpp"

namespace harmony::test {

namespace {

using Clock = std::chrono::steady_clock;
using Rng = std::mt19937_64;

std::chrono::milliseconds between(Rng& rng, std::chrono::milliseconds lo,
                                  std::chrono::milliseconds hi) {
  if (hi <= lo) return lo;
  return std::chrono::milliseconds(
      std::uniform_int_distribution<int64_t>(lo.count(), hi.count())(rng));
}

int64_t pending_of(const std::string& db_path) {
  try {
    Db db = Db::open(db_path, SQLITE_OPEN_READONLY);
    db.set_busy_timeout(2000);
    return total_pending(db, captured_tables(db));
  } catch (const std::exception&) {
    return -1;
  }
}

class Run {
 public:
  Run(const SoakOptions& o, SoakReport& r) : o_(o), r_(r), rng_(o.seed), t0_(Clock::now()) {}

  void say(const std::string& line) {
    if (!o_.out) return;
    double t = std::chrono::duration<double>(Clock::now() - t0_).count();
    *o_.out << fmt::format("[{:7.1f}s] {}", t, line) << std::endl;
  }
  bool interrupted() const { return o_.interrupted && o_.interrupted(); }

  // Sleeps up to `d`, watching for interruption and for replicators that died on their own.
  void pause(std::chrono::milliseconds d) {
    auto until = Clock::now() + d;
    while (Clock::now() < until && !interrupted()) {
      watch_replicators();
      if (Clock::now() >= next_progress_) progress();
      std::this_thread::sleep_for(std::min<std::chrono::milliseconds>(
          std::chrono::duration_cast<std::chrono::milliseconds>(until - Clock::now()) +
              std::chrono::milliseconds(1),
          std::chrono::milliseconds(200)));
    }
  }

  void watch_replicators() {
    for (int i = 0; i < cluster_->size(); ++i) {
      if (expected_down_.count(i) || cluster_->running(i)) continue;
      int status = cluster_->stop(i);  // reaped already: returns its exit status
      r_.problems.push_back(
          fmt::format("node {}: replicator exited on its own (status {}); log tail:\n{}", i + 1,
                      status, cluster_->log_tail(i, 15)));
      say(fmt::format("PROBLEM: node {} replicator exited on its own (status {}); restarting",
                      i + 1, status));
      cluster_->start(i);
      if (!cluster_->wait_ready(i, 120s))
        r_.problems.push_back(fmt::format("node {}: not ready after restart", i + 1));
    }
  }

  void progress() {
    next_progress_ = Clock::now() + 30s;
    for (int i = 0; i < cluster_->size(); ++i) cluster_->sample_metrics(i);
    const auto& c = workload_->counters();
    std::string pend;
    for (int i = 0; i < cluster_->size(); ++i)
      pend += fmt::format(" n{}={}", i + 1, pending_of(cluster_->db(i)));
    say(
        fmt::format("txns {} (committed {}, rolled back {}, failed {}, locked {}, errors {}); "
                    "pending{}",
                    c.transactions.load(), c.committed.load(), c.rolled_back.load(),
                    c.failed.load(), c.locked.load(), c.errors.load(), pend));
  }

  int random_node() {
    return static_cast<int>(std::uniform_int_distribution<int>(0, cluster_->size() - 1)(rng_));
  }

  void inject(FaultKind kind) {
    ++r_.faults[kind];
    switch (kind) {
      case FaultKind::KillReplicator: {
        int n = random_node();
        auto down = between(rng_, o_.replicator_down_min, o_.replicator_down_max);
        say(fmt::format("fault: kill -9 replicator of node {} (pid {}), restart in {} ms", n + 1,
                        cluster_->pid(n), down.count()));
        expected_down_.insert(n);
        cluster_->kill9(n);
        pause(down);
        cluster_->start(n);
        expected_down_.erase(n);
        auto t = Clock::now();
        if (!cluster_->wait_ready(n, 120s)) {
          r_.problems.push_back(
              fmt::format("node {}: replicator not ready within 120 s after "
                          "kill -9; log tail:\n{}",
                          n + 1, cluster_->log_tail(n, 20)));
          say(fmt::format("PROBLEM: node {} not ready after restart", n + 1));
        } else {
          say(fmt::format("node {} replicating again after {:.1f} s", n + 1,
                          std::chrono::duration<double>(Clock::now() - t).count()));
        }
        break;
      }
      case FaultKind::KillNats: {
        int n = random_node();
        auto pids = cluster_->nats_pids(n);
        if (pids.empty()) {
          say(fmt::format("fault: node {} has no nats-server child right now; skipped", n + 1));
          --r_.faults[kind];
          break;
        }
        say(fmt::format("fault: kill -9 nats-server of node {} (pid {})", n + 1, pids.front()));
        ::kill(pids.front(), SIGKILL);
        bool back = wait_until(
            [&] {
              auto now = cluster_->nats_pids(n);
              return !now.empty() && now.front() != pids.front();
            },
            60s, 100ms);
        if (!back) {
          r_.problems.push_back(fmt::format(
              "node {}: nats-server not restarted within 60 s by its supervisor", n + 1));
          say(fmt::format("PROBLEM: node {} nats-server not restarted", n + 1));
        } else {
          say(fmt::format("node {} nats-server restarted (pid {})", n + 1,
                          cluster_->nats_pids(n).front()));
        }
        break;
      }
      case FaultKind::Partition: {
        int n = random_node();
        auto hold = between(rng_, o_.partition_min, o_.partition_max);
        say(fmt::format("fault: cut node {} off the network for {} ms", n + 1, hold.count()));
        cluster_->cut(n);
        pause(hold);
        cluster_->heal(n);
        say(fmt::format("node {} reconnected", n + 1));
        break;
      }
      case FaultKind::NatsDown: {
        say(fmt::format("fault: every nats-server stopped (SIGSTOP) for {} ms",
                        o_.nats_down.count()));
        struct Resume {
          SoakCluster& c;
          ~Resume() {
            for (int i = 0; i < c.size(); ++i) c.signal_nats(i, SIGCONT);
          }
        } resume{*cluster_};
        int stopped = 0;
        for (int i = 0; i < cluster_->size(); ++i) stopped += cluster_->signal_nats(i, SIGSTOP);
        if (stopped != cluster_->size())
          say(fmt::format("note: {} of {} nats-servers stopped (one was restarting)", stopped,
                          cluster_->size()));
        pause(o_.nats_down);
        say("every nats-server resumed (SIGCONT)");
        break;
      }
      case FaultKind::SchemaChange:
        schema_change();
        break;
      case FaultKind::ClockSkew:
        clock_skew();
        break;
      case FaultKind::LongTxn: {
        int n = random_node();
        auto hold = between(rng_, o_.long_txn_min, o_.long_txn_max);
        bool commit = std::uniform_int_distribution<int>(0, 4)(rng_) != 0;
        say(fmt::format("fault: application holds a write transaction on node {} for {} ms ({})",
                        n + 1, hold.count(), commit ? "commit" : "rollback"));
        workload_->long_transaction(n, hold, rng_(), commit);
        break;
      }
    }
  }

  // A rolling schema change while the writers keep writing: one DDL, node after node in a random
  // order with random pauses, each applied as a user would (sqlite3 shell, or an application
  // connection with or without the extension loaded). Only columns the soak added are renamed
  // or dropped (never a key or wid: the writers' base statements stay valid), and names are
  // never reused, so a value always belongs to one logical column.
  void schema_change() {
    std::vector<std::string> kinds = {"ADD COLUMN"};
    std::vector<std::string> with_added;
    for (const auto& [t, cols] : added_)
      if (!cols.empty()) with_added.push_back(t);
    if (!with_added.empty()) kinds.insert(kinds.end(), {"RENAME COLUMN", "DROP COLUMN"});
    if (created_ < o_.max_created_tables) kinds.push_back("CREATE TABLE");
    const std::string what = pick(kinds);
    std::string ddl, table;
    std::function<void()> done;
    int rows_first = 0;
    if (what == "ADD COLUMN") {
      table = pick(tables_);
      std::string col = fmt::format("x{}", next_column_++);
      static const std::vector<std::string> defaults = {"0",       "42",   "'d'",
                                                        "X'00FF'", "-1.5", "NULL"};
      ddl = fmt::format("ALTER TABLE {} ADD COLUMN {} DEFAULT {}", table, col, pick(defaults));
      done = [this, table, col] { added_[table].push_back(col); };
    } else if (what == "RENAME COLUMN" || what == "DROP COLUMN") {
      table = pick(with_added);
      std::string col = pick(added_[table]);
      if (what == "RENAME COLUMN") {
        std::string to = fmt::format("{}_r{}", logical_column(col), next_rename_++);
        ddl = fmt::format("ALTER TABLE {} RENAME COLUMN {} TO {}", table, col, to);
        done = [this, table, col, to] {
          std::replace(added_[table].begin(), added_[table].end(), col, to);
        };
      } else {
        ddl = fmt::format("ALTER TABLE {} DROP COLUMN {}", table, col);
        done = [this, table, col] { std::erase(added_[table], col); };
      }
    } else {
      table = fmt::format("t{}", next_table_++);
      add_soak_table(created_soak_table(table));  // before the first node has it
      ddl = created_table_ddl(table);
      rows_first = std::uniform_int_distribution<int>(1, 5)(rng_);
      done = [this, table] {
        tables_.push_back(table);
        ++created_;
      };
    }
    std::vector<int> order(static_cast<size_t>(cluster_->size()));
    for (int i = 0; i < cluster_->size(); ++i) order[static_cast<size_t>(i)] = i;
    std::shuffle(order.begin(), order.end(), rng_);
    std::string order_text;
    for (int n : order) order_text += fmt::format(" {}", n + 1);
    say(fmt::format(
        "fault: schema change `{}` rolling over nodes{}{}", ddl, order_text,
        rows_first ? fmt::format(" ({} rows right after it on the first)", rows_first) : ""));
    for (size_t k = 0; k < order.size(); ++k) {
      const int n = order[k];
      auto via = static_cast<Workload::DdlVia>(std::uniform_int_distribution<int>(0, 2)(rng_));
      std::string error;
      // A writer or the replicator may hold the write lock past the busy timeout: try again.
      for (int attempt = 0; attempt < 5; ++attempt) {
        error = workload_->run_ddl(n, ddl, via, table, k == 0 ? rows_first : 0, rng_());
        if (error.find("database is locked") == std::string::npos) break;
      }
      if (!error.empty()) {
        r_.problems.push_back(
            fmt::format("node {}: schema change `{}` failed: {}", n + 1, ddl, error));
        say(fmt::format("PROBLEM: node {}: `{}` failed: {}", n + 1, ddl, error));
      } else {
        say(fmt::format("node {}: `{}` applied ({})", n + 1, ddl, Workload::ddl_via_name(via)));
      }
      if (k + 1 < order.size()) pause(between(rng_, o_.schema_gap_min, o_.schema_gap_max));
    }
    done();
    ++r_.schema_changes[what];
  }

  // One node's replicator restarted with HARMONY_TEST_CLOCK_OFFSET_MS (shared/clock.hpp) for a
  // while, then restarted without it. What this models: a host whose clock is off, as the
  // replicator sees it - the versions it issues, the rows of others it holds as implausible (a
  // node behind holds everyone's rows), the rows of its own that the others hold (a node more
  // than the drift bound ahead), and its stored clock lowered after the fix. What it does not:
  // the applications' clock (the capture triggers log the host's real time, which folding caps
  // at the replicator's clock), nats-server's own timestamps, and timers, which are monotonic.
  void clock_skew() {
    const int n = random_node();
    const auto hold = between(rng_, o_.skew_min, o_.skew_max);
    // A node ahead beyond the drift bound has its rows held by the others until their clocks
    // reach (version - bound): up to (skew - bound) after the skew ends. Such a skew is drawn only
    // when that wait ends before the writers stop, so the run's verdict sees the rows released.
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline_ - Clock::now());
    std::vector<int64_t> choices;
    for (int64_t s : o_.skews_ms)
      if (s <= kDefaultMaxClockDriftMs ||
          left >= hold + std::chrono::milliseconds(s - kDefaultMaxClockDriftMs) + 30s)
        choices.push_back(s);
    if (choices.empty()) {
      say("fault: clock skew skipped (no skew fits in the time left)");
      --r_.faults[FaultKind::ClockSkew];
      return;
    }
    const int64_t skew = pick(choices);
    say(fmt::format("fault: node {}'s replicator restarted with its clock {:+} s off for {} ms",
                    n + 1, skew / 1000, hold.count()));
    // Writes committed shortly before may still be folded by the skewed replicator.
    const int64_t from_ms = wall_clock_ms() - 30'000;
    restart(n, {{"HARMONY_TEST_CLOCK_OFFSET_MS", std::to_string(skew)}}, "with a skewed clock");
    pause(hold);
    restart(n, {}, "with its clock right");
    if (skew < 0)  // writes up to the restart were versioned by the slow clock
      slow_clocks_.push_back({n + 1, from_ms, wall_clock_ms() + 5'000, skew});
    if (skew > kDefaultMaxClockDriftMs)
      release_after_ = std::max(
          release_after_, Clock::now() + std::chrono::milliseconds(skew - kDefaultMaxClockDriftMs));
    ++r_.clock_skews[skew];
  }

  void restart(int n, const std::map<std::string, std::string>& env, const std::string& how) {
    expected_down_.insert(n);
    int rc = cluster_->stop(n);
    if (rc != 0) say(fmt::format("note: node {} replicator stopped with status {}", n + 1, rc));
    cluster_->start(n, env);
    expected_down_.erase(n);
    auto t = Clock::now();
    if (!cluster_->wait_ready(n, 120s)) {
      r_.problems.push_back(
          fmt::format("node {}: replicator not ready within 120 s after a "
                      "restart {}; log tail:\n{}",
                      n + 1, how, cluster_->log_tail(n, 20)));
      say(fmt::format("PROBLEM: node {} not ready after restart {}", n + 1, how));
    } else {
      say(fmt::format("node {} replicating {} after {:.1f} s", n + 1, how,
                      std::chrono::duration<double>(Clock::now() - t).count()));
    }
  }

  template <typename T>
  const T& pick(const std::vector<T>& v) {
    return v[std::uniform_int_distribution<size_t>(0, v.size() - 1)(rng_)];
  }

  void execute() {
    reset_soak_tables();
    r_.netns = o_.faults.count(FaultKind::Partition) > 0;
    for (auto k : o_.fault_sequence) r_.netns = r_.netns || k == FaultKind::Partition;
    if (r_.netns) {
      std::string why;
      if (!NetnsLab::available(&why)) throw std::runtime_error("partitions: " + why);
    }
    SoakClusterOptions co;
    co.nodes = o_.nodes;
    co.replicas = std::min(3, o_.nodes);
    co.netns = r_.netns;
    co.schema = soak_schema();
    co.exclude = {kSoakLogTable};
    co.verbose = o_.verbose_replicators;
    co.stream_audit = o_.stream_audit;
    co.anti_entropy_interval_ms = o_.anti_entropy_interval.count();
    say(fmt::format("seed {}: {} nodes ({}), {} writers per node, {} s, directory {}", o_.seed,
                    o_.nodes, r_.netns ? "network namespaces" : "loopback",
                    o_.workload.writers_per_node, o_.duration.count(), r_.dir));
    cluster_ = std::make_unique<SoakCluster>(co, r_.dir);
    cluster_->start_all();
    for (int i = 0; i < cluster_->size(); ++i)
      if (!cluster_->wait_ready(i, 180s)) {
        r_.problems.push_back(fmt::format("node {}: not ready at start; log tail:\n{}", i + 1,
                                          cluster_->log_tail(i, 20)));
        return;
      }
    say("every node is replicating; writers start");

    std::filesystem::create_directories(r_.dir + "/scratch");
    WorkloadOptions wo = o_.workload;
    wo.nodes = o_.nodes;
    wo.schema_changes =
        o_.faults.count(FaultKind::SchemaChange) > 0 ||
        std::count(o_.fault_sequence.begin(), o_.fault_sequence.end(), FaultKind::SchemaChange) > 0;
    std::vector<std::string> dbs;
    for (int i = 0; i < cluster_->size(); ++i) dbs.push_back(cluster_->db(i));
    workload_ = std::make_unique<Workload>(wo, o_.seed, dbs, r_.dir + "/scratch");
    workload_->start();
    next_progress_ = Clock::now() + 30s;

    const auto deadline = Clock::now() + o_.duration;
    deadline_ = deadline;
    std::vector<FaultKind> kinds(o_.faults.begin(), o_.faults.end());
    size_t next_in_sequence = 0;
    while (Clock::now() < deadline && !interrupted()) {
      auto gap = between(rng_, o_.fault_gap_min, o_.fault_gap_max);
      pause(std::min<std::chrono::milliseconds>(
          gap, std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now())));
      if (Clock::now() + 1s >= deadline || interrupted()) break;
      if (!o_.fault_sequence.empty()) {
        if (next_in_sequence < o_.fault_sequence.size())
          inject(o_.fault_sequence[next_in_sequence++]);
      } else if (!kinds.empty()) {
        inject(kinds[std::uniform_int_distribution<size_t>(0, kinds.size() - 1)(rng_)]);
      }
    }
    // Faults drawn but never reached (a short run): not counted, the schedule just ends.
    say("writers stop; healing everything");
    workload_->stop();
    progress();
    for (int i = 0; i < cluster_->size(); ++i) {
      cluster_->signal_nats(i, SIGCONT);
      if (cluster_->is_cut(i)) cluster_->heal(i);
    }
    watch_replicators();
    if (interrupted()) {
      r_.interrupted = true;
      return;
    }

    auto started = Clock::now();
    // Rows of a node that ran ahead beyond the drift bound are held until plausible: allow for it.
    const auto converge_deadline =
        std::max(started + o_.converge_timeout, release_after_ + o_.converge_timeout);
    std::vector<std::string> last(static_cast<size_t>(cluster_->size()));
    bool stable_once = false;
    double first_equal = -1;
    while (Clock::now() < converge_deadline && !interrupted()) {
      watch_replicators();
      bool equal = true;
      int64_t pending_total = 0;
      for (int i = 0; i < cluster_->size(); ++i) {
        int64_t pending = 0;
        try {
          last[static_cast<size_t>(i)] = convergence_fingerprint(cluster_->db(i), &pending);
        } catch (const std::exception& e) {
          last[static_cast<size_t>(i)] = std::string("error: ") + e.what();
        }
        pending_total += pending;
        equal = equal && last[static_cast<size_t>(i)] == last[0];
      }
      equal = equal && pending_total == 0;
      if (equal) {
        if (first_equal < 0)
          first_equal = std::chrono::duration<double>(Clock::now() - started).count();
        if (stable_once) {
          r_.converged = true;
          break;
        }
        stable_once = true;
        std::this_thread::sleep_for(1s);  // equal twice in a row, a second apart
        continue;
      }
      stable_once = false;
      first_equal = -1;
      std::this_thread::sleep_for(250ms);
    }
    if (interrupted()) {
      r_.interrupted = true;
      return;
    }
    r_.converge_seconds =
        r_.converged ? first_equal : std::chrono::duration<double>(Clock::now() - started).count();
    say(r_.converged
            ? fmt::format("converged {:.1f} s after the writers stopped", r_.converge_seconds)
            : fmt::format("NOT converged after {:.0f} s", r_.converge_seconds));

    for (int i = 0; i < cluster_->size(); ++i) {
      cluster_->sample_metrics(i);
      r_.repair_volumes.push_back(cluster_->repair_volumes(i));
    }
    std::vector<SoakNodeState> states;
    for (int i = 0; i < cluster_->size(); ++i) states.push_back(read_node_state(cluster_->db(i)));
    r_.check = check_soak(states, workload_->expected(), workload_->not_committed(), slow_clocks_);
    if (o_.hold_on_failure && !(r_.converged && r_.check.ok())) {
      for (int i = 0; i < cluster_->size(); ++i)
        say(fmt::format("holding for inspection: node {} pid {} db {}{}", i + 1, cluster_->pid(i),
                        cluster_->db(i),
                        cluster_->netns() ? " netns " + cluster_->netns_name(i) : std::string()));
      say("interrupt (Ctrl-C / SIGTERM) to tear down");
      while (!interrupted()) std::this_thread::sleep_for(200ms);
    }
    // Lines logged at level error or critical ("<time> <level> node=<n> <message>").
    for (const auto& line : cluster_->grep_logs(" ")) {
      auto first = line.find(' ', line.find(": ") + 2);
      if (first == std::string::npos) continue;
      auto level = line.substr(first + 1, line.find(' ', first + 1) - first - 1);
      if ((level == "error" || level == "critical") && r_.replicator_errors.size() < 30)
        r_.replicator_errors.push_back(line);
      // "<stream>: <n> message(s) this node read differ from the stream leader's copy ..."
      if (auto at = line.find(" message(s) this node read differ"); at != std::string::npos) {
        auto start = line.rfind(' ', at - 1);
        try {
          r_.repaired_messages += std::stoll(line.substr(start + 1, at - start - 1));
          ++r_.repairs;
        } catch (const std::exception&) {
        }
      }
    }
  }

  void finish() {
    if (workload_) {
      workload_->stop();
      const auto& c = workload_->counters();
      r_.transactions = c.transactions;
      r_.committed = c.committed;
      r_.rolled_back = c.rolled_back;
      r_.failed = c.failed;
      r_.statements = c.statements;
      r_.locked = c.locked;
      r_.app_errors = c.errors;
      r_.shell_runs = c.shell_runs;
      r_.extension_txns = c.extension_txns;
      r_.plain_txns = c.plain_txns;
      r_.long_txns = c.long_txns;
      r_.schema_errors = c.schema_errors;
      r_.app_error_samples = workload_->error_samples();
      r_.schema_error_samples = workload_->schema_error_samples();
    }
    workload_.reset();
    cluster_.reset();  // stops every process, then deletes the namespaces
  }

 private:
  const SoakOptions& o_;
  SoakReport& r_;
  Rng rng_;
  Clock::time_point t0_;
  Clock::time_point next_progress_;
  std::unique_ptr<SoakCluster> cluster_;
  std::unique_ptr<Workload> workload_;
  std::set<int> expected_down_;
  Clock::time_point deadline_;       // end of the writing phase
  Clock::time_point release_after_;  // rows held for a clock ahead are plausible by then
  std::vector<SlowClockWindow> slow_clocks_;
  // SchemaChange state: the replicated tables, the added columns by their current names.
  std::vector<std::string> tables_ = {"kv", "docs", "pairs"};
  std::map<std::string, std::vector<std::string>> added_;
  int next_column_ = 1, next_rename_ = 1, next_table_ = 1, created_ = 0;
};

}  // namespace

const char* fault_name(FaultKind kind) {
  switch (kind) {
    case FaultKind::KillReplicator:
      return "kill-replicator";
    case FaultKind::KillNats:
      return "kill-nats";
    case FaultKind::Partition:
      return "partition";
    case FaultKind::NatsDown:
      return "nats-down";
    case FaultKind::LongTxn:
      return "long-txn";
    case FaultKind::SchemaChange:
      return "schema-change";
    case FaultKind::ClockSkew:
      return "clock-skew";
  }
  return "?";
}

std::optional<FaultKind> fault_named(const std::string& name) {
  static const std::map<std::string, FaultKind> enum_names = {
      {"KillReplicator", FaultKind::KillReplicator},
      {"KillNats", FaultKind::KillNats},
      {"Partition", FaultKind::Partition},
      {"NatsDown", FaultKind::NatsDown},
      {"LongTxn", FaultKind::LongTxn},
      {"SchemaChange", FaultKind::SchemaChange},
      {"ClockSkew", FaultKind::ClockSkew}};
  if (auto it = enum_names.find(name); it != enum_names.end()) return it->second;
  for (auto k : all_fault_kinds())
    if (name == fault_name(k)) return k;
  return std::nullopt;
}

const std::vector<FaultKind>& all_fault_kinds() {
  static const std::vector<FaultKind> v = {
      FaultKind::KillReplicator, FaultKind::KillNats,     FaultKind::Partition, FaultKind::NatsDown,
      FaultKind::LongTxn,        FaultKind::SchemaChange, FaultKind::ClockSkew};
  return v;
}

bool SoakReport::passed() const {
  return !interrupted && converged && check.ok() && problems.empty() && app_errors == 0;
}

SoakReport run_soak(const SoakOptions& options) {
  SoakReport report;
  report.options = options;
  bool own_dir = options.work_dir.empty();
  if (own_dir) {
    char tmpl[] = "/tmp/harmony-soak-XXXXXX";
    if (!mkdtemp(tmpl)) throw std::runtime_error("mkdtemp failed");
    report.dir = tmpl;
  } else {
    report.dir = options.work_dir;
    std::filesystem::create_directories(report.dir);
  }
  auto t0 = Clock::now();
  {
    Run run(options, report);
    try {
      run.execute();
    } catch (const std::exception& e) {
      report.problems.push_back(std::string("harness error: ") + e.what());
      run.say(std::string("harness error: ") + e.what());
    }
    run.finish();
  }
  report.run_seconds = std::chrono::duration<double>(Clock::now() - t0).count();
  if (own_dir && report.passed() && !options.keep) {
    std::error_code ec;
    std::filesystem::remove_all(report.dir, ec);
  }
  return report;
}

std::string SoakReport::summary() const {
  std::ostringstream s;
  auto row = [&](const std::string& k, const std::string& v) {
    s << fmt::format("  {:<38} {}\n", k, v);
  };
  s << fmt::format(
      "harmony_soak summary: seed {}, {} nodes ({}), {} writers per node, {} s of "
      "writes, {:.0f} s in all\n",
      options.seed, options.nodes, netns ? "network namespaces" : "loopback",
      options.workload.writers_per_node, options.duration.count(), run_seconds);
  row("operations (committed writes, per key)", std::to_string(check.writes_logged));
  row("transactions", fmt::format("{} ({} committed, {} rolled back on purpose, {} failed)",
                                  transactions, committed, rolled_back, failed));
  row("  by kind", fmt::format("{} plain connection, {} extension loaded, {} sqlite3 shell, {} "
                               "long",
                               plain_txns, extension_txns, shell_runs, long_txns));
  row("statements", std::to_string(statements));
  row("\"database is locked\" (apps, counted)", std::to_string(locked));
  row("other application errors", std::to_string(app_errors));
  std::string faults_line;
  int total = 0;
  for (auto k : all_fault_kinds()) {
    auto it = faults.find(k);
    int n = it == faults.end() ? 0 : it->second;
    total += n;
    faults_line += fmt::format("{}{} {}", faults_line.empty() ? "" : ", ", fault_name(k), n);
  }
  row("faults injected", fmt::format("{} ({})", total, faults_line));
  if (!schema_changes.empty()) {
    std::string kinds;
    for (const auto& [k, n] : schema_changes)
      kinds += fmt::format("{}{} {}", kinds.empty() ? "" : ", ", k, n);
    row("  schema changes rolled", kinds);
  }
  if (!clock_skews.empty()) {
    std::string skews;
    for (const auto& [ms, n] : clock_skews)
      skews += fmt::format("{}{:+} s x{}", skews.empty() ? "" : ", ", ms / 1000, n);
    row("  clock skews", skews);
  }
  row("statements meeting a rolling schema",
      fmt::format("{} (expected; regenerated)", schema_errors));
  row("bad messages sent", fmt::format("{} (not injected by this harness)", bad_messages));
  row("keys checked", std::to_string(check.keys_checked));
  row("rows lost", std::to_string(check.rows_lost));
  row("deletes pruned (tombstone GC)", std::to_string(check.pruned_deletes));
  row("nodes diverged", std::to_string(check.nodes_diverged));
  row("dead letters", std::to_string(check.dead_letters));
  row("messages re-applied from stream leader",
      fmt::format("{} (in {} repairs of diverged stream replicas)", repaired_messages, repairs));
  row("stream audit", options.stream_audit ? "on" : "off ([replication_log] stream_audit = false)");
  row("anti-entropy interval", fmt::format("{} ms", options.anti_entropy_interval.count()));
  for (size_t i = 0; i < repair_volumes.size(); ++i) {
    const RepairVolumes& v = repair_volumes[i];
    row(fmt::format("repairs, node {}", i + 1),
        fmt::format("anti-entropy {} rounds, {} rows compared, {} repaired; audit {} checked, {} "
                    "re-applied, {} leader reads, {:.1f} MB ({} samples); CPU replicator {:.0f} s, "
                    "nats-server {:.0f} s",
                    v.rounds, v.rows_compared, v.rows_repaired, v.audit_checked, v.audit_reapplied,
                    v.leader_reads, static_cast<double>(v.leader_bytes) / 1e6, v.samples,
                    v.replicator_cpu_s, v.nats_cpu_s));
  }
  row("pending after convergence", std::to_string(check.pending));
  row("held rows after convergence", std::to_string(check.held));
  row("time to converge", converged ? fmt::format("{:.1f} s", converge_seconds)
                                    : (interrupted ? std::string("interrupted")
                                                   : fmt::format("did not converge within {:.0f} s",
                                                                 converge_seconds)));
  row("harness problems", std::to_string(problems.size()));
  row("result", passed() ? "PASS" : "FAIL");
  if (!check.divergence.empty()) {
    s << "\ndivergence:\n";
    for (const auto& d : check.divergence) s << "  " << d << "\n";
  }
  if (!check.violations.empty()) {
    s << fmt::format("\nviolations ({}; first 20):\n", check.violations.size());
    for (size_t i = 0; i < check.violations.size() && i < 20; ++i) {
      const auto& v = check.violations[i];
      s << fmt::format("  node {} {}: {}\n    {}\n", v.node, describe_key(v.key), v.what,
                       v.history);
    }
  }
  if (!problems.empty()) {
    s << "\nproblems:\n";
    for (const auto& p : problems) s << "  " << p << "\n";
  }
  if (!schema_error_samples.empty()) {
    s << "\nstatements that met a rolling schema change (samples, expected):\n";
    for (const auto& e : schema_error_samples) s << "  " << e.substr(0, 200) << "\n";
  }
  if (!app_error_samples.empty()) {
    s << "\napplication errors (samples):\n";
    for (const auto& e : app_error_samples) s << "  " << e << "\n";
  }
  if (!replicator_errors.empty()) {
    s << "\nerror lines in replicator logs (first 30; expected ones appear during faults):\n";
    for (const auto& e : replicator_errors) s << "  " << e.substr(0, 300) << "\n";
  }
  if (!passed()) s << "\nrun directory kept: " << dir << "\n";
  return s.str();
}

}  // namespace harmony::test
