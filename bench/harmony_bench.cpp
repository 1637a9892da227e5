// harmony_bench: the whole benchmark of issues 8 and 18 in one run, on local three-node loopback
// clusters of real harmonylite processes (each with its embedded nats-server):
//   (1) capture overhead        capture_bench (run as a child, its JSON included)
//   (2) replication throughput  1,000-row and 1-row transactions, sustained
//   (3) replication delay       commit on node 1 -> visible on node 2 at 50, 100 and 1,000
//                               txn/s; long-lived writer and reader connections, each database
//                               in a directory of its own (as applications run)
//   (4) catch-up                node 3 restarted after 1,000,000 rows changed
//   (5) snapshot                -save-snapshot and restore at start-up of a 1 GB database
//   (6) resources               RSS and CPU of each replicator during (2)
//   (7) write-lock duty cycle   the stock sqlite3 shell writing on node 2 while node 1 produces
//                               5,000 replicated rows/s: % of shell writes "database is locked"
// Side by side: with --baseline-bin PATH a second cluster runs another build's harmonylite
// ("main": scripts/bench.sh --baseline REF builds it) and each scenario measures ours, then
// main, back to back, so the ratio compares like with like on this shared machine. --naive adds
// the same binary configured like HarmonyLite (scan_max_changes = 1, apply_batch_rows = 1); it
// is off by default since issue 18: its ratios (25x-900x) are settled and it costs minutes.
// Output: a table on stdout and in OUT/table.txt, OUT/results.json, OUT/delay.png and
// OUT/throughput.png.
//   harmony_bench [--quick] [--out DIR] [--skip-capture] [--skip-snapshot] [--baseline-bin PATH]
//                 [--naive] [--seconds S] [--catchup-rows N] [--snapshot-mb N] [--replicas N]
//                 [--shell-seconds S] [--steps 2,3,4,7] [--main-first] [--strict]
//                 [--trace-delay]
// --quick: tiny sizes (the ctest smoke run). --strict: exit 1 when a target is missed.
// --trace-delay: the clusters log at debug level and (3) adds each leg of a row's way (commit,
// watcher wake, collect, publish, ack, receive, apply, reader) from the replicators' trace lines
// (a build without them reports no rows per leg).
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <string>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "bench/bench_util.hpp"
#include "bench/report.hpp"
#include "bench/scenarios.hpp"
#include "bench/workload.hpp"
#include "tests/support/support.hpp"

using namespace harmony;
using namespace harmony::bench;
using json = nlohmann::json;

namespace {

struct Options {
  bool quick = false, strict = false, skip_capture = false, skip_snapshot = false;
  bool naive = false;
  bool trace_delay = false;  // (3) with the replicators' per-batch timeline (debug logging)
  std::string baseline_bin;  // another build's harmonylite, measured as "main"
  std::string out_dir;
  double shell_seconds = 10;
  std::string steps = "2,3,4,7";  // which of the cluster steps run ((6) comes with (2))
  bool main_first = false;        // measure main before ours in each step (order bias check)
  double tp_seconds = 30;
  double delay_seconds = 20;
  int64_t catchup_rows = 1'000'000;
  int64_t naive_catchup_rows = 50'000;
  int64_t snapshot_mb = 1024;
  int replicas = 1;
};

int usage(const char* argv0) {
  std::fprintf(stderr,
               "usage: %s [--quick] [--out DIR] [--skip-capture] [--skip-snapshot] "
               "[--baseline-bin PATH] [--naive] [--only ours] [--seconds S] [--catchup-rows N] "
               "[--snapshot-mb N] [--replicas N] [--shell-seconds S] [--steps 2,3,4,7] "
               "[--main-first] [--strict] [--trace-delay]\n",
               argv0);
  return 2;
}

std::string now_text(const char* format) {
  std::time_t t = std::time(nullptr);
  char buf[64];
  std::strftime(buf, sizeof buf, format, std::localtime(&t));
  return buf;
}

void progress(const std::string& what) {
  std::fprintf(stderr, "[%s] %s\n", now_text("%H:%M:%S").c_str(), what.c_str());
}

json run_capture(const Options& o, const std::string& work) {
  std::vector<std::string> argv = {test::build_dir() + "/capture_bench", "--json",
                                   work + "/capture.json", "--dir", work + "/capture"};
  if (o.quick) argv.push_back("--quick");
  auto r = test::run_command(argv, std::chrono::hours(1));
  std::fputs(r.output.c_str(), stdout);
  std::fflush(stdout);
  if (r.exit_code != 0) return {{"error", r.output}};
  return json::parse(test::read_file(work + "/capture.json"));
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto next = [&]() -> std::string { return i + 1 < argc ? argv[++i] : ""; };
    if (a == "--quick") {
      o.quick = true;
    } else if (a == "--strict") {
      o.strict = true;
    } else if (a == "--skip-capture") {
      o.skip_capture = true;
    } else if (a == "--skip-snapshot") {
      o.skip_snapshot = true;
    } else if (a == "--only" && next() == "ours") {
      o.naive = false;
      o.baseline_bin.clear();
    } else if (a == "--steps") {
      o.steps = next();
    } else if (a == "--main-first") {
      o.main_first = true;
    } else if (a == "--trace-delay") {
      o.trace_delay = true;
    } else if (a == "--naive") {
      o.naive = true;
    } else if (a == "--baseline-bin") {
      o.baseline_bin = next();
    } else if (a == "--shell-seconds") {
      o.shell_seconds = std::atof(next().c_str());
    } else if (a == "--out") {
      o.out_dir = next();
    } else if (a == "--seconds") {
      o.tp_seconds = std::atof(next().c_str());
      o.delay_seconds = o.tp_seconds * 2 / 3;
    } else if (a == "--catchup-rows") {
      o.catchup_rows = std::atoll(next().c_str());
      o.naive_catchup_rows = std::max<int64_t>(1000, o.catchup_rows / 20);
    } else if (a == "--snapshot-mb") {
      o.snapshot_mb = std::atoll(next().c_str());
    } else if (a == "--replicas") {
      o.replicas = std::atoi(next().c_str());
    } else {
      return usage(argv[0]);
    }
  }
  if (o.quick) {
    o.tp_seconds = 1.5;
    o.delay_seconds = 0.6;
    o.catchup_rows = 10'000;
    o.naive_catchup_rows = 500;
    o.snapshot_mb = 4;
    o.shell_seconds = 1;
  }
  if (o.tp_seconds <= 0 || o.catchup_rows < 1000 || o.snapshot_mb < 1 || o.replicas < 1 ||
      o.shell_seconds <= 0)
    return usage(argv[0]);
  if (!o.baseline_bin.empty() && access(o.baseline_bin.c_str(), X_OK) != 0) {
    std::fprintf(stderr, "harmony_bench: --baseline-bin %s is not an executable file\n",
                 o.baseline_bin.c_str());
    return 2;
  }

  test::TempDir work("bench-work");
  if (o.out_dir.empty()) o.out_dir = work.path();
  std::filesystem::create_directories(o.out_dir);

  json results;
  results["date"] = now_text("%Y-%m-%d %H:%M:%S %Z");
  results["quick"] = o.quick;
  results["machine"] = machine_info();
  results["load_before"] = load_average();
  results["settings"] = {
      {"throughput_seconds", o.tp_seconds},
      {"delay_seconds", o.delay_seconds},
      {"catchup_rows", o.catchup_rows},
      {"naive_catchup_rows", o.naive_catchup_rows},
      {"snapshot_mb", o.snapshot_mb},
      {"stream_replicas", o.replicas},
      {"shell_seconds", o.shell_seconds},
      {"baseline_bin", o.baseline_bin},
      {"baseline_commit",
       std::getenv("HARMONY_BENCH_BASELINE") ? std::getenv("HARMONY_BENCH_BASELINE") : ""},
      {"writer", "own connection, WAL, synchronous=NORMAL, busy_timeout"},
      {"naive_config", mode_config(Mode::Naive)}};
  results["throughput"] = json::array();
  results["delay"] = json::array();
  results["catchup"] = json::array();
  results["shell"] = json::array();
  int status = 0;
  try {
    if (!o.skip_capture) {
      progress("(1) capture overhead (capture_bench)");
      results["capture"] = run_capture(o, work.path());
    }

    // Every cluster runs for the whole replication part; each scenario measures ours, then
    // main (then naive), back to back, so a change in machine load hits all alike.
    progress("starting the clusters");
    const int64_t max_entries = 100'000'000;  // a message is a batch: keep every one
    std::vector<std::unique_ptr<BenchCluster>> clusters;
    clusters.push_back(
        std::make_unique<BenchCluster>(Mode::Ours, o.replicas, max_entries, "", o.trace_delay));
    if (!o.baseline_bin.empty())
      clusters.push_back(std::make_unique<BenchCluster>(Mode::Main, o.replicas, max_entries,
                                                        o.baseline_bin, o.trace_delay));
    if (o.naive)
      clusters.push_back(std::make_unique<BenchCluster>(Mode::Naive, o.replicas, max_entries));
    for (auto& c : clusters) c->launch();
    for (auto& c : clusters) c->wait_started();
    if (o.main_first && clusters.size() > 1) std::swap(clusters[0], clusters[1]);
    auto step = [&](char n) { return o.steps.find(n) != std::string::npos; };

    for (int txn : {1000, 1}) {
      if (!step('2')) break;
      for (auto& c : clusters) {
        progress(fmt::format("(2) throughput, {}-row txns, {}", txn, mode_name(c->mode())));
        // How far the writer may run ahead of the slower replica: deep enough that batching
        // is not starved, shallow enough that the naive mode (a few hundred rows/s) drains
        // it in seconds rather than minutes.
        const int64_t lag_cap = (txn == 1 ? 5'000 : 20'000) / (o.quick ? 5 : 1);
        results["throughput"].push_back(
            run_throughput(*c, txn == 1 ? "tp_txn1" : "tp_txn1000", txn, o.tp_seconds, lag_cap));
        const auto& r = results["throughput"].back();
        progress(fmt::format("    {} rows/s", human_rate(r["rows_per_s"])));
      }
    }
    for (double rate : kDelayRates) {
      if (!step('3')) break;
      for (auto& c : clusters) {
        progress(fmt::format("(3) delay at {:.0f} txn/s, {}", rate, mode_name(c->mode())));
        results["delay"].push_back(
            run_delay(*c, fmt::format("delay_{:.0f}", rate), rate, o.delay_seconds, o.trace_delay));
        const auto& d = results["delay"].back()["delay_ms"];
        progress(fmt::format("    p50 {:.2f} ms, p99 {:.2f} ms, max {:.2f} ms",
                             d["p50"].get<double>(), d["p99"].get<double>(),
                             d["max"].get<double>()));
        for (const auto& leg : results["delay"].back().value("legs_ms", json::array()))
          progress(fmt::format("      {:<34} p50 {:7.2f}  p99 {:7.2f}  ({} rows)",
                               leg["leg"].get<std::string>(), leg["p50"].get<double>(),
                               leg["p99"].get<double>(), leg["rows"].get<size_t>()));
      }
    }
    for (auto& c : clusters) {
      if (!step('4')) break;
      const int64_t rows = c->mode() != Mode::Naive ? o.catchup_rows : o.naive_catchup_rows;
      progress(fmt::format("(4) catch-up of {} rows, {}", rows, mode_name(c->mode())));
      results["catchup"].push_back(run_catchup(*c, "catchup", rows));
      progress(fmt::format("    {} rows/s",
                           human_rate(results["catchup"].back().value("rows_per_s", 0.0))));
    }
    for (auto& c : clusters) {
      if (!step('7')) break;
      if (c->mode() == Mode::Naive) continue;  // one row per transaction: locked by design
      progress(fmt::format("(7) sqlite3 shell on node 2 under 5,000 replicated rows/s, {}",
                           mode_name(c->mode())));
      results["shell"].push_back(run_shell_contention(*c, 5000, o.shell_seconds));
      const auto& r = results["shell"].back();
      progress(fmt::format("    {} of {} shell writes locked ({:.2f} %), {} other failures",
                           r["shell_locked"].get<int64_t>(), r["shell_attempts"].get<int64_t>(),
                           r["locked_percent"].get<double>(),
                           r["shell_other_failures"].get<int64_t>()));
    }
    clusters.clear();  // stops every process

    if (!o.skip_snapshot) {
      progress(fmt::format("(5) snapshot of a {} MB database", o.snapshot_mb));
      results["snapshot"] = run_snapshot(o.snapshot_mb);
      progress(fmt::format("    save {:.0f} MB/s, restore {:.0f} MB/s",
                           results["snapshot"].value("save_mb_per_s", 0.0),
                           results["snapshot"].value("restore_mb_per_s", 0.0)));
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "harmony_bench: %s\n", e.what());
    results["error"] = e.what();
    status = 1;
  }
  results["load_after"] = load_average();

  std::string table = summary_table(results);
  std::fputs(("\n" + table).c_str(), stdout);
  {
    std::ofstream(o.out_dir + "/table.txt") << table;
    std::ofstream(o.out_dir + "/results.json") << results.dump(1) << "\n";
  }
  auto plots = render_plots(results, work.path(), o.out_dir);
  std::printf("\nwritten: %s/results.json, %s/table.txt", o.out_dir.c_str(), o.out_dir.c_str());
  for (const auto& p : plots) std::printf(", %s", p.c_str());
  std::printf("\n");
  if (status == 0 && o.strict)
    for (const auto& t : results["targets"])
      if (!t["pass"].get<bool>()) status = 1;
  return status;
}
