// Throughput, delay, catch-up and snapshot scenarios of the replication benchmark (see
// scenarios.hpp).
#include "bench/scenarios.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <climits>
#include <cmath>
#include <filesystem>
#include <map>
#include <mutex>
#include <regex>
#include <thread>

#include <fmt/format.h>

#include "shared/status.hpp"

namespace harmony::bench {

using json = nlohmann::json;
using namespace std::chrono_literals;

namespace {

double mb(int64_t kb) {
  return static_cast<double>(kb) / 1024.0;
}

// CPU used and memory peaks of one process over a run.
struct ProcWindow {
  ProcSample first, last;
  int64_t peak_rss_kb = 0;
  void start(const ProcSample& s) {
    first = last = s;
    peak_rss_kb = s.rss_kb;
  }
  void sample(const ProcSample& s) {
    if (!s.ok) return;
    last = s;
    peak_rss_kb = std::max(peak_rss_kb, s.rss_kb);
  }
  json to_json(double wall) const {
    const double cpu = last.cpu_seconds - first.cpu_seconds;
    return {{"cpu_seconds", cpu},
            {"cpu_percent", wall > 0 ? 100.0 * cpu / wall : 0.0},
            {"peak_rss_mb", mb(peak_rss_kb)},
            {"vm_hwm_mb", mb(last.hwm_kb)}};
  }
};

struct NodeWindows {
  std::array<ProcWindow, 3> replicator, nats;
  void start(BenchCluster& bc) {
    for (int i = 0; i < 3; ++i) {
      replicator[static_cast<size_t>(i)].start(bc.replicator_sample(i));
      nats[static_cast<size_t>(i)].start(bc.nats_sample(i));
    }
  }
  void sample(BenchCluster& bc) {
    for (int i = 0; i < 3; ++i) {
      replicator[static_cast<size_t>(i)].sample(bc.replicator_sample(i));
      nats[static_cast<size_t>(i)].sample(bc.nats_sample(i));
    }
  }
  json to_json(double wall) const {
    json out = json::array();
    for (size_t i = 0; i < 3; ++i)
      out.push_back({{"node", i + 1},
                     {"replicator", replicator[i].to_json(wall)},
                     {"nats_server", nats[i].to_json(wall)}});
    return out;
  }
  double replicator_cpu_seconds() const {
    double s = 0;
    for (const auto& w : replicator) s += w.last.cpu_seconds - w.first.cpu_seconds;
    return s;
  }
  double nats_cpu_seconds() const {
    double s = 0;
    for (const auto& w : nats) s += w.last.cpu_seconds - w.first.cpu_seconds;
    return s;
  }
};

// The first match of `pattern` in `text` after `from`, group 1 as a number (nullopt if none).
std::optional<double> find_number(const std::string& text, const std::string& pattern,
                                  size_t from = 0) {
  std::smatch m;
  std::string tail = text.substr(std::min(from, text.size()));
  if (std::regex_search(tail, m, std::regex(pattern))) return std::stod(m[1].str());
  return std::nullopt;
}

bool port_open(int port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return false;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(static_cast<uint16_t>(port));
  bool ok = connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
  close(fd);
  return ok;
}

}  // namespace

json run_throughput(BenchCluster& bc, const std::string& table, int txn_rows, double seconds,
                    int64_t lag_cap) {
  Writer writer(bc.db(0), table);
  Progress p2(bc.db(1), table), p3(bc.db(2), table);
  std::atomic<int64_t> committed{0}, applied_min{0};
  std::atomic<bool> writing{true};
  std::string writer_error;
  NodeWindows windows;
  windows.start(bc);
  const auto t0 = Clock::now();
  std::thread writer_thread([&] {
    try {
      int64_t next = 1;
      while (seconds_between(t0, Clock::now()) < seconds) {
        if (committed.load() - applied_min.load() > lag_cap) {
          std::this_thread::sleep_for(1ms);
          continue;
        }
        writer.write_txn(next, txn_rows);
        next += txn_rows;
        committed = next - 1;
      }
    } catch (const std::exception& e) {
      writer_error = e.what();
    }
    writing = false;
  });

  json series = json::array();
  auto next_series = t0;
  auto next_proc = t0;
  double end = -1;
  const auto give_up_after_writer = std::chrono::seconds(120) + std::chrono::seconds(lag_cap / 500);
  std::optional<Clock::time_point> writer_done_at;
  while (true) {
    const bool still_writing = writing.load();
    const int64_t c = committed.load();
    const int64_t a2 = p2.max_id(), a3 = p3.max_id();
    applied_min = std::min(a2, a3);
    const auto now = Clock::now();
    const double t = seconds_between(t0, now);
    if (now >= next_series) {
      series.push_back({t, c, a2, a3});
      next_series += 250ms;
    }
    if (now >= next_proc) {
      windows.sample(bc);
      next_proc += 500ms;
    }
    if (!still_writing) {
      if (a2 >= c && a3 >= c) {
        end = t;
        series.push_back({t, c, a2, a3});
        break;
      }
      if (!writer_done_at) writer_done_at = now;
      if (now - *writer_done_at > give_up_after_writer) break;
    }
    std::this_thread::sleep_for(still_writing ? 20ms : 5ms);
  }
  writer_thread.join();
  windows.sample(bc);
  const int64_t rows = committed.load();
  const double wall = end > 0 ? end : seconds_between(t0, Clock::now());
  json out = {{"mode", mode_name(bc.mode())},
              {"table", table},
              {"txn_rows", txn_rows},
              {"write_seconds", seconds},
              {"lag_cap_rows", lag_cap},
              {"rows", rows},
              {"seconds", wall},
              {"complete", end > 0},
              {"rows_per_s", end > 0 ? static_cast<double>(rows) / end : 0.0},
              {"replicator_cpu_us_per_row",
               rows > 0 ? 1e6 * windows.replicator_cpu_seconds() / static_cast<double>(rows) : 0},
              {"nats_cpu_us_per_row",
               rows > 0 ? 1e6 * windows.nats_cpu_seconds() / static_cast<double>(rows) : 0},
              {"nodes", windows.to_json(wall)},
              {"series", std::move(series)}};
  if (!writer_error.empty()) out["error"] = writer_error;
  return out;
}

// --trace-delay: one row's way from node 1's commit to node 2's reader, from the replicators'
// debug lines (wall-clock microseconds, the same clock as the bench's t_us):
//   node 1  "delay trace: published batch B (N rows, R rechecks): woke W collected C sent S acked
//   A" node 2  "delay trace: applied batch O/B: received V committed M"
struct PublishedTrace {
  int64_t batch = 0, woke = 0, collected = 0, sent = 0, acked = 0, rechecks = 0;
};
struct AppliedTrace {
  int64_t received = 0, committed = 0;
};

std::vector<PublishedTrace> published_traces(const std::string& log) {
  std::vector<PublishedTrace> out;
  static const std::regex line(
      R"(delay trace: published batch (\d+) \(\d+ rows, (\d+) rechecks\): woke (\d+) collected (\d+) sent (\d+) acked (\d+))");
  for (std::sregex_iterator it(log.begin(), log.end(), line), end; it != end; ++it) {
    const auto& m = *it;
    out.push_back({std::stoll(m[1]), std::stoll(m[3]), std::stoll(m[4]), std::stoll(m[5]),
                   std::stoll(m[6]), std::stoll(m[2])});
  }
  std::sort(out.begin(), out.end(),
            [](const auto& a, const auto& b) { return a.collected < b.collected; });
  return out;
}

std::map<int64_t, AppliedTrace> applied_traces(const std::string& log, int64_t origin) {
  std::map<int64_t, AppliedTrace> out;
  static const std::regex line(
      R"(delay trace: applied batch (\d+)/(\d+): received (\d+) committed (\d+))");
  for (std::sregex_iterator it(log.begin(), log.end(), line), end; it != end; ++it) {
    const auto& m = *it;
    if (std::stoll(m[1]) == origin) out[std::stoll(m[2])] = {std::stoll(m[3]), std::stoll(m[4])};
  }
  return out;
}

// Each row belongs to the first batch collected after its commit (rows are written in id order
// and a batch takes everything pending). Legs in ms, median and p99 over the rows traced.
json delay_legs(const std::string& publisher_log, const std::string& consumer_log,
                const std::vector<std::pair<int64_t, int64_t>>& rows) {
  const auto published = published_traces(publisher_log);
  const auto applied = applied_traces(consumer_log, 1);
  const char* names[] = {"commit -> watcher wake",          "wake -> fold/collect done",
                         "collect -> publish sent",         "publish sent -> ack (quorum)",
                         "publish sent -> node 2 received", "received -> apply committed",
                         "apply committed -> reader sees",  "total (commit -> reader sees)"};
  constexpr size_t kLegs = std::size(names);
  std::array<std::vector<double>, kLegs> legs;
  std::vector<double> rechecks;
  auto ms = [](int64_t from, int64_t to) { return static_cast<double>(to - from) / 1000.0; };
  for (const auto& [commit, seen] : rows) {
    auto it = std::lower_bound(published.begin(), published.end(), commit,
                               [](const PublishedTrace& p, int64_t t) { return p.collected < t; });
    if (it == published.end()) continue;
    auto a = applied.find(it->batch);
    if (a == applied.end()) continue;
    // A wake-up before the commit (the publisher's own write, an earlier row's event) counts as
    // no wait: the leg is what the row spent waiting for the publisher to look.
    const int64_t woke = std::max(it->woke, commit);
    const int64_t points[] = {commit, woke, it->collected, it->sent, it->acked};
    for (size_t i = 0; i < 4; ++i) legs[i].push_back(ms(points[i], points[i + 1]));
    legs[4].push_back(ms(it->sent, a->second.received));
    legs[5].push_back(ms(a->second.received, a->second.committed));
    legs[6].push_back(ms(a->second.committed, seen));
    legs[7].push_back(ms(commit, seen));
    rechecks.push_back(static_cast<double>(it->rechecks));
  }
  json out = json::array();
  for (size_t i = 0; i < kLegs; ++i) {
    Summary s = summarize(legs[i]);
    out.push_back({{"leg", names[i]}, {"rows", s.n}, {"p50", s.p50}, {"p99", s.p99}});
  }
  // The stream audit's leader reads run on node 2's receive path: how long each pass that read
  // anything held it (over the node's whole log), and how many passes gave way to deliveries.
  std::vector<double> audits;
  double gave_way = 0;
  static const std::regex audit_line(
      R"(delay trace: audit of \S+: (\d+) leader reads in (\d+) us( \(gave way)?)");
  for (std::sregex_iterator it(consumer_log.begin(), consumer_log.end(), audit_line), end;
       it != end; ++it) {
    if ((*it)[3].matched) ++gave_way;
    if (std::stoll((*it)[1]) > 0)
      audits.push_back(static_cast<double>(std::stoll((*it)[2])) / 1000.0);
  }
  Summary au = summarize(audits);
  out.push_back({{"leg", "node 2 audit pass with reads (ms)"},
                 {"rows", au.n},
                 {"p50", au.p50},
                 {"p99", au.max}});
  out.push_back({{"leg", "node 2 audit passes that gave way"},
                 {"rows", au.n},
                 {"p50", gave_way},
                 {"p99", gave_way}});
  Summary r = summarize(rechecks);
  out.push_back(
      {{"leg", "rechecks before collect (count)"}, {"rows", r.n}, {"p50", r.p50}, {"p99", r.p99}});
  return out;
}

json run_delay(BenchCluster& bc, const std::string& table, double rate, double seconds,
               bool trace) {
  const auto n = static_cast<int64_t>(std::llround(rate * seconds));
  std::vector<double> delays;
  delays.reserve(static_cast<size_t>(n));
  std::atomic<bool> writer_done{false};
  std::atomic<int64_t> seen{0};
  std::vector<std::pair<int64_t, int64_t>> timeline;  // per row: t_us (commit), seen (wall us)
  timeline.reserve(static_cast<size_t>(n));
  std::string reader_error;
  Db rdb = Db::open(bc.db(1), SQLITE_OPEN_READWRITE);
  rdb.set_busy_timeout(5000);
  rdb.exec("PRAGMA query_only = 1");
  Writer writer(bc.db(0), table);
  std::thread reader([&] {
    try {
      Stmt dv = rdb.prepare("PRAGMA data_version");
      Stmt q = rdb.prepare(
          fmt::format("SELECT id, t_us FROM {} WHERE id > ?1 ORDER BY id", quote_ident(table)));
      int64_t last_dv = -1, last_id = 0;
      std::optional<Clock::time_point> give_up;
      while (seen.load() < n) {
        dv.reset();
        dv.step();
        const int64_t v = dv.column_int(0);
        dv.reset();
        if (v != last_dv) {
          last_dv = v;
          q.reset();
          q.bind(1, last_id);
          while (q.step()) {
            const int64_t now = wall_us();
            delays.push_back(static_cast<double>(now - q.column_int(1)) / 1000.0);
            timeline.emplace_back(q.column_int(1), now);
            last_id = q.column_int(0);
            ++seen;
          }
          q.reset();
          continue;
        }
        if (writer_done && !give_up) give_up = Clock::now() + 30s;
        if (give_up && Clock::now() > *give_up) break;
        std::this_thread::sleep_for(200us);
      }
    } catch (const std::exception& e) {
      reader_error = e.what();
    }
  });
  const auto t0 = Clock::now();
  std::string writer_error;
  try {
    for (int64_t k = 0; k < n; ++k) {
      std::this_thread::sleep_until(t0 + std::chrono::duration_cast<Clock::duration>(
                                             std::chrono::duration<double>(k / rate)));
      writer.write_one(k + 1);
    }
  } catch (const std::exception& e) {
    writer_error = e.what();
  }
  const double write_seconds = seconds_between(t0, Clock::now());
  writer_done = true;
  reader.join();
  Summary s = summarize(delays);
  json cdf = json::array();
  if (!delays.empty())
    for (int i = 0; i <= 200; ++i) {
      const double q = i / 200.0;
      cdf.push_back({quantile(delays, std::max(q, 1e-9)), q});
    }
  json out = {{"mode", mode_name(bc.mode())},
              {"table", table},
              {"rate", rate},
              {"rows", n},
              {"seen", seen.load()},
              {"achieved_rate", write_seconds > 0 ? static_cast<double>(n) / write_seconds : 0},
              {"delay_ms", s.to_json()},
              {"cdf", std::move(cdf)}};
  if (trace) out["legs_ms"] = delay_legs(bc.cluster().log(0), bc.cluster().log(1), timeline);
  if (!writer_error.empty()) out["error"] = writer_error;
  if (!reader_error.empty()) out["error"] = reader_error;
  return out;
}

json run_catchup(BenchCluster& bc, const std::string& table, int64_t rows) {
  bc.stop(2);
  Writer writer(bc.db(0), table);
  Progress p2(bc.db(1), table);
  const auto w0 = Clock::now();
  for (int64_t id = 1; id <= rows; id += 1000)
    writer.write_txn(id, static_cast<int>(std::min<int64_t>(1000, rows - id + 1)));
  const double write_seconds = seconds_between(w0, Clock::now());
  // Generous for the naive mode (~600 rows/s), short enough that a stream made unavailable by
  // stopping node 3 is reported instead of waited on for minutes.
  const auto node2_timeout = std::chrono::seconds(120 + rows / 2000);
  bool node2_ok = test::wait_until([&] { return p2.max_id() >= rows; }, node2_timeout, 20ms);
  const double node2_seconds = seconds_between(w0, Clock::now());
  json out = {{"mode", mode_name(bc.mode())},
              {"table", table},
              {"rows", rows},
              {"write_seconds", write_seconds},
              {"node2_seconds", node2_seconds},
              {"node2_rows_per_s", static_cast<double>(rows) / node2_seconds}};
  if (!node2_ok) {
    out["error"] =
        "node 2 did not receive every row while node 3 was down; with R1 streams the stream may "
        "be led by node 3's embedded server and unavailable until it returns (use --replicas 3)";
    bc.restart(2);
    bc.wait_ready(2, 60s);
    return out;
  }

  Progress p3(bc.db(2), table);
  const auto t0 = Clock::now();
  bc.restart(2);
  double ready = -1, done = -1;
  int64_t peak_rss_kb = 0;
  auto next_log = t0;
  const auto deadline = t0 + std::chrono::seconds(300 + rows / 500);
  while (Clock::now() < deadline) {
    const auto now = Clock::now();
    if (ready < 0 && now >= next_log) {
      std::string log = bc.cluster().log(2);
      auto start = log.rfind("===== start =====");
      if (log.find("is replicating", start == std::string::npos ? 0 : start) != std::string::npos)
        ready = seconds_between(t0, now);
      next_log = now + 50ms;
    }
    auto s = bc.replicator_sample(2);
    peak_rss_kb = std::max(peak_rss_kb, s.rss_kb);
    if (p3.max_id() >= rows) {
      done = seconds_between(t0, Clock::now());
      break;
    }
    std::this_thread::sleep_for(10ms);
  }
  auto s = bc.replicator_sample(2);
  bool identical = false;
  if (done > 0) {
    if (ready < 0) bc.wait_ready(2, 30s);
    identical = test::wait_until(
        [&] {
          try {
            return bc.cluster().checksum(0) == bc.cluster().checksum(2);
          } catch (const std::exception&) {
            return false;
          }
        },
        60s, 200ms);
  }
  out["restart_to_identical_seconds"] = done;
  out["restart_to_ready_seconds"] = ready;
  out["rows_per_s"] = done > 0 ? static_cast<double>(rows) / done : 0.0;
  out["rows_per_s_after_ready"] =
      done > 0 && ready >= 0 && done > ready ? static_cast<double>(rows) / (done - ready) : 0.0;
  out["identical"] = identical;
  out["node3_peak_rss_mb"] = mb(std::max(peak_rss_kb, s.rss_kb));
  out["node3_vm_hwm_mb"] = mb(s.hwm_kb);
  if (done < 0) out["error"] = "node 3 did not catch up in time";
  return out;
}

json run_shell_contention(BenchCluster& bc, double rows_per_s, double seconds) {
  // 100-row transactions: the load is the replicated rate, not a storm of tiny commits (those
  // are (2)'s 1-row case).
  constexpr int kTxnRows = 100;
  const double txn_per_s = rows_per_s / kTxnRows;
  const auto n_txn = static_cast<int64_t>(std::llround(txn_per_s * seconds));
  Writer writer(bc.db(0), "shell_load");
  Progress p2(bc.db(1), "shell_load");
  const int64_t first_id = p2.max_id() + 1;  // the scenario may run more than once per cluster
  std::atomic<bool> writing{true};
  std::string writer_error;
  const auto t0 = Clock::now();
  std::thread load([&] {
    try {
      for (int64_t k = 0; k < n_txn; ++k) {
        std::this_thread::sleep_until(t0 + std::chrono::duration_cast<Clock::duration>(
                                               std::chrono::duration<double>(k / txn_per_s)));
        writer.write_txn(first_id + k * kTxnRows, kTxnRows);
      }
    } catch (const std::exception& e) {
      writer_error = e.what();
    }
    writing = false;
  });
  // The shell starts writing once replicated rows arrive on node 2, and stops with the writer.
  test::wait_until([&] { return p2.max_id() >= first_id; }, 30s, 5ms);
  const auto s0 = Clock::now();
  int64_t attempts = 0, locked = 0, other = 0;
  std::string other_example;
  const int64_t shell_base = wall_us();  // distinct ids across runs
  while (writing.load()) {
    ++attempts;
    auto r = test::run_command(
        {"sqlite3", bc.db(1),
         fmt::format("INSERT INTO shell_writes (id, t_us, payload) VALUES ({}, {}, 'shell')",
                     shell_base + attempts, wall_us())},
        30s);
    if (r.exit_code == 0) continue;
    if (r.output.find("database is locked") != std::string::npos) {
      ++locked;
    } else {
      ++other;
      if (other_example.empty()) other_example = r.output;
    }
  }
  const double shell_seconds = seconds_between(s0, Clock::now());
  load.join();
  const int64_t last_id = first_id + n_txn * kTxnRows - 1;
  const bool applied = test::wait_until([&] { return p2.max_id() >= last_id; }, 60s, 10ms);
  const double wall = seconds_between(t0, Clock::now());
  json out = {
      {"mode", mode_name(bc.mode())},
      {"target_rows_per_s", rows_per_s},
      {"txn_rows", kTxnRows},
      {"rows", n_txn * kTxnRows},
      {"all_applied_on_node2", applied},
      {"applied_rows_per_s", static_cast<double>(n_txn * kTxnRows) / wall},
      {"shell_seconds", shell_seconds},
      {"shell_attempts", attempts},
      {"shell_locked", locked},
      {"shell_other_failures", other},
      {"locked_percent",
       attempts > 0 ? 100.0 * static_cast<double>(locked) / static_cast<double>(attempts) : 0.0}};
  if (!other_example.empty()) out["other_failure_example"] = other_example;
  if (!writer_error.empty()) out["error"] = writer_error;
  return out;
}

json run_snapshot(int64_t megabytes) {
  json out;
  test::TempDir dir("bench-snapshot");
  const int port = test::free_port();
  test::Process nats({"nats-server", "-js", "-sd", dir.file("nats"), "-a", "127.0.0.1", "-p",
                      std::to_string(port), "-n", "bench-snapshot"},
                     dir.file("nats.log"));
  if (!test::wait_until([&] { return port_open(port); }, 30s))
    throw Error("snapshot: nats-server did not start: " + test::read_file(dir.file("nats.log")));

  test::ClusterOptions o;
  o.nodes = 2;
  o.schema = "CREATE TABLE big (id INTEGER PRIMARY KEY, payload BLOB NOT NULL);";
  o.external_nats_url = fmt::format("nats://127.0.0.1:{}", port);
  o.max_entries = 10;
  test::TestCluster c(o);

  // About `megabytes` MB of incompressible 1000-byte rows on node 1 (node 2 has the empty table).
  const int64_t rows = megabytes * 1000;
  {
    Db db = Db::open(c.db(0), SQLITE_OPEN_READWRITE);
    db.exec("PRAGMA synchronous = OFF");
    for (int64_t first = 1; first <= rows; first += 100000) {
      Transaction tx(db);
      auto ins = db.prepare(
          "WITH RECURSIVE s(i) AS (SELECT ?1 UNION ALL SELECT i + 1 FROM s WHERE i < ?2) "
          "INSERT INTO big SELECT i, randomblob(1000) FROM s");
      ins.bind(1, first).bind(2, std::min(rows, first + 99999)).run();
      tx.commit();
    }
    db.exec("PRAGMA wal_checkpoint(TRUNCATE)");
  }
  // Node 1 takes no periodic snapshot of its own while we measure (its [snapshot] is off; the
  // -save-snapshot run below uses a copy of its config with snapshots on).
  c.set_node_config(0, "[snapshot]\nenabled = false\n");
  c.start(0);
  if (!c.wait_ready(0, 120s)) throw Error("snapshot: node 1 did not start:\n" + c.log(0));
  // Three times max_entries batches, one at a time: the stream forgets its beginning, so a new
  // node (position 0) must restore a snapshot. (Batch ids of a new file start at the wall clock
  // in microseconds: count them from the id before.)
  const int64_t first_batch =
      c.query_int(0, "SELECT value FROM __harmony_meta WHERE key = 'next_batch_id'");
  {
    Db db = Db::open(c.db(0), SQLITE_OPEN_READWRITE);
    db.set_busy_timeout(10000);
    for (int64_t k = 1; k <= 3 * o.max_entries; ++k) {
      db.exec(fmt::format("INSERT INTO big VALUES ({}, x'00')", rows + k));
      if (!test::wait_until([&] { return c.pending(0) == 0; }, 30s, 5ms))
        throw Error("snapshot: node 1 does not publish:\n" + c.log(0));
    }
  }
  const int64_t batches =
      c.query_int(0, "SELECT value FROM __harmony_meta WHERE key = 'next_batch_id'") - first_batch;
  if (!test::wait_until(
          [&] {
            return c.query_int(0, "SELECT coalesce(max(seq), 0) FROM __harmony_positions") >=
                   batches;
          },
          30s, 100ms))
    throw Error("snapshot: node 1 did not store its stream position:\n" + c.log(0));
  const int64_t db_bytes = c.query_int(0, "PRAGMA page_count") * c.query_int(0, "PRAGMA page_size");
  const double db_mb = static_cast<double>(db_bytes) / (1024.0 * 1024.0);
  out["database_mb"] = db_mb;
  out["rows"] = rows;
  out["store"] = "nats (JetStream object store, R1)";

  // Save through the real binary while node 1 runs.
  std::string save_config = test::read_file(c.config(0));
  save_config.replace(save_config.find("enabled = false"), 15, "enabled = true");
  test::write_file(dir.file("save.toml"), save_config);
  const auto s0 = Clock::now();
  auto saved = test::run_command(
      {test::harmonylite_path(), "-config", dir.file("save.toml"), "-save-snapshot"}, 1800s);
  const double save_seconds = seconds_between(s0, Clock::now());
  out["save_exit_code"] = saved.exit_code;
  out["save_seconds"] = save_seconds;
  out["save_mb_per_s"] = db_mb / save_seconds;
  if (auto take = find_number(saved.output, R"(taken: [0-9.]+ MB in ([0-9.]+) s)"))
    out["save_take_seconds"] = *take;
  if (saved.exit_code != 0) {
    out["error"] = "-save-snapshot failed: " + saved.output;
    return out;
  }

  // Restore: node 2 starts with an empty table and position 0.
  const auto r0 = Clock::now();
  c.start(1);
  double restored = -1, began = -1;
  const auto deadline = r0 + std::chrono::seconds(600 + megabytes);
  while (Clock::now() < deadline && c.running(1)) {
    std::string log = c.log(1);
    const auto now = Clock::now();
    if (began < 0 && log.find("restoring the newest snapshot") != std::string::npos)
      began = seconds_between(r0, now);
    if (log.find("restored the snapshot") != std::string::npos) {
      restored = seconds_between(r0, now);
      if (auto copy = find_number(log, R"(restore: [0-9.]+ MB copied in ([0-9.]+) s)"))
        out["restore_copy_seconds"] = *copy;
      break;
    }
    std::this_thread::sleep_for(20ms);
  }
  out["restore_seconds"] = restored;
  out["restore_began_after_seconds"] = began;
  out["restore_mb_per_s"] = restored > 0 ? db_mb / restored : 0.0;
  if (restored < 0) {
    out["error"] = "node 2 did not restore the snapshot:\n" + c.log(1);
    return out;
  }
  out["identical"] = c.wait_ready(1, 120s) && test::wait_until(
                                                  [&] {
                                                    try {
                                                      return c.checksum(0) == c.checksum(1);
                                                    } catch (const std::exception&) {
                                                      return false;
                                                    }
                                                  },
                                                  120s, 500ms);
  c.stop(1);
  c.stop(0);
  nats.stop(20s);
  return out;
}

}  // namespace harmony::bench
