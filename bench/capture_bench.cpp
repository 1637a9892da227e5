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
// ours/plain >= 0.65 single-row, >= 0.55 bulk; ours >= 1.3x harmonylite.
// Then, because wall-clock ratios are noisy here, instructions per row of each workload and mode
// under callgrind (sync=NORMAL) and their ratios; then the database size of 1M rows with and
// without capture after fold (target <= 1.5x).
//   capture_bench [--quick] [--reps N] [--json FILE] [--strict] [--dir DIR]
//                 [--no-wall] [--no-instructions] [--callgrind-out DIR] [--no-size]
//                 [--size-rows N]
// --quick: small sizes (smoke test). --strict: exit 1 when a target is missed.
// --callgrind-out DIR keeps the callgrind files (callgrind_annotate DIR/single_insert.ours.out
// gives the per-function profile of docs/performance.md).
#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>
#include <valgrind/callgrind.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "shared/capture.hpp"
#include "shared/content_digest.hpp"
#include "shared/fold.hpp"
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

// Targets (issue 18): ours/plain rows/s for single-row and bulk transactions, and the file
// size with capture over without after fold.
constexpr double kTargetSingle = 0.65;
constexpr double kTargetBulk = 0.55;
constexpr double kTargetSize = 1.5;

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
    if (next_ == total()) finished_ = true;
  }
  double rows_per_second() const { return total() / seconds_; }

  // Capture really captured: one log entry per written row (and plain has no log at all). Run
  // after the measured loop, outside the timed and instrumented code.
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

 private:
  static void run(Stmt& s) {
    s.reset();
    s.run();
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
  for (auto& r : runners) r->verify();
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

// --- Instruction counts (callgrind) ---
//
// Wall-clock ratios swing with the load of this shared machine; instruction counts do not. Each
// workload runs once per mode in a child process of this binary under
// `valgrind --tool=callgrind --instr-atstart=no`; the child switches instrumentation on around
// the measured loop only (set-up, capture install and verification are not counted), and the
// parent reads the total from the callgrind output file. The same binary, inputs and SQLite
// build as the wall-clock runs. I/O wait is not an instruction: these ratios show the CPU side.

// Sizes for the instrumented runs: callgrind runs ~50x slower, and instructions per row are
// stable well below the wall-clock sizes (two bulk transactions, 2,000 single-row ones).
// HarmonyLite-style capture costs ~40x ours per row (its WHEN scans pragma_function_list), so
// it runs a tenth of the rows: per-row figures, and minutes instead of an hour under callgrind.
const Sizes kInstrSizes{20'000, 2'000, 2'000, 10'000, 10'000};
const Sizes kInstrHarmonyLiteSizes{2'000, 200, 200, 10'000, 1'000};
const Sizes kInstrQuickSizes{2'000, 200, 200, 500, 1'000};
const Sizes kInstrQuickHarmonyLiteSizes{200, 20, 20, 500, 100};

Sizes instr_sizes(Mode m, bool quick) {
  if (m == Mode::HarmonyLite) return quick ? kInstrQuickHarmonyLiteSizes : kInstrHarmonyLiteSizes;
  return quick ? kInstrQuickSizes : kInstrSizes;
}

int rows_of(Workload w, const Sizes& z) {
  return w == Workload::Bulk           ? z.bulk_rows
         : w == Workload::SingleInsert ? z.single_txns
                                       : z.update_txns;
}

// The child: one workload in one mode, instrumented around the loop. Returns the exit status.
int instr_child(const std::string& dir, Workload w, Mode m, bool quick) {
  const Sizes z = instr_sizes(m, quick);
  std::filesystem::create_directories(dir);
  Runner r(dir + "/" + mode_name(m) + ".db", m, w, "NORMAL", z);
  CALLGRIND_START_INSTRUMENTATION;
  while (!r.done()) r.step(r.total());
  CALLGRIND_STOP_INSTRUMENTATION;
  r.verify();
  return 0;
}

// The path of valgrind, or "" when it is not installed (scripts/setup.sh installs it).
std::string find_valgrind() {
  for (const char* p : {"/usr/bin/valgrind", "/usr/local/bin/valgrind"})
    if (access(p, X_OK) == 0) return p;
  return "";
}

// Runs `argv` with stdout and stderr appended to `log`; returns the exit status (-1: no exit).
int run_logged(const std::vector<std::string>& argv, const std::string& log) {
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  const pid_t pid = fork();
  if (pid < 0) throw Error(std::string("fork: ") + std::strerror(errno));
  if (pid == 0) {
    const int fd = open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (fd >= 0) {
      dup2(fd, 1);
      dup2(fd, 2);
      close(fd);
    }
    execv(args[0], args.data());
    _exit(127);
  }
  int st = 0;
  while (waitpid(pid, &st, 0) < 0)
    if (errno != EINTR) return -1;
  return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

// The instruction total ("totals:" or "summary:" line, first event = Ir) of a callgrind file.
std::optional<double> callgrind_total(const std::string& path) {
  std::ifstream f(path);
  std::string line;
  std::optional<double> summary;
  while (std::getline(f, line)) {
    for (const char* tag : {"totals:", "summary:"})
      if (line.rfind(tag, 0) == 0) {
        const double v = std::strtod(line.c_str() + std::strlen(tag), nullptr);
        if (!summary || std::string(tag) == "totals:") summary = v;
      }
  }
  return summary;
}

// Instructions per row of every workload in every mode (sync=NORMAL), and the ratios. A ratio
// is plain/ours instructions, so it reads like the rows/s ratio next to it (higher is better).
nlohmann::json measure_instructions(const std::string& self, const std::string& dir, bool quick,
                                    const std::string& keep_dir) {
  nlohmann::json out;
  const std::string valgrind = find_valgrind();
  if (valgrind.empty()) {
    out["error"] = "valgrind not found (scripts/setup.sh installs it): no instruction counts";
    return out;
  }
  const std::string files = keep_dir.empty() ? dir + "/callgrind" : keep_dir;
  std::filesystem::create_directories(files);
  out["results"] = nlohmann::json::array();
  for (Workload w : kWorkloads) {
    nlohmann::json row;
    row["workload"] = workload_key(w);
    row["rows"] = rows_of(w, instr_sizes(Mode::Ours, quick));
    double per_row[3] = {0, 0, 0};
    for (int mi = 0; mi < 3; ++mi) {
      const Mode m = kModes[mi];
      const int rows = rows_of(w, instr_sizes(m, quick));
      const std::string base = fmt::format("{}/{}.{}", files, workload_key(w), mode_name(m));
      std::filesystem::remove(base + ".out");
      std::filesystem::remove(base + ".log");
      std::vector<std::string> argv = {valgrind,
                                       "--tool=callgrind",
                                       "--instr-atstart=no",
                                       "--callgrind-out-file=" + base + ".out",
                                       self,
                                       "--instr-child",
                                       workload_key(w),
                                       mode_name(m),
                                       "--dir",
                                       dir + "/instr"};
      if (quick) argv.push_back("--quick");
      const int rc = run_logged(argv, base + ".log");
      const auto total = callgrind_total(base + ".out");
      if (rc != 0 || !total || *total <= 0)
        throw Error(fmt::format("callgrind run {} {} failed (exit {}); see {}.log", workload_key(w),
                                mode_name(m), rc, base));
      per_row[mi] = *total / rows;
      row[mode_name(m)] = per_row[mi];
    }
    row["ours_over_plain"] = per_row[0] / per_row[1];
    row["ours_over_harmonylite"] = per_row[2] / per_row[1];
    out["results"].push_back(row);
  }
  if (keep_dir.empty()) std::filesystem::remove_all(files);
  return out;
}

// --- Database size (issue 18): the same rows with and without capture ---
//
// `rows` Books rows written in 10,000-row transactions into two files, one captured. The captured
// one is folded after every transaction, as the replicator folds on each commit it sees (the
// log stays one transaction long and its pages are reused), with the content digest tables the
// replicator keeps for anti-entropy. Both are checkpointed (TRUNCATE), never VACUUMed. Sizes
// are taken twice on the captured file: right after the last fold (every row unpublished, so
// in the dirty index) and after the rows are marked published, as the outbox does on ack.

struct ObjectSizes {
  int64_t file = 0;
  int64_t free = 0;                        // bytes on the freelist (reused before the file grows)
  std::map<std::string, int64_t> objects;  // bytes per table/index (dbstat), when available
};

ObjectSizes sizes_of(Db& db, const std::string& path) {
  db.exec("PRAGMA wal_checkpoint(TRUNCATE)");
  ObjectSizes s;
  s.file = static_cast<int64_t>(std::filesystem::file_size(path));
  s.free = db.query_int("PRAGMA freelist_count") * db.query_int("PRAGMA page_size");
  try {
    auto q = db.prepare("SELECT name, sum(pgsize) FROM dbstat GROUP BY name ORDER BY 2 DESC");
    while (q.step()) s.objects[q.column_text(0)] = q.column_int(1);
  } catch (const std::exception&) {
    // SQLite built without SQLITE_ENABLE_DBSTAT_VTAB: the totals are still reported.
  }
  return s;
}

nlohmann::json to_json(const ObjectSizes& s) {
  nlohmann::json j;
  j["file_bytes"] = s.file;
  j["free_bytes"] = s.free;
  j["objects"] = s.objects;
  return j;
}

nlohmann::json measure_size(const std::string& dir, int rows) {
  constexpr int kTxnRows = 10'000;
  std::filesystem::create_directories(dir);
  auto fill = [&](const std::string& path, bool captured) {
    for (const char* suffix : {"", "-wal", "-shm"}) std::filesystem::remove(path + suffix);
    Db db = Db::open(path, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE);
    db.exec("PRAGMA journal_mode=WAL");
    db.exec("PRAGMA synchronous=NORMAL");
    db.exec(kSchema);
    uint64_t node = 0;
    if (captured) {
      enable_table(db, "Books");
      ensure_digest_table(db);
      node = node_id(db);
    }
    auto ins = db.prepare("INSERT INTO Books VALUES (?1, ?2, ?3, ?4)");
    for (int done = 0; done < rows;) {
      Transaction tx(db);
      for (int i = 0; i < kTxnRows && done < rows; ++i, ++done) {
        ins.reset();
        bind_book(ins, done + 1);
        ins.run();
      }
      tx.commit();
      if (captured) {
        Transaction fold(db);
        fold_all(db, captured_tables(db), node);
        fold.commit();
      }
    }
    return db;
  };
  const std::string plain_path = dir + "/size_plain.db", ours_path = dir + "/size_ours.db";
  nlohmann::json out;
  out["rows"] = rows;
  {
    Db plain = fill(plain_path, false);
    out["plain"] = to_json(sizes_of(plain, plain_path));
  }
  Db ours = fill(ours_path, true);
  out["ours_after_fold"] = to_json(sizes_of(ours, ours_path));
  for (const auto& t : captured_tables(ours))
    ours.exec(fmt::format("UPDATE {} SET dirty = 0 WHERE dirty", t.rows));
  out["ours_published"] = to_json(sizes_of(ours, ours_path));
  const double plain_bytes = out["plain"]["file_bytes"].get<double>();
  out["ratio_after_fold"] = out["ours_after_fold"]["file_bytes"].get<double>() / plain_bytes;
  out["ratio_published"] = out["ours_published"]["file_bytes"].get<double>() / plain_bytes;
  ours = Db();
  for (const auto& p : {plain_path, ours_path})
    for (const char* suffix : {"", "-wal", "-shm"}) std::filesystem::remove(p + suffix);
  return out;
}

std::string mb(int64_t bytes) {
  return fmt::format("{:.1f} MB", bytes / 1e6);
}

int usage(const char* argv0) {
  std::fprintf(
      stderr,
      "usage: %s [--quick] [--reps N] [--json FILE] [--strict] [--dir DIR] "
      "[--no-wall] [--no-instructions] [--callgrind-out DIR] [--no-size] [--size-rows N]\n",
      argv0);
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  bool quick = false, strict = false, wall = true, instructions = true, size = true;
  int reps = 0, size_rows = 0;
  std::string json_path, dir_arg, callgrind_out, child_workload, child_mode;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--quick") {
      quick = true;
    } else if (a == "--instr-child" && i + 2 < argc) {  // internal: one instrumented run
      child_workload = argv[++i];
      child_mode = argv[++i];
    } else if (a == "--no-wall") {
      wall = false;
    } else if (a == "--no-instructions") {
      instructions = false;
    } else if (a == "--callgrind-out" && i + 1 < argc) {
      callgrind_out = argv[++i];
    } else if (a == "--no-size") {
      size = false;
    } else if (a == "--size-rows" && i + 1 < argc) {
      size_rows = std::atoi(argv[++i]);
      if (size_rows < 1) return usage(argv[0]);
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
  // 1M rows: the size the issue's target names; --quick only checks that the step works.
  if (size_rows == 0) size_rows = quick ? 20'000 : 1'000'000;

  if (!child_workload.empty()) {
    try {
      for (Workload w : kWorkloads)
        for (Mode m : kModes)
          if (child_workload == workload_key(w) && child_mode == mode_name(m))
            return instr_child(dir_arg.empty() ? "/tmp" : dir_arg, w, m, quick);
      std::fprintf(stderr, "capture_bench: --instr-child: unknown workload or mode\n");
      return 2;
    } catch (const std::exception& e) {
      std::fprintf(stderr, "capture_bench: %s\n", e.what());
      return 1;
    }
  }

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
      if (!wall) break;
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
        const double target_plain = w == Workload::Bulk ? kTargetBulk : kTargetSingle;
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
            fmt::format("{:.2f} (>={:.2f}) {}", r_plain, target_plain, pass_plain ? "PASS" : "MISS")
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
    if (instructions) {
      char self[4096];
      const ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
      if (n <= 0) throw Error("cannot find this binary (/proc/self/exe)");
      self[n] = 0;
      std::printf(
          "\ninstructions per row (callgrind, synchronous=NORMAL, one run per mode, same binary "
          "and inputs); ratio = plain/ours instructions, read like rows/s%s\n",
          quick ? ", --quick sizes" : "");
      std::fflush(stdout);
      auto in = measure_instructions(self, dir, quick, callgrind_out);
      if (in.contains("error")) {
        std::printf("  skipped: %s\n", in["error"].get<std::string>().c_str());
      } else {
        std::printf("%-30s %12s %12s %12s  %-22s %-22s\n", "workload", "plain", "ours",
                    "harmonylite", "ours/plain (target)", "ours/harmonylite");
        for (const auto& r : in["results"]) {
          const double target = r["workload"] == "bulk_insert" ? kTargetBulk : kTargetSingle;
          const double op = r["ours_over_plain"], oh = r["ours_over_harmonylite"];
          std::printf("%-30s %12.0f %12.0f %12.0f  %-22s %-22s\n",
                      r["workload"].get<std::string>().c_str(), r["plain"].get<double>(),
                      r["ours"].get<double>(), r["harmonylite"].get<double>(),
                      fmt::format("{:.2f} (>={:.2f})", op, target).c_str(),
                      fmt::format("{:.2f}x", oh).c_str());
        }
      }
      report["instructions"] = in;
    }
    if (size) {
      std::printf(
          "\ndatabase size, %d rows written in 10,000-row txns, folded after each, "
          "checkpointed, not VACUUMed\n",
          size_rows);
      std::fflush(stdout);
      auto sz = measure_size(dir + "/size", size_rows);
      const double ratio = sz["ratio_after_fold"];
      const bool pass = ratio <= kTargetSize;
      all_pass = all_pass && pass;
      sz["target"] = kTargetSize;
      sz["pass"] = pass;
      auto line = [&](const char* what, const nlohmann::json& s) {
        std::string objects;
        for (const auto& [name, bytes] : s["objects"].items())
          objects +=
              fmt::format("{}{} {}", objects.empty() ? "" : ", ", name, mb(bytes.get<int64_t>()));
        std::printf("  %-26s %10s (free %s)  %s\n", what, mb(s["file_bytes"]).c_str(),
                    mb(s["free_bytes"]).c_str(), objects.c_str());
      };
      line("plain", sz["plain"]);
      line("ours, after fold", sz["ours_after_fold"]);
      line("ours, published", sz["ours_published"]);
      std::printf("  ratio ours/plain after fold %.2f (<=%.1f) %s; published %.2f\n", ratio,
                  kTargetSize, pass ? "PASS" : "MISS", sz["ratio_published"].get<double>());
      report["size"] = sz;
    }
    if (wall || size)  // the instruction ratios are shown, not judged
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
