// Summary table and gnuplot plots of the replication benchmark (see report.hpp).
#include "bench/report.hpp"

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <optional>

#include <fmt/format.h>

#include "bench/bench_util.hpp"
#include "bench/workload.hpp"

namespace harmony::bench {

using json = nlohmann::json;

namespace {

struct Line {
  std::string label, ours, other, gain, target, verdict;
};

const json* find_run(const json& runs, const char* mode, const char* key, double value) {
  if (!runs.is_array()) return nullptr;
  for (const auto& r : runs)
    if (r.value("mode", "") == mode && r.contains(key) && r[key].get<double>() == value) return &r;
  return nullptr;
}

std::string fmt_ms(double v) {
  return v >= 100 ? fmt::format("{:.0f}", v) : fmt::format("{:.1f}", v);
}

// Records a verdict in results["targets"] and returns "PASS"/"MISS".
std::string judge(json& results, const std::string& name, double value, const std::string& target,
                  bool pass) {
  results["targets"].push_back(
      {{"name", name}, {"value", value}, {"target", target}, {"pass", pass}});
  return pass ? "PASS" : "MISS";
}

// The reference column of (2)-(7): another build ("main", scripts/bench.sh --baseline) when it
// ran, else the naive mode.
const char* other_mode(const json& results) {
  for (const char* key : {"throughput", "delay", "catchup"})
    if (results.contains(key) && results[key].is_array())
      for (const auto& r : results[key])
        if (r.value("mode", "") == "main") return "main";
  return "naive";
}

}  // namespace

std::string summary_table(json& results) {
  results["targets"] = json::array();
  const char* other = other_mode(results);
  std::vector<Line> lines;
  auto section = [&](const std::string& title) { lines.push_back({title, "", "", "", "", ""}); };

  // (1) capture: capture_bench's own JSON.
  section("(1) capture overhead, rows/s of a local writer (median of paired runs)");
  if (results.contains("capture") && results["capture"].contains("results")) {
    for (const auto& r : results["capture"]["results"]) {
      const std::string w = r["workload"];
      const std::string label = fmt::format("  {} sync={}",
                                            w == "bulk_insert"     ? "bulk INSERT txns"
                                            : w == "single_insert" ? "1-row INSERT txns"
                                                                   : "1-row UPDATE txns",
                                            r["synchronous"].get<std::string>());
      const double op = r["ours_over_plain"]["median"];
      const double oh = r["ours_over_harmonylite"]["median"];
      const double target_plain = r["ours_over_plain"]["target"];
      lines.push_back(
          {label + ": ours vs plain", human_rate(r["ours"]["median"]),
           human_rate(r["plain"]["median"]), fmt::format("{:.2f}", op),
           fmt::format(">= {:.2f}", target_plain),
           judge(results, "capture ours/plain " + w + " " + r["synchronous"].get<std::string>(), op,
                 fmt::format(">= {:.2f}", target_plain), op >= target_plain)});
      lines.push_back(
          {label + ": ours vs HarmonyLite-style", human_rate(r["ours"]["median"]),
           human_rate(r["harmonylite"]["median"]), fmt::format("{:.2f}x", oh), ">= 1.3x",
           judge(results,
                 "capture ours/harmonylite " + w + " " + r["synchronous"].get<std::string>(), oh,
                 ">= 1.3x", oh >= 1.3)});
    }
    // Instructions per row under callgrind (sync=NORMAL): the same ratios without the noise of
    // this shared machine. ours = instructions/row of ours, other = of plain (or HarmonyLite);
    // the gain is other/ours, read like the rows/s ratios above. Shown, not judged: the
    // wall-clock lines carry the targets.
    const json& in = results["capture"].value("instructions", json::object());
    if (in.contains("results")) {
      for (const auto& r : in["results"]) {
        const std::string w = r["workload"];
        const std::string label =
            fmt::format("  {} instr/row", w == "bulk_insert"     ? "bulk INSERT txns"
                                          : w == "single_insert" ? "1-row INSERT txns"
                                                                 : "1-row UPDATE txns");
        lines.push_back({label + ": ours vs plain", fmt::format("{:.0f}", r["ours"].get<double>()),
                         fmt::format("{:.0f}", r["plain"].get<double>()),
                         fmt::format("{:.2f}", r["ours_over_plain"].get<double>()), "", ""});
        lines.push_back({label + ": ours vs HarmonyLite-style",
                         fmt::format("{:.0f}", r["ours"].get<double>()),
                         fmt::format("{:.0f}", r["harmonylite"].get<double>()),
                         fmt::format("{:.2f}x", r["ours_over_harmonylite"].get<double>()), "", ""});
      }
    } else if (in.contains("error")) {
      lines.push_back(
          {"  instructions/row: " + in["error"].get<std::string>(), "", "", "", "", ""});
    }
    // Database size with capture over without, after fold (capture_bench's size step).
    if (results["capture"].contains("size")) {
      const json& sz = results["capture"]["size"];
      const double ratio = sz["ratio_after_fold"];
      const double target = sz.value("target", 1.5);
      lines.push_back(
          {fmt::format("  file size, {} rows after fold (MB)", human_rate(sz["rows"])),
           fmt::format("{:.1f}", sz["ours_after_fold"]["file_bytes"].get<double>() / 1e6),
           fmt::format("{:.1f}", sz["plain"]["file_bytes"].get<double>() / 1e6),
           fmt::format("{:.2f}x", ratio), fmt::format("<= {:.1f}x", target),
           judge(results, "capture file size ratio", ratio, fmt::format("<= {:.1f}x", target),
                 ratio <= target)});
    }
  } else {
    lines.push_back({"  (not run)", "", "", "", "", ""});
  }

  // (2) throughput.
  section("(2) replication throughput, rows/s committed on node 1 and applied on nodes 2+3");
  for (int txn : {1000, 1}) {
    const json* o = find_run(results["throughput"], "ours", "txn_rows", txn);
    const json* n = find_run(results["throughput"], other, "txn_rows", txn);
    if (!o) continue;
    const double ov = (*o)["rows_per_s"], nv = n ? (*n)["rows_per_s"].get<double>() : 0;
    const double target = txn == 1000 ? 100000 : 20000;  // issue 18
    lines.push_back(
        {fmt::format("  {}-row txns, {:.0f} s", txn, (*o)["write_seconds"].get<double>()),
         human_rate(ov), n ? human_rate(nv) : "-", nv > 0 ? fmt::format("{:.1f}x", ov / nv) : "",
         fmt::format(">= {}", human_rate(target)),
         judge(results, fmt::format("throughput {}-row txns", txn), ov,
               fmt::format(">= {}", target), ov >= target && (*o)["complete"].get<bool>())});
  }
  // (6) resources during (2).
  section("(6) replicator resources during (2): peak RSS (MB) / CPU % of one core, nodes 1/2/3");
  for (int txn : {1000, 1}) {
    std::string cells[2];
    double worst_rss = 0;
    for (int m = 0; m < 2; ++m) {
      const json* r = find_run(results["throughput"], m == 0 ? "ours" : other, "txn_rows", txn);
      if (!r) continue;
      std::string rss, cpu;
      for (const auto& node : (*r)["nodes"]) {
        const double hwm = node["replicator"]["vm_hwm_mb"];
        if (m == 0) worst_rss = std::max(worst_rss, hwm);
        rss += (rss.empty() ? "" : "/") + fmt::format("{:.0f}", hwm);
        cpu += (cpu.empty() ? "" : "/") +
               fmt::format("{:.0f}", node["replicator"]["cpu_percent"].get<double>());
      }
      cells[m] = rss + " MB, " + cpu + " %";
    }
    lines.push_back({fmt::format("  during {}-row txns", txn), cells[0], cells[1], "", "<= 100 MB",
                     judge(results, fmt::format("peak RSS during throughput {}-row txns", txn),
                           worst_rss, "<= 100 MB", worst_rss <= 100)});
  }
  for (int txn : {1000, 1}) {
    const json* o = find_run(results["throughput"], "ours", "txn_rows", txn);
    const json* n = find_run(results["throughput"], other, "txn_rows", txn);
    if (!o) continue;
    auto cell = [](const json* r) {
      return r ? fmt::format("{:.1f} + {:.1f}", (*r)["replicator_cpu_us_per_row"].get<double>(),
                             (*r)["nats_cpu_us_per_row"].get<double>())
               : std::string("-");
    };
    auto total = [](const json* r) {
      return r ? (*r)["replicator_cpu_us_per_row"].get<double>() +
                     (*r)["nats_cpu_us_per_row"].get<double>()
               : 0.0;
    };
    const double ot = total(o), nt = total(n);
    // Issue 18's target is for 1000-row transactions; 1-row ones are reported.
    lines.push_back({fmt::format("  CPU us/row (3 replicators + 3 nats-servers), {}-row", txn),
                     cell(o), cell(n), ot > 0 && nt > 0 ? fmt::format("{:.2f}x", nt / ot) : "",
                     txn == 1000 ? "<= 15" : "",
                     txn == 1000 ? judge(results, "CPU us per replicated row, 1000-row txns", ot,
                                         "<= 15", ot > 0 && ot <= 15)
                                 : ""});
  }

  // (3) delay.
  section(
      "(3) replication delay, commit on node 1 -> visible on node 2 (ms; long-lived "
      "connections, each database in its own directory)");
  for (double rate : kDelayRates) {
    const json* o = find_run(results["delay"], "ours", "rate", rate);
    const json* n = find_run(results["delay"], other, "rate", rate);
    if (!o) continue;
    // Issue 18: p50 <= 5 ms at 50 and 1,000 txn/s, p99 <= 20 ms at 50/s and <= 25 ms at 1,000/s;
    // 100/s keeps the first round's bounds.
    const double p50_max = rate == 100 ? 10 : 5, p99_max = rate == 100 ? 50 : rate == 50 ? 20 : 25;
    for (const char* q : {"p50", "p99", "max"}) {
      const double ov = (*o)["delay_ms"][q], nv = n ? (*n)["delay_ms"][q].get<double>() : 0;
      std::string target, verdict;
      const bool complete = (*o)["seen"] == (*o)["rows"];
      if (std::string(q) == "p50") {
        target = fmt::format("<= {:.0f}", p50_max);
        verdict = judge(results, fmt::format("delay p50 at {:.0f}/s", rate), ov, target + " ms",
                        ov <= p50_max && complete);
      } else if (std::string(q) == "p99") {
        target = fmt::format("<= {:.0f}", p99_max);
        verdict = judge(results, fmt::format("delay p99 at {:.0f}/s", rate), ov, target + " ms",
                        ov <= p99_max && complete);
      }
      lines.push_back(
          {fmt::format("  {:.0f} txn/s ({} rows) {}", rate, (*o)["rows"].get<int64_t>(), q),
           fmt_ms(ov), n ? fmt_ms(nv) : "-", n && ov > 0 ? fmt::format("{:.1f}x", nv / ov) : "",
           target, verdict});
    }
  }

  // (4) catch-up.
  section("(4) catch-up: node 3 restarted after N rows changed; rows/s from restart to identical");
  {
    const json* o = nullptr;
    const json* n = nullptr;
    for (const auto& r : results["catchup"]) {
      if (r["mode"] == "ours") o = &r;
      if (r["mode"] == other) n = &r;
    }
    if (o) {
      auto cell = [](const json* r) {
        if (!r || !r->contains("rows_per_s")) return std::string("-");
        return fmt::format("{} ({} rows)", human_rate((*r)["rows_per_s"]),
                           human_rate((*r)["rows"].get<double>()));
      };
      const double ov = o->value("rows_per_s", 0.0);
      const double nv = n ? n->value("rows_per_s", 0.0) : 0;
      lines.push_back({"  from restart", cell(o), cell(n),
                       nv > 0 ? fmt::format("{:.1f}x", ov / nv) : "", ">= 250k",
                       judge(results, "catch-up rows/s", ov, ">= 250000",
                             ov >= 250000 && o->value("identical", false))});
      auto after = [](const json* r) {
        return r ? fmt::format("{} (ready {:.1f} s)",
                               human_rate(r->value("rows_per_s_after_ready", 0.0)),
                               r->value("restart_to_ready_seconds", 0.0))
                 : std::string("-");
      };
      lines.push_back({"  from 'is replicating'", after(o), after(n), "", "", ""});
    }
  }

  // (7) the stock shell on a busy replica.
  section(
      "(7) sqlite3 shell (fresh process per write, no busy timeout) on node 2 while node 1 "
      "produces 5,000 replicated rows/s: % of writes 'database is locked'");
  if (results.contains("shell") && results["shell"].is_array()) {
    const json* o = nullptr;
    const json* n = nullptr;
    for (const auto& r : results["shell"]) {
      if (r["mode"] == "ours") o = &r;
      if (r["mode"] == other) n = &r;
    }
    auto cell = [](const json* r) {
      return r ? fmt::format("{:.2f} % of {}", (*r)["locked_percent"].get<double>(),
                             (*r)["shell_attempts"].get<int64_t>())
               : std::string("-");
    };
    if (o) {
      const double ov = (*o)["locked_percent"];
      const double nv = n ? (*n)["locked_percent"].get<double>() : 0;
      lines.push_back({"  shell writes locked", cell(o), cell(n),
                       n && ov > 0 ? fmt::format("{:.1f}x", nv / ov) : "", "<= 1 %",
                       judge(results, "shell writes 'database is locked' %", ov, "<= 1",
                             ov <= 1 && (*o)["shell_other_failures"].get<int64_t>() == 0 &&
                                 (*o)["all_applied_on_node2"].get<bool>())});
      auto rate = [](const json* r) {
        return r ? human_rate((*r)["applied_rows_per_s"].get<double>()) : std::string("-");
      };
      lines.push_back(
          {"  replicated rows/s applied on node 2 meanwhile", rate(o), rate(n), "", "", ""});
    }
  }

  // (5) snapshot.
  section("(5) snapshot of a database through the real binary (MB/s)");
  if (results.contains("snapshot") && results["snapshot"].contains("database_mb")) {
    const auto& s = results["snapshot"];
    const double save = s.value("save_mb_per_s", 0.0), restore = s.value("restore_mb_per_s", 0.0);
    const double size = s["database_mb"];
    lines.push_back({fmt::format("  -save-snapshot, {:.0f} MB", size),
                     fmt::format("{:.0f} ({:.1f} s)", save, s.value("save_seconds", 0.0)), "", "",
                     ">= 100", judge(results, "snapshot save MB/s", save, ">= 100", save >= 100)});
    lines.push_back({fmt::format("  restore at start-up, {:.0f} MB", size),
                     fmt::format("{:.0f} ({:.1f} s)", restore, s.value("restore_seconds", 0.0)), "",
                     "", ">= 100",
                     judge(results, "snapshot restore MB/s", restore, ">= 100",
                           restore >= 100 && s.value("identical", false))});
  } else {
    lines.push_back({"  (not run)", "", "", "", "", ""});
  }

  // Layout.
  std::string out;
  const auto& m = results["machine"];
  const auto& lb = results["load_before"];
  const auto& la = results["load_after"];
  out += fmt::format(
      "harmonylite benchmark {} ({}), commit {}{}\n", results["date"].get<std::string>(),
      results.value("quick", false) ? "QUICK sizes: figures not meaningful" : "full",
      m.value("git_commit", "?"), m.value("git_dirty", false) ? "+local changes" : "");
  out += fmt::format("machine: {}, {} cores, {} MB RAM, {}; SQLite {}; {}\n", m.value("cpu", "?"),
                     m.value("cores", 0), m.value("memory_mb", 0), m.value("kernel", "?"),
                     m.value("sqlite", "?"), m.value("nats_server", "?"));
  out += fmt::format("load average before {:.2f} {:.2f} {:.2f}, after {:.2f} {:.2f} {:.2f}\n",
                     lb[0].get<double>(), lb[1].get<double>(), lb[2].get<double>(),
                     la[0].get<double>(), la[1].get<double>(), la[2].get<double>());
  if (std::string(other) == "main") {
    const auto& st = results["settings"];
    out += fmt::format(
        "main = the harmonylite of {} ({}), a second cluster run beside ours, each scenario "
        "alternating ours/main; gain = ours over main (for delay and CPU: main over ours); in "
        "(1) the second column is plain SQLite / HarmonyLite-style triggers\n\n",
        st.value("baseline_commit", "?"), st.value("baseline_bin", "?"));
  } else {
    out +=
        "naive = the same binary with scan_max_changes = 1 and apply_batch_rows = 1 (one row per "
        "synchronous publish, one apply transaction per row: HarmonyLite's structure); in (1) "
        "the second column is plain SQLite / HarmonyLite-style triggers\n\n";
  }
  out += fmt::format("{:<58} {:>22} {:>22} {:>8} {:>10} {:>5}\n", "figure", "ours",
                     std::string(other) == "main" ? "main / other" : "naive / other", "gain",
                     "target", "");
  for (const auto& l : lines) {
    if (l.ours.empty() && l.other.empty() && l.target.empty()) {
      out += l.label + "\n";
      continue;
    }
    out += fmt::format("{:<58} {:>22} {:>22} {:>8} {:>10} {:>5}\n", l.label, l.ours, l.other,
                       l.gain, l.target, l.verdict);
  }
  int missed = 0;
  for (const auto& t : results["targets"]) missed += t["pass"].get<bool>() ? 0 : 1;
  out += fmt::format("\n{} of {} targets met\n", results["targets"].size() - missed,
                     results["targets"].size());
  return out;
}

std::vector<std::string> render_plots(const json& results, const std::string& work_dir,
                                      const std::string& out_dir) {
  std::vector<std::string> written;
  if (std::system("command -v gnuplot >/dev/null 2>&1") != 0) return written;
  const std::string title =
      fmt::format("{} - {}, {} cores, load {:.2f}", results["date"].get<std::string>(),
                  results["machine"].value("cpu", "?"), results["machine"].value("cores", 0),
                  results["load_before"][0].get<double>());

  // Delay: cumulative distribution per mode and rate.
  std::string delay_plots;
  for (const auto& r : results["delay"]) {
    const std::string name = fmt::format("{}/delay_{}_{:.0f}.dat", work_dir,
                                         r["mode"].get<std::string>(), r["rate"].get<double>());
    std::ofstream f(name);
    for (const auto& p : r["cdf"])
      f << std::max(p[0].get<double>(), 0.01) << " " << p[1].get<double>() << "\n";
    delay_plots += fmt::format("{}'{}' using 1:2 with lines lw 2 title '{} {:.0f} txn/s'",
                               delay_plots.empty() ? "" : ", ", name, r["mode"].get<std::string>(),
                               r["rate"].get<double>());
  }
  // Throughput: rows/s applied on node 3 over a one-second window.
  std::string tp_plots;
  for (const auto& r : results["throughput"]) {
    const std::string name = fmt::format("{}/tp_{}_{}.dat", work_dir, r["mode"].get<std::string>(),
                                         r["txn_rows"].get<int>());
    std::ofstream f(name);
    const auto& s = r["series"];
    size_t k = 0;
    for (size_t j = 0; j < s.size(); ++j) {
      const double t = s[j][0];
      while (k + 1 < j && s[k + 1][0].get<double>() <= t - 1.0) ++k;
      const double dt = t - s[k][0].get<double>();
      if (j == 0 || dt < 0.5) continue;
      const double rate3 = (s[j][3].get<double>() - s[k][3].get<double>()) / dt;
      const double rate1 = (s[j][1].get<double>() - s[k][1].get<double>()) / dt;
      f << t << " " << std::max(rate3, 1.0) << " " << std::max(rate1, 1.0) << "\n";
    }
    tp_plots += fmt::format(
        "{}'{}' using 1:2 with lines lw 2 title '{} {}-row txns: applied on node 3'",
        tp_plots.empty() ? "" : ", ", name, r["mode"].get<std::string>(), r["txn_rows"].get<int>());
  }
  const std::string script = work_dir + "/plots.gp";
  {
    std::ofstream g(script);
    g << "set terminal pngcairo size 1100,650 noenhanced font ',10'\n"
      << "set grid\nset key bottom right\n";
    if (!delay_plots.empty()) {
      g << "set output '" << out_dir
        << "/delay.png'\n"
        // Double quotes: gnuplot expands \n only there.
        << "set title \"Replication delay, commit on node 1 -> visible on node 2 (CDF)\\n"
        << title << "\"\n"
        << "set logscale x\nset xlabel 'delay (ms, log scale)'\nset ylabel 'fraction of rows'\n"
        << "set yrange [0:1]\n"
        << "plot " << delay_plots << "\n"
        << "unset logscale x\nset yrange [*:*]\n";
      written.push_back(out_dir + "/delay.png");
    }
    if (!tp_plots.empty()) {
      g << "set output '" << out_dir << "/throughput.png'\n"
        << "set title \"Replication throughput over time (rows/s over 1 s windows)\\n"
        << title << "\"\n"
        << "set logscale y\nset key top right\nset xlabel 'seconds since the writer started'\n"
        << "set ylabel 'rows/s (log scale)'\n"
        << "plot " << tp_plots << "\n";
      written.push_back(out_dir + "/throughput.png");
    }
  }
  if (std::system(fmt::format("gnuplot '{}' 2>'{}/gnuplot.err'", script, work_dir).c_str()) != 0) {
    std::fprintf(stderr, "gnuplot failed (see %s/gnuplot.err)\n", work_dir.c_str());
    written.clear();
  }
  return written;
}

}  // namespace harmony::bench
