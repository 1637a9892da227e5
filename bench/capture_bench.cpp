// capture_bench: what change capture costs a local writer. Rows/s into a WAL table
// (synchronous=NORMAL, then FULL), same process, three modes side by side:
//   plain        no capture
//   ours         harmony::enable_table (the real triggers from sql/*.sql)
//   harmonylite  HarmonyLite-style triggers (full row image into a per-table AUTOINCREMENT log
//                plus a global log, WHEN ... pragma_function_list ..., as its templates render it)
// Workloads: (a) bulk inserts in 10,000-row transactions, (b) single-row INSERT transactions,
// (c) single-row UPDATE transactions on preloaded rows. The machine is noisy, so each
// measurement runs the three modes at once on three databases, interleaved in small chunks
// (inside the bulk transactions too), and is repeated; the table shows each mode's best and
// median rows/s, and the ratios (median of the paired runs) checked against the targets:
// ours/plain >= 0.6 single-row, >= 0.4 bulk; ours >= 1.3x harmonylite.
//   capture_bench [--quick] [--reps N] [--json FILE] [--strict] [--dir DIR]
// --quick: small sizes (smoke test). --strict: exit 1 when a target is missed.
#include <unistd.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
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
  int bulk_txn_rows = 10'000;  // rows per transaction in (a)
};

const char* kSchema =
    "CREATE TABLE Books (id INTEGER PRIMARY KEY, title TEXT, author TEXT, "
    "publication_year INTEGER)";

// HarmonyLite's capture for Books, as its templates (db/*.tmpl) render it.
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

// One mode's database for one measurement: a fresh file, its own connection, prepared
// statements, and the time spent in its chunks.
class Runner {
 public:
  Runner(const std::string& path, Mode mode, Workload w, const char* sync, const Sizes& z)
      : mode_(mode), w_(w), z_(z) {
    for (const char* suffix : {"", "-wal", "-shm"}) std::filesystem::remove(path + suffix);
    db_ = Db::open(path, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE);
    db_.exec("PRAGMA journal_mode=WAL");
    db_.exec(std::string("PRAGMA synchronous=") + sync);
    db_.exec(kSchema);
    if (w == Workload::SingleUpdate) {  // preloaded rows, before capture is installed
      Transaction tx(db_);
      auto ins = db_.prepare("INSERT INTO Books VALUES (?1, ?2, ?3, ?4)");
      for (int64_t i = 1; i <= z.preload_rows; ++i) {
        ins.reset();
        bind_book(ins, i);
        ins.run();
      }
      tx.commit();
    }
    if (mode == Mode::Ours) {
      enable_table(db_, "Books");
    } else if (mode == Mode::HarmonyLite) {
      db_.exec(kHarmonyLiteCapture);
    }
    db_.exec("PRAGMA wal_checkpoint(TRUNCATE)");
    begin_ = db_.prepare("BEGIN IMMEDIATE");
    commit_ = db_.prepare("COMMIT");
    insert_ = db_.prepare("INSERT INTO Books VALUES (?1, ?2, ?3, ?4)");
    update_ = db_.prepare(
        "UPDATE Books SET publication_year = publication_year + 1, title = ?2 WHERE id = ?1");
  }

  int total() const {
    return w_ == Workload::Bulk           ? z_.bulk_rows
           : w_ == Workload::SingleInsert ? z_.single_txns
                                          : z_.update_txns;
  }
  bool done() const { return finished_; }

  // Writes the next `chunk` rows (a bulk transaction may stay open between chunks: it commits
  // every bulk_txn_rows rows), adding the time taken to this runner's total.
  void step(int chunk) {
    const auto t0 = std::chrono::steady_clock::now();
    const int end = std::min(total(), next_ + chunk);
    if (w_ == Workload::Bulk) {
      for (; next_ < end; ++next_) {
        if (next_ % z_.bulk_txn_rows == 0) run(begin_);
        insert_.reset();
        bind_book(insert_, next_ + 1);
        insert_.run();
        if ((next_ + 1) % z_.bulk_txn_rows == 0 || next_ + 1 == total()) run(commit_);
      }
    } else {
      for (; next_ < end; ++next_) {
        run(begin_);
        if (w_ == Workload::SingleInsert) {
          insert_.reset();
          bind_book(insert_, next_ + 1);
          insert_.run();
        } else {
          const int64_t id = (int64_t{next_} * 7919) % z_.preload_rows + 1;  // spread out
          update_.reset();
          update_.bind(1, id).bind(2, fmt::format("Revised {}", next_));
          update_.run();
        }
        run(commit_);
      }
    }
    seconds_ += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (next_ == total()) {
      finished_ = true;
      verify();
    }
  }
  double rows_per_second() const { return total() / seconds_; }

 private:
  static void run(Stmt& s) {
    s.reset();
    s.run();
  }
  // Capture really captured: one log entry per written row (and plain has no log at all).
  void verify() {
    if (mode_ == Mode::Ours) {
      auto t = find_captured(db_, "Books");
      if (!t || db_.query_int("SELECT count(*) FROM " + t->log) != total())
        throw Error("ours: the change log does not hold one entry per written row");
    }
    if (mode_ == Mode::HarmonyLite &&
        db_.query_int("SELECT count(*) FROM __harmonylite__Books_change_log") != total())
      throw Error("harmonylite: the change log does not hold one entry per written row");
  }

  Mode mode_;
  Workload w_;
  Sizes z_;
  Db db_;
  Stmt begin_, commit_, insert_, update_;
  int next_ = 0;
  bool finished_ = false;
  double seconds_ = 0;
};

// One measurement of one workload: the three modes side by side on three fresh databases,
// interleaved in small chunks (order rotating), so load swings on a busy machine hit all modes
// alike. Returns rows/s per mode.
std::array<double, 3> measure(const std::string& dir, Workload w, const char* sync,
                              const Sizes& z) {
  std::filesystem::create_directories(dir);  // again: a cleanup elsewhere may have removed it
  std::vector<std::unique_ptr<Runner>> runners;
  for (Mode m : kModes)
    runners.push_back(std::make_unique<Runner>(dir + "/" + mode_name(m) + ".db", m, w, sync, z));
  const int chunk = w == Workload::Bulk ? 2'000 : 100;
  for (int round = 0;
       !std::all_of(runners.begin(), runners.end(), [](const auto& r) { return r->done(); });
       ++round)
    for (size_t i = 0; i < runners.size(); ++i) {
      auto& r = runners[(i + static_cast<size_t>(round)) % runners.size()];
      if (!r->done()) r->step(chunk);
    }
  return {runners[0]->rows_per_second(), runners[1]->rows_per_second(),
          runners[2]->rows_per_second()};
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
      return fmt::format("(a) {} inserts, {}-row txns", z.bulk_rows, z.bulk_txn_rows);
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
  if (quick) z = Sizes{2'000, 200, 200, 500, 1'000};
  if (reps == 0) reps = quick ? 1 : 3;

  std::string dir = dir_arg;
  if (dir.empty()) {
    char tmpl[] = "/tmp/capture_bench.XXXXXX";
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
      // samples[workload][mode]; ratios[workload][0: ours/plain, 1: ours/harmonylite], paired
      // within each measurement.
      Samples samples[3][3], ratios[3][2];
      for (int r = 0; r < reps; ++r)
        for (int wi = 0; wi < 3; ++wi) {
          auto rates = measure(dir, kWorkloads[wi], sync, z);
          for (int mi = 0; mi < 3; ++mi) samples[wi][mi].v.push_back(rates[mi]);
          ratios[wi][0].v.push_back(rates[1] / rates[0]);
          ratios[wi][1].v.push_back(rates[1] / rates[2]);
        }

      std::printf(
          "\ncapture_bench: WAL, synchronous=%s. rows/s: best of %d (median); ratios: median of "
          "the %d paired runs (modes interleaved)%s\n",
          sync, reps, reps, quick ? ", --quick sizes (numbers are not meaningful)" : "");
      std::printf("%-30s %17s %17s %17s  %-22s %-22s\n", "workload", "plain", "ours", "harmonylite",
                  "ours/plain (target)", "ours/harmonylite");
      for (int wi = 0; wi < 3; ++wi) {
        const Workload w = kWorkloads[wi];
        const auto& p = samples[wi][0];
        const auto& o = samples[wi][1];
        const auto& h = samples[wi][2];
        const double target_plain = w == Workload::Bulk ? 0.4 : 0.6;
        const double target_hl = 1.3;
        const double r_plain = ratios[wi][0].median();
        const double r_hl = ratios[wi][1].median();
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
        row["txn_rows"] = w == Workload::Bulk ? z.bulk_txn_rows : 1;
        row["rows"] = w == Workload::Bulk           ? z.bulk_rows
                      : w == Workload::SingleInsert ? z.single_txns
                                                    : z.update_txns;
        for (int mi = 0; mi < 3; ++mi)
          row[mode_name(kModes[mi])] = {{"best", samples[wi][mi].best()},
                                        {"median", samples[wi][mi].median()},
                                        {"samples", samples[wi][mi].v}};
        row["ours_over_plain"] = {{"median", r_plain},
                                  {"samples", ratios[wi][0].v},
                                  {"target", target_plain},
                                  {"pass", pass_plain}};
        row["ours_over_harmonylite"] = {{"median", r_hl},
                                        {"samples", ratios[wi][1].v},
                                        {"target", target_hl},
                                        {"pass", pass_hl}};
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
