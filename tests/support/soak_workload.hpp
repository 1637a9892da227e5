// The soak workload: the schema every soak node starts with, and the application writers that
// hammer it. Owns the writer threads, the values and statements they generate and what the
// harness must remember to check the outcome.
//
// Every write statement stamps the rows it writes with a unique write id (`wid`), and in the
// same transaction appends one line per affected key to `soak_log` (a table the replicators are
// told to exclude): 'U' with the write id for a row written, 'D' for a row deleted (logged just
// before the DELETE, or before a primary-key change moves the row away). The log therefore holds
// exactly the committed writes (a rollback takes its lines with it) in commit order per node
// (its AUTOINCREMENT key is assigned under the write lock), which is what the checker needs.
// Writers are in-process connections that never loaded the extension (with trusted_schema=OFF),
// in-process connections that loaded build/libharmony, and the stock `sqlite3` shell process.
//
// The schema may change under the writers (the soak's SchemaChange fault): tables created during
// the run join the table registry below, and columns the soak adds (`x<N>`, renamed
// `x<N>_r<M>`) are written by every write that sets a row's write id, through one extra
// `UPDATE ... WHERE wid = ?` step. Each writer re-reads its node's schema whenever the
// connection's schema_version changes, so its statements follow the node's current columns; a
// statement that still meets a column or table the roll just renamed, dropped or has not yet
// created fails and counts as an expected schema error, not an application error.
#pragma once
#include <atomic>
#include <chrono>
#include <cstdint>
#include <map>
#include <mutex>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "shared/value.hpp"

namespace harmony::test {

// A replicated table of the soak schema and how the checker names its keys.
struct SoakTable {
  std::string name;
  std::string key_expr;       // canonical key text from the table's own columns
  std::string rows_key_expr;  // the same from __harmony_rows_<id> (k1, k2, ...)
};
// The replicated tables: the soak schema's three plus the ones created during the run.
std::vector<SoakTable> soak_tables();
// Registers a table created during the run (before it is created on the first node).
void add_soak_table(const SoakTable& table);
// Back to the three tables of soak_schema() (a new run in the same process).
void reset_soak_tables();
// A table created during the run: `name (id INTEGER PRIMARY KEY, wid TEXT NOT NULL, v)`.
SoakTable created_soak_table(const std::string& name);
std::string created_table_ddl(const std::string& name);
std::string soak_schema();  // the replicated tables plus soak_log
inline constexpr const char* kSoakLogTable = "soak_log";

// Columns the soak adds during the run are `x<N>`; a rename makes `x<N>_r<M>`. The logical
// column (`x<N>`) is what a write set and what the checker looks for under its final name.
bool is_added_column(const std::string& column);
std::string logical_column(const std::string& column);

// What one node's schema offers the writers right now: the registered tables it has, and the
// added columns of each.
struct NodeSchema {
  std::vector<std::string> created_tables;  // created during the run, present on this node
  std::map<std::string, std::vector<std::string>> added;  // table -> added columns
};

struct WorkloadOptions {
  int nodes = 3;
  int writers_per_node = 2;
  double shell_fraction = 0.08;     // transactions run by a `sqlite3` shell process
  double rollback_fraction = 0.08;  // transactions that end in ROLLBACK
  double savepoint_fraction = 0.1;  // multi-statement transactions with a rolled-back savepoint
  double multi_fraction = 0.4;      // transactions with several statements
  int max_statements = 6;
  int think_min_ms = 20;  // pause between a writer's transactions
  int think_max_ms = 200;
  int64_t transactions_per_writer = 0;  // 0 = until stop()
  double long_text_fraction = 0.01;     // kv.val of 2-50 KB
  double huge_text_fraction = 0.001;    // kv.val of 300-800 KB, hardly compressible
  int busy_timeout_ms = 5000;
  int kv_keys = 300;
  int pair_keys = 30;
  int created_table_keys = 100;  // ids written in tables created during the run
  // The schema changes during the run: "no such column/table" errors are expected then.
  bool schema_changes = false;
};

// Values 64-bit-hashed with their storage class, for "the final row holds what its write set".
uint64_t value_hash(const Value& v);
// A SQL literal that yields exactly `v` (invalid UTF-8 text as CAST(X'..' AS TEXT)).
std::string sql_literal(const Value& v);
std::string describe_value(const Value& v, size_t max_chars = 40);

struct WorkloadCounters {
  std::atomic<int64_t> transactions{0};  // attempted
  std::atomic<int64_t> committed{0};
  std::atomic<int64_t> rolled_back{0};  // on purpose
  std::atomic<int64_t> failed{0};       // rolled back because a statement failed
  std::atomic<int64_t> statements{0};
  std::atomic<int64_t> locked{0};  // "database is locked" seen by an application
  std::atomic<int64_t> errors{0};  // any other application error (should stay 0)
  // Statements that met a column or table a rolling schema change had just renamed, dropped or
  // not yet created on that node (expected while SchemaChange rolls; the writer regenerates).
  std::atomic<int64_t> schema_errors{0};
  std::atomic<int64_t> shell_runs{0};
  std::atomic<int64_t> extension_txns{0};
  std::atomic<int64_t> plain_txns{0};
  std::atomic<int64_t> long_txns{0};
};

class Workload {
 public:
  Workload(WorkloadOptions options, uint64_t seed, std::vector<std::string> dbs,
           std::string scratch_dir);
  ~Workload();
  Workload(const Workload&) = delete;
  Workload& operator=(const Workload&) = delete;

  void start();
  // Lets every writer finish its transaction, then joins them.
  void stop();
  // True when every writer has done its transactions_per_writer.
  bool finished() const { return done_writers_ == static_cast<int>(threads_.size()); }
  // An application transaction on node `node` that takes the write lock (BEGIN IMMEDIATE), writes
  // a little, holds the lock for `hold` and commits (or rolls back). Runs on the caller's thread.
  void long_transaction(int node, std::chrono::milliseconds hold, uint64_t seed, bool commit);

  // How a schema change is applied: as a user would, by the sqlite3 shell or by an application
  // connection with or without the extension loaded.
  enum class DdlVia { Shell, Plain, Extension };
  static const char* ddl_via_name(DdlVia via);
  // Runs `ddl` on node `node`; then, when `rows` > 0, inserts that many rows into the table
  // `table` (created by `ddl`) right away on the same connection or shell run, logged like every
  // write. Returns "" or the error.
  std::string run_ddl(int node, const std::string& ddl, DdlVia via, const std::string& table,
                      int rows, uint64_t seed);

  const WorkloadCounters& counters() const { return counters_; }
  // Column hashes each write id set (only columns set to known values), every write generated.
  std::unordered_map<std::string, std::vector<std::pair<std::string, uint64_t>>> expected() const;
  // Write ids of transactions (or savepoints) that did not commit.
  std::set<std::string> not_committed() const;
  // Up to a few messages of unexpected application errors.
  std::vector<std::string> error_samples() const;
  // Up to a few messages of the expected schema errors.
  std::vector<std::string> schema_error_samples() const;

  struct Step {
    std::string sql;  // ?N placeholders
    std::vector<Value> args;
  };
  struct Op {
    std::string wid;
    std::vector<Step> steps;
    std::vector<std::pair<std::string, Value>> sets;  // column -> value the write sets
  };
  struct Txn {
    bool immediate = true;
    std::vector<Op> ops;
    int savepoint_from = -1, savepoint_to = -1;  // ops [from, to) rolled back to a savepoint
    bool commit = true;
  };

 private:
  enum class Kind { Plain, Extension };
  void writer_loop(int node, int writer, Kind kind, uint64_t seed);
  Op make_op(std::mt19937_64& rng, const std::string& wid, int writer, int64_t t_ms, bool shell,
             const NodeSchema& schema);
  // Appends to `op` the step that sets a random subset of `table`'s added columns on the rows
  // carrying op's write id (before its soak_log step).
  void set_added_columns(std::mt19937_64& rng, Op& op, const std::string& table,
                         const NodeSchema& schema, bool shell);
  // Returns "" on commit/rollback as planned, else the error.
  std::string run_in_process(void* db, const Txn& txn);
  std::string run_in_shell(int node, const Txn& txn, const std::string& tag);
  void record(const Txn& txn, bool committed);
  void note_error(const std::string& what);
  // Records the transaction and counts its outcome; `context` names it in an error note.
  void finish_txn(const Txn& txn, bool commit, const std::string& error,
                  const std::string& context);

  WorkloadOptions options_;
  uint64_t seed_;
  std::vector<std::string> dbs_;
  std::string scratch_;
  std::atomic<bool> stop_{false};
  std::atomic<int> done_writers_{0};
  std::vector<std::thread> threads_;
  WorkloadCounters counters_;
  mutable std::mutex mu_;
  std::unordered_map<std::string, std::vector<std::pair<std::string, uint64_t>>> expected_;
  std::set<std::string> not_committed_;
  std::vector<std::string> errors_;
  std::vector<std::string> schema_errors_;
};

// Reads the schema of the database open on `db` (a sqlite3*) as the writers see it.
NodeSchema load_node_schema(void* db);

}  // namespace harmony::test
