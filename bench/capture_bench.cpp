// capture_bench: what change capture costs a local writer. Rows/s into a WAL table
// (synchronous=NORMAL, then FULL), same process, three modes side by side:
//   plain        no capture
//   ours         harmony::enable_table (the real triggers from sql/*.sql)
//   harmonylite  HarmonyLite-style triggers (full row image into a per-table AUTOINCREMENT log
//                plus a global log, WHEN ... pragma_function_list ...; reference/harmonylite.md §2)
// Workloads: (a) bulk inserts in one transaction, (b) single-row INSERT transactions,
// (c) single-row UPDATE transactions on preloaded rows. Every measurement is repeated,
// interleaved across modes (the machine is noisy); the table shows the best and the median run
// and checks the targets: ours/plain >= 0.6 single-row, >= 0.4 bulk; ours >= 1.3x harmonylite.
//   capture_bench [--quick] [--reps N] [--json FILE] [--strict] [--dir DIR]
// --quick: small sizes (smoke test). --strict: exit 1 when a target is missed.
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "shared/capture.hpp"
#include "shared/sqlite_db.hpp"

using namespace harmony;

namespace {

enum class Mode { Plain, Ours, HarmonyLite };
constexpr Mode kModes[] = {Mode::Plain, Mode::Ours, Mode::HarmonyLite};

const char* mode_name(Mode m) {
  switch (m) {
    case Mode::Plain:
      return "plain";
    case Mode::Ours:
      return "ours";
    default:
      return "harmonylite";
  }
}

enum class Workload { Bulk, SingleInsert, SingleUpdate };
constexpr Workload kWorkloads[] = {Workload::Bulk, Workload::SingleInsert, Workload::SingleUpdate};

struct Sizes {
  int bulk_rows = 100'000;
  int single_txns = 5'000;
  int update_txns = 5'000;
  int preload_rows = 10'000;
};

const char* kSchema =
    "CREATE TABLE Books (id INTEGER PRIMARY KEY, title TEXT, author TEXT, "
    "publication_year INTEGER)";

// HarmonyLite's capture for Books, as its templates render it (reference/harmonylite.md §2).
const char* kHarmonyLiteCapture = R"sql(
CREATE TABLE IF NOT EXISTS __harmonylite___change_log_global (
  id INTEGER PRIMARY KEY AUTOINCREMENT, change_table_id INTEGER, table_name TEXT);
CREATE TABLE IF NOT EXISTS __harmonylite__Books_change_log (
  id INTEGER PRIMARY KEY AUTOINCREMENT, val_id INTEGER, val_title TEXT, val_author TEXT,
  val_publication_year INTEGER, type TEXT, created_at INTEGER, state INTEGER);
CREATE INDEX IF NOT EXISTS __harmonylite__Books_change_log_state_index
  ON __harmonylite__Books_change_log (state);
DROP TRIGGER IF EXISTS __harmonylite__Books_change_log_on_delete;
CREATE TRIGGER IF NOT EXISTS __harmonylite__Books_change_log_on_delete AFTER delete ON Books
WHEN (SELECT COUNT(*) FROM pragma_function_list WHERE name='harmonylite_version') < 1
BEGIN
  INSERT INTO __harmonylite__Books_change_log(val_id, val_title, val_author, val_publication_year,
    type, created_at, state)
  VALUES(OLD.id, OLD.title, OLD.author, OLD.publication_year, 'delete',
    CAST((strftime('%s','now') || substr(strftime('%f','now'),4)) as INT), 0);
  INSERT INTO __harmonylite___change_log_global (change_table_id, table_name)
  VALUES (last_insert_rowid(), 'Books');
END;
DROP TRIGGER IF EXISTS __harmonylite__Books_change_log_on_insert;
CREATE TRIGGER IF NOT EXISTS __harmonylite__Books_change_log_on_insert AFTER insert ON Books
WHEN (SELECT COUNT(*) FROM pragma_function_list WHERE name='harmonylite_version') < 1
BEGIN
  INSERT INTO __harmonylite__Books_change_log(val_id, val_title, val_author, val_publication_year,
    type, created_at, state)
  VALUES(NEW.id, NEW.title, NEW.author, NEW.publication_year, 'insert',
    CAST((strftime('%s','now') || substr(strftime('%f','now'),4)) as INT), 0);
  INSERT INTO __harmonylite___change_log_global (change_table_id, table_name)
  VALUES (last_insert_rowid(), 'Books');
END;
DROP TRIGGER IF EXISTS __harmonylite__Books_change_log_on_update;
CREATE TRIGGER IF NOT EXISTS __harmonylite__Books_change_log_on_update AFTER update ON Books
WHEN (SELECT COUNT(*) FROM pragma_function_list WHERE name='harmonylite_version') < 1
BEGIN
  INSERT INTO __harmonylite__Books_change_log(val_id, val_title, val_author, val_publication_year,
    type, created_at, state)
  VALUES(NEW.id, NEW.title, NEW.author, NEW.publication_year, 'update',
    CAST((strftime('%s','now') || substr(strftime('%f','now'),4)) as INT), 0);
  INSERT INTO __harmonylite___change_log_global (change_table_id, table_name)
  VALUES (last_insert_rowid(), 'Books');
END;
)sql";

void bind_book(Stmt& s, int64_t id) {
  s.bind(1, id);
  s.bind(2, fmt::format("Title number {}", id));
  s.bind(3, fmt::format("Author {}", id % 97));
  s.bind(4, int64_t{1900 + id % 120});
}

// One measurement on a fresh database file: returns rows per second.
double run_once(const std::string& dir, Mode mode, Workload w, const char* sync, const Sizes& z) {
  const std::string path = dir + "/bench.db";
  for (const char* suffix : {"", "-wal", "-shm"}) std::filesystem::remove(path + suffix);
  Db db = Db::open(path, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE);
  db.exec("PRAGMA journal_mode=WAL");
  db.exec(std::string("PRAGMA synchronous=") + sync);
  db.exec(kSchema);
  if (w == Workload::SingleUpdate) {  // preloaded rows, before capture is installed
    Transaction tx(db);
    auto ins = db.prepare("INSERT INTO Books VALUES (?1, ?2, ?3, ?4)");
    for (int64_t i = 1; i <= z.preload_rows; ++i) {
      ins.reset();
      bind_book(ins, i);
      ins.run();
    }
    tx.commit();
  }
  if (mode == Mode::Ours) {
    enable_table(db, "Books");
  } else if (mode == Mode::HarmonyLite) {
    db.exec(kHarmonyLiteCapture);
  }
  db.exec("PRAGMA wal_checkpoint(TRUNCATE)");

  auto begin = db.prepare("BEGIN IMMEDIATE");
  auto commit = db.prepare("COMMIT");
  auto insert = db.prepare("INSERT INTO Books VALUES (?1, ?2, ?3, ?4)");
  auto update = db.prepare(
      "UPDATE Books SET publication_year = publication_year + 1, title = ?2 WHERE id = ?1");
  int rows = 0;
  const auto t0 = std::chrono::steady_clock::now();
  switch (w) {
    case Workload::Bulk:
      begin.run();
      begin.reset();
      for (int64_t i = 1; i <= z.bulk_rows; ++i) {
        insert.reset();
        bind_book(insert, i);
        insert.run();
      }
      commit.run();
      commit.reset();
      rows = z.bulk_rows;
      break;
    case Workload::SingleInsert:
      for (int64_t i = 1; i <= z.single_txns; ++i) {
        begin.run();
        begin.reset();
        insert.reset();
        bind_book(insert, i);
        insert.run();
        commit.run();
        commit.reset();
      }
      rows = z.single_txns;
      break;
    case Workload::SingleUpdate:
      for (int64_t i = 0; i < z.update_txns; ++i) {
        const int64_t id = (i * 7919) % z.preload_rows + 1;  // spread over the table
        begin.run();
        begin.reset();
        update.reset();
        update.bind(1, id).bind(2, fmt::format("Revised {}", i));
        update.run();
        commit.run();
        commit.reset();
      }
      rows = z.update_txns;
      break;
  }
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  // Sanity: capture really captured (and plain did not).
  if (mode == Mode::Ours) {
    auto t = find_captured(db, "Books");
    if (!t || db.query_int("SELECT count(*) FROM " + t->log) != rows)
      throw Error("ours: the change log does not hold one entry per written row");
  }
  if (mode == Mode::HarmonyLite &&
      db.query_int("SELECT count(*) FROM __harmonylite__Books_change_log") != rows)
    throw Error("harmonylite: the change log does not hold one entry per written row");
  return rows / secs;
}

struct Samples {
  std::vector<double> v;
  double best() const { return v.empty() ? 0 : *std::max_element(v.begin(), v.end()); }
  double median() const {
    if (v.empty()) return 0;
    auto s = v;
    std::sort(s.begin(), s.end());
    return s.size() % 2 ? s[s.size() / 2] : (s[s.size() / 2 - 1] + s[s.size() / 2]) / 2;
  }
};

std::string workload_label(Workload w, const Sizes& z) {
  switch (w) {
    case Workload::Bulk:
      return fmt::format("(a) {} inserts, 1 txn", z.bulk_rows);
    case Workload::SingleInsert:
      return fmt::format("(b) {} x 1-row INSERT txn", z.single_txns);
    default:
      return fmt::format("(c) {} x 1-row UPDATE txn", z.update_txns);
  }
}

const char* workload_key(Workload w) {
  switch (w) {
    case Workload::Bulk:
      return "bulk_insert";
    case Workload::SingleInsert:
      return "single_insert";
    default:
      return "single_update";
  }
}

std::string rate(double r) {
  if (r >= 1e6) return fmt::format("{:.2f}M", r / 1e6);
  if (r >= 1e3) return fmt::format("{:.1f}k", r / 1e3);
  return fmt::format("{:.0f}", r);
}

int usage(const char* argv0) {
  std::fprintf(stderr, "usage: %s [--quick] [--reps N] [--json FILE] [--strict] [--dir DIR]\n",
               argv0);
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  bool quick = false, strict = false;
  int reps = 0;
  std::string json_path, dir_arg;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--quick") {
      quick = true;
    } else if (a == "--strict") {
      strict = true;
    } else if (a == "--reps" && i + 1 < argc) {
      reps = std::atoi(argv[++i]);
      if (reps < 1) return usage(argv[0]);
    } else if (a == "--json" && i + 1 < argc) {
      json_path = argv[++i];
    } else if (a == "--dir" && i + 1 < argc) {
      dir_arg = argv[++i];
    } else {
      return usage(argv[0]);
    }
  }
  Sizes z;
  if (quick) z = Sizes{2'000, 200, 200, 500};
  if (reps == 0) reps = quick ? 1 : 3;

  std::string dir = dir_arg;
  if (dir.empty()) {
    char tmpl[] = "/tmp/harmony-capture-bench-XXXXXX";
    if (!mkdtemp(tmpl)) {
      std::perror("mkdtemp");
      return 1;
    }
    dir = tmpl;
  }

  nlohmann::json report;
  report["reps"] = reps;
  report["quick"] = quick;
  report["results"] = nlohmann::json::array();
  bool all_pass = true;
  int status = 0;
  try {
    for (const char* sync : {"NORMAL", "FULL"}) {
      // samples[workload][mode]
      Samples samples[3][3];
      for (int r = 0; r < reps; ++r)
        for (int wi = 0; wi < 3; ++wi)
          for (int mi = 0; mi < 3; ++mi)
            samples[wi][mi].v.push_back(run_once(dir, kModes[mi], kWorkloads[wi], sync, z));

      std::printf("\ncapture_bench: rows/s, WAL, synchronous=%s, best of %d (median)%s\n", sync,
                  reps, quick ? ", --quick sizes (numbers are not meaningful)" : "");
      std::printf("%-30s %17s %17s %17s  %-22s %-22s\n", "workload", "plain", "ours", "harmonylite",
                  "ours/plain (target)", "ours/harmonylite");
      for (int wi = 0; wi < 3; ++wi) {
        const Workload w = kWorkloads[wi];
        const auto& p = samples[wi][0];
        const auto& o = samples[wi][1];
        const auto& h = samples[wi][2];
        const double target_plain = w == Workload::Bulk ? 0.4 : 0.6;
        const double target_hl = 1.3;
        const double r_plain = o.best() / p.best();
        const double r_hl = o.best() / h.best();
        const double r_plain_med = o.median() / p.median();
        const double r_hl_med = o.median() / h.median();
        const bool pass_plain = r_plain >= target_plain;
        const bool pass_hl = r_hl >= target_hl;
        all_pass = all_pass && pass_plain && pass_hl;
        auto cell = [](const Samples& s) {
          return fmt::format("{:>7} ({:>7})", rate(s.best()), rate(s.median()));
        };
        std::printf(
            "%-30s %17s %17s %17s  %-22s %-22s\n", workload_label(w, z).c_str(), cell(p).c_str(),
            cell(o).c_str(), cell(h).c_str(),
            fmt::format("{:.2f} (>={:.1f}) {}", r_plain, target_plain, pass_plain ? "PASS" : "MISS")
                .c_str(),
            fmt::format("{:.2f}x (>={:.1f}x) {}", r_hl, target_hl, pass_hl ? "PASS" : "MISS")
                .c_str());
        nlohmann::json row;
        row["synchronous"] = sync;
        row["workload"] = workload_key(w);
        row["rows"] = w == Workload::Bulk           ? z.bulk_rows
                      : w == Workload::SingleInsert ? z.single_txns
                                                    : z.update_txns;
        for (int mi = 0; mi < 3; ++mi)
          row[mode_name(kModes[mi])] = {{"best", samples[wi][mi].best()},
                                        {"median", samples[wi][mi].median()},
                                        {"samples", samples[wi][mi].v}};
        row["ours_over_plain"] = {{"best", r_plain},
                                  {"median", r_plain_med},
                                  {"target", target_plain},
                                  {"pass", pass_plain}};
        row["ours_over_harmonylite"] = {
            {"best", r_hl}, {"median", r_hl_med}, {"target", target_hl}, {"pass", pass_hl}};
        report["results"].push_back(row);
      }
      std::fflush(stdout);
    }
    std::printf("\n%s\n", all_pass ? "all targets met" : "some targets MISSED");
    report["pass"] = all_pass;
    if (!json_path.empty()) {
      std::ofstream f(json_path);
      f << report.dump(2) << "\n";
      if (!f) throw Error("cannot write " + json_path);
    }
    if (strict && !all_pass) status = 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "capture_bench: %s\n", e.what());
    status = 1;
  }
  if (dir_arg.empty()) {
    std::error_code ec;
    std::filesystem::remove_all(dir, ec);
  }
  return status;
}
