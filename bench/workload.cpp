// Benchmark cluster, writer and progress reader (see workload.hpp).
#include "bench/workload.hpp"

#include <thread>

#include <fmt/format.h>

namespace harmony::bench {

const char* mode_name(Mode m) {
  switch (m) {
    case Mode::Ours:
      return "ours";
    case Mode::Main:
      return "main";
    case Mode::Naive:
      return "naive";
  }
  return "?";
}

std::string mode_config(Mode m) {
  return m == Mode::Naive ? "scan_max_changes = 1\napply_batch_rows = 1\n" : "";
}

BenchCluster::BenchCluster(Mode mode, int replicas, int64_t max_entries, const std::string& binary,
                           bool verbose)
    : mode_(mode) {
  test::ClusterOptions o;
  o.nodes = 3;
  o.schema = bench_schema();
  o.replicas = replicas;
  o.max_entries = max_entries;
  o.extra_config = mode_config(mode);
  // Each database in its own directory, as deployed: a shared directory lets one node's file
  // events wake another node's publisher and hides a missed wake-up.
  o.separate_dirs = true;
  o.binary = binary;
  o.verbose = verbose;
  cluster_ = std::make_unique<test::TestCluster>(o);
}

void BenchCluster::wait_started() {
  for (int i = 0; i < 3; ++i)
    if (!cluster_->wait_ready(i, std::chrono::seconds(90)))
      throw Error(fmt::format("{} cluster: node {} did not start:\n{}", mode_name(mode_), i + 1,
                              cluster_->all_logs()));
  // One row end to end: streams exist, consumers are subscribed.
  Writer w(db(0), "warm");
  w.write_one(1);
  for (int i = 1; i < 3; ++i) {
    Progress p(db(i), "warm");
    if (!test::wait_until([&] { return p.max_id() == 1; }, std::chrono::seconds(60)))
      throw Error(fmt::format("{} cluster: node {} does not replicate:\n{}", mode_name(mode_),
                              i + 1, cluster_->all_logs()));
  }
}

void BenchCluster::restart(int i) {
  cluster_->start(i);
}

ProcSample BenchCluster::replicator_sample(int i) {
  const pid_t p = pid(i);
  return p > 0 ? read_proc(p) : ProcSample{};
}

ProcSample BenchCluster::nats_sample(int i) {
  const pid_t p = pid(i);
  if (p <= 0) return {};
  auto kids = child_pids(p);
  return kids.empty() ? ProcSample{} : read_proc(kids.front());
}

Writer::Writer(const std::string& db_path, const std::string& table) {
  db_ = Db::open(db_path, SQLITE_OPEN_READWRITE);
  db_.set_busy_timeout(60000);
  db_.exec("PRAGMA synchronous = NORMAL");
  begin_ = db_.prepare("BEGIN IMMEDIATE");
  commit_ = db_.prepare("COMMIT");
  insert_ = db_.prepare(
      fmt::format("INSERT INTO {} (id, t_us, payload) VALUES (?1, ?2, ?3)", quote_ident(table)));
}

void Writer::insert(int64_t id) {
  insert_.reset();
  insert_.bind(1, id).bind(3, row_payload(id)).bind(2, wall_us());
  insert_.run();
}

void Writer::write_txn(int64_t first_id, int rows) {
  begin_.reset();
  begin_.run();
  for (int i = 0; i < rows; ++i) insert(first_id + i);
  commit_.reset();
  commit_.run();
}

void Writer::write_one(int64_t id) {
  insert(id);
}

Progress::Progress(const std::string& db_path, const std::string& table) {
  db_ = Db::open(db_path, SQLITE_OPEN_READWRITE);
  db_.set_busy_timeout(5000);
  db_.exec("PRAGMA query_only = 1");
  max_ = db_.prepare(fmt::format("SELECT coalesce(max(id), 0) FROM {}", quote_ident(table)));
}

int64_t Progress::max_id() {
  max_.reset();
  const int64_t v = max_.step() ? max_.column_int(0) : 0;
  max_.reset();  // ends the read transaction: a reader must not hold back checkpoints
  return v;
}

}  // namespace harmony::bench
