// Replication delay as applications see it: a long-lived writer connection on one node, a
// long-lived reader on another, each database in a directory of its own with nothing else
// touching it. Short-lived connections (the sqlite3 shell) hide a missed wake-up, because
// closing the file produces a file event after the commit is visible; a connection that stays
// open produces its last event (the WAL write) *before* the commit is visible.
#include <catch2/catch.hpp>

#include <algorithm>
#include <thread>

#include <fmt/format.h>

#include "shared/sqlite_db.hpp"
#include "tests/support/cluster.hpp"

using namespace harmony;
using namespace harmony::test;

namespace {

constexpr int kInserts = 200;
// What a user of a replication tool that promises "milliseconds" expects; the publisher's
// fallback timer is 1 s, so a missed wake-up shows as ~1,000 ms.
constexpr double kMaxP99Ms = 50;
// On a missed wake-up every insert waits for the timer: stop early instead of 200 s per mode.
constexpr int kGiveUpAfterSlowInserts = 5;
constexpr auto kSlowInsert = std::chrono::milliseconds(500);
constexpr auto kVisibleDeadline = std::chrono::seconds(10);

struct DelayFigures {
  std::vector<double> ms;
  double percentile(double p) const {
    std::vector<double> sorted = ms;
    std::sort(sorted.begin(), sorted.end());
    if (sorted.empty()) return 0;
    auto idx = static_cast<size_t>(p * static_cast<double>(sorted.size() - 1) + 0.5);
    return sorted[std::min(idx, sorted.size() - 1)];
  }
};

// Inserts one row at a time through `writer` (the statement text decides autocommit or an
// explicit transaction) and times until `reader` sees it.
DelayFigures measure(Db& writer, Db& reader, int64_t first_id, bool explicit_transaction) {
  Stmt insert = writer.prepare("INSERT INTO Books(id, title, author) VALUES (?, 'delay', 'x')");
  Stmt visible = reader.prepare("SELECT count(*) FROM Books WHERE id = ?");
  DelayFigures f;
  int slow = 0;
  for (int i = 0; i < kInserts && slow < kGiveUpAfterSlowInserts; ++i) {
    const int64_t id = first_id + i;
    if (explicit_transaction) writer.exec("BEGIN");
    insert.bind(1, id).run();
    insert.reset();
    if (explicit_transaction) writer.exec("COMMIT");
    const auto committed = std::chrono::steady_clock::now();
    bool seen = false;
    while (!seen && std::chrono::steady_clock::now() - committed < kVisibleDeadline) {
      visible.bind(1, id);
      seen = visible.step() && visible.column_int(0) == 1;
      visible.reset();
      if (!seen) std::this_thread::sleep_for(std::chrono::microseconds(500));
    }
    REQUIRE(seen);
    const auto took = std::chrono::steady_clock::now() - committed;
    f.ms.push_back(std::chrono::duration<double, std::milli>(took).count());
    if (took > kSlowInsert) ++slow;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));  // an app's pace, not a flood
  }
  return f;
}

}  // namespace

TEST_CASE("long-lived connections see each other's writes within milliseconds",
          "[replication][delay][serial]") {
  ClusterOptions o;
  o.separate_dirs = true;
  TestCluster c(o);
  c.start_all();
  for (int i = 0; i < c.size(); ++i) REQUIRE(c.wait_ready(i));

  Db writer = Db::open(c.db(0));
  writer.set_busy_timeout(10000);  // as Python's sqlite3 (timeout=) and most drivers do
  Db reader = Db::open(c.db(1), SQLITE_OPEN_READONLY);
  reader.set_busy_timeout(10000);

  struct Mode {
    const char* name;
    const char* pragma;
    bool explicit_transaction;
  };
  const Mode modes[] = {
      {"autocommit", "PRAGMA synchronous=NORMAL", false},
      {"BEGIN ... COMMIT", "PRAGMA synchronous=NORMAL", true},
      {"synchronous=FULL", "PRAGMA synchronous=FULL", false},
  };
  int64_t next_id = 100000;
  for (const auto& mode : modes) {
    writer.exec(mode.pragma);
    DelayFigures f = measure(writer, reader, next_id, mode.explicit_transaction);
    next_id += kInserts;
    const double p50 = f.percentile(0.50), p99 = f.percentile(0.99);
    INFO(fmt::format("{}: {} inserts, p50 {:.1f} ms, p99 {:.1f} ms, max {:.1f} ms", mode.name,
                     f.ms.size(), p50, p99, f.percentile(1.0)));
    WARN(fmt::format("{}: {} inserts, p50 {:.1f} ms, p99 {:.1f} ms, max {:.1f} ms", mode.name,
                     f.ms.size(), p50, p99, f.percentile(1.0)));
    CHECK(f.ms.size() == static_cast<size_t>(kInserts));
    CHECK(p99 < kMaxP99Ms);
  }
  REQUIRE(c.wait_converged(30s));
}
