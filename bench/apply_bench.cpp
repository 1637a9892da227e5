// apply_bench: a fixed, repeatable apply (and fold) workload for instruction counts (issue 18).
// The replicator's receive path without NATS: frames encoded once in setup, then decoded and
// applied into a real SQLite file the way the consumer does (one write transaction per batch:
// Applier begin, apply, set_position, finish, commit), with the content digest kept as on a
// running node. `--fold` measures the publisher's side instead: local transactions through the
// capture triggers, each folded in its own write transaction.
//
// Wall time on this shared machine is noise; run it under callgrind for stable figures:
//   valgrind --tool=callgrind --toggle-collect='*measured_*' build/apply_bench [options]
//   callgrind_annotate --inclusive=yes callgrind.out.<pid> | head -60
// and divide the total Ir by the rows it prints.
//   apply_bench [--rows N] [--batch-rows N] [--fold] [--dir DIR]
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "bench/bench_rows.hpp"
#include "replicator/common/database.hpp"
#include "replicator/wire/codec.hpp"
#include "shared/apply.hpp"
#include "shared/capture.hpp"
#include "shared/content_digest.hpp"
#include "shared/fold.hpp"
#include "shared/hlc.hpp"

using namespace harmony;
using harmony::bench::bench_schema;
using harmony::bench::row_payload;

namespace {

constexpr uint64_t kSource = 1, kReplica = 2;  // node ids: batches come from node 1

// The replicator's connection settings (replicator/common/database.cpp open_database).
Db open_like_replicator(const std::string& path) {
  Db db = Db::open(path, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE);
  db.set_busy_timeout(5000);
  db.exec("PRAGMA synchronous = NORMAL");
  db.exec("PRAGMA foreign_keys = OFF");
  return db;
}

// A database with the benchmark's schema, capture enabled and the content digest kept.
void create_database(const std::string& path) {
  Db db = Db::open(path, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE);
  db.exec("PRAGMA journal_mode = WAL");
  db.exec(bench_schema());
  ensure_base_schema(db);
  enable_all(db);
  Transaction tx(db);
  ensure_digest_table(db);
  rebuild_digests(db, captured_tables(db));
  tx.commit();
}

// Frames of `batch_rows` rows each into tp_txn1000, as node 1's publisher sends them.
std::vector<std::string> make_frames(int64_t rows, int64_t batch_rows) {
  std::vector<std::string> frames;
  int64_t hlc = hlc_from_ms(wall_clock_ms() - 60'000);
  for (int64_t first = 1; first <= rows; first += batch_rows) {
    Batch b;
    b.origin_node = kSource;
    b.batch_id = first;
    b.tables.push_back({"tp_txn1000", "", {"id", "t_us", "payload"}, {"id"}});
    for (int64_t id = first; id < first + batch_rows && id <= rows; ++id) {
      RowChange r;
      r.table = 0;
      r.hlc = ++hlc;
      r.key = {Value{id}};
      r.values = {Value{id}, Value{int64_t{1'700'000'000'000'000} + id},
                  Value{Text{row_payload(id)}}};
      b.rows.push_back(std::move(r));
    }
    frames.push_back(encode_batch(b, /*compress=*/true));
  }
  return frames;
}

// The measured part of the apply workload (callgrind --toggle-collect='*measured_*').
__attribute__((noinline)) int64_t measured_apply(Db& db, const std::vector<std::string>& frames) {
  Applier applier(db, kReplica, captured_tables(db));
  int64_t applied = 0;
  uint64_t seq = 0;
  for (const auto& frame : frames) {
    Batch batch = decode_batch(frame);
    Transaction tx(db, Transaction::Kind::Immediate);
    applier.begin();
    std::vector<HeldRows> held;
    applied += applier.apply(batch, {"bench", ++seq}, held).applied;
    applier.set_position("bench", seq);
    applier.finish();
    tx.commit();
  }
  return applied;
}

// The measured part of the fold workload: local transactions, each folded at once.
__attribute__((noinline)) int64_t measured_fold(Db& db, int64_t rows, int64_t batch_rows) {
  const auto tables = captured_tables(db);
  Stmt insert = db.prepare("INSERT INTO tp_txn1000 (id, t_us, payload) VALUES (?1, ?2, ?3)");
  int64_t folded = 0;
  for (int64_t first = 1; first <= rows; first += batch_rows) {
    {
      Transaction tx(db, Transaction::Kind::Immediate);
      for (int64_t id = first; id < first + batch_rows && id <= rows; ++id) {
        insert.reset();
        insert.bind(1, id).bind(2, id).bind(3, Value{Text{row_payload(id)}}).run();
      }
      tx.commit();
    }
    Transaction tx(db, Transaction::Kind::Immediate);
    folded += fold_all(db, tables, kReplica).keys;
    tx.commit();
  }
  return folded;
}

int usage(const char* argv0) {
  std::fprintf(stderr, "usage: %s [--rows N] [--batch-rows N] [--fold] [--dir DIR]\n", argv0);
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  configure_sqlite_library();  // as the replicator does
  int64_t rows = 20'000, batch_rows = 1000;
  bool fold = false;
  std::string dir;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto next = [&]() -> std::string { return i + 1 < argc ? argv[++i] : ""; };
    if (a == "--rows") {
      rows = std::atoll(next().c_str());
    } else if (a == "--batch-rows") {
      batch_rows = std::atoll(next().c_str());
    } else if (a == "--fold") {
      fold = true;
    } else if (a == "--dir") {
      dir = next();
    } else {
      return usage(argv[0]);
    }
  }
  if (rows < 1 || batch_rows < 1 || batch_rows > 100'000) return usage(argv[0]);
  try {
    const bool own_dir = dir.empty();
    if (own_dir) {
      char tmpl[] = "/tmp/harmony-apply-bench-XXXXXX";
      if (!mkdtemp(tmpl)) throw Error("mkdtemp failed");
      dir = tmpl;
    }
    const std::string path = dir + "/replica.db";
    std::filesystem::remove(path);
    create_database(path);
    Db db = open_like_replicator(path);
    std::vector<std::string> frames;
    if (!fold) frames = make_frames(rows, batch_rows);
    const auto t0 = std::chrono::steady_clock::now();
    const int64_t done = fold ? measured_fold(db, rows, batch_rows) : measured_apply(db, frames);
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    std::printf("%s: %lld rows in batches of %lld, %.3f s, %.2f us/row (wall; use callgrind)\n",
                fold ? "fold" : "apply", static_cast<long long>(done),
                static_cast<long long>(batch_rows), s, 1e6 * s / static_cast<double>(done));
    db = Db();
    if (own_dir) std::filesystem::remove_all(dir);
    return done == rows ? 0 : 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "apply_bench: %s\n", e.what());
    return 1;
  }
}
