// Collecting pending changes into a batch (shared/outbox.cpp): which rows a size-limited batch
// takes when more is pending than `max_rows` allows.
#include <catch2/catch.hpp>

#include <fmt/format.h>

#include <set>

#include "shared/capture.hpp"
#include "shared/fold.hpp"
#include "shared/outbox.hpp"
#include "tests/support/replicate.hpp"
#include "tests/support/support.hpp"

using namespace harmony;
using namespace harmony::test;

namespace {

constexpr uint64_t kNode = 7;

void insert_rows(Db& db, const std::string& table, int first_id, int count) {
  for (int id = first_id; id < first_id + count; ++id)
    db.exec(fmt::format("INSERT INTO {} (id, v) VALUES ({}, 'x')", table, id));
}

void fold_now(Db& db) {
  Transaction tx(db);
  fold_all(db, captured_tables(db), kNode);
  tx.commit();
}

}  // namespace

TEST_CASE("outbox: a full batch takes the oldest pending rows across tables", "[outbox][collect]") {
  TempDir dir{"outbox"};
  Db db = open_test_db(dir.file("o.db"));
  db.exec(
      "CREATE TABLE busy (id INTEGER PRIMARY KEY, v TEXT);"
      "CREATE TABLE quiet (id INTEGER PRIMARY KEY, v TEXT);");
  enable_table(db, "busy");  // first in registry order
  enable_table(db, "quiet");
  const auto tables = captured_tables(db);
  REQUIRE(tables.front().name == "busy");

  // quiet's rows are folded first, so they carry the oldest versions; busy then piles up more
  // rows than one batch holds.
  constexpr size_t kBatchRows = 5;
  insert_rows(db, "quiet", 1, 3);
  fold_now(db);
  insert_rows(db, "busy", 1, 10);

  Transaction tx(db);
  Batch batch = collect_pending(db, tables, kNode, kBatchRows);
  tx.commit();

  REQUIRE(batch.rows.size() == kBatchRows);
  std::multiset<std::string> table_of_row;
  int64_t previous = 0;
  for (const auto& row : batch.rows) {
    table_of_row.insert(batch.tables.at(row.table).name);
    CHECK(row.hlc > previous);  // oldest first, in version (HLC) order
    previous = row.hlc;
  }
  INFO("rows per table: quiet " << table_of_row.count("quiet") << ", busy "
                                << table_of_row.count("busy"));
  CHECK(table_of_row.count("quiet") == 3);
  CHECK(table_of_row.count("busy") == 2);
}

TEST_CASE("outbox: rows left out of a full batch go out in the next one", "[outbox][collect]") {
  TempDir dir{"outbox"};
  Db db = open_test_db(dir.file("o.db"));
  db.exec(
      "CREATE TABLE a (id INTEGER PRIMARY KEY, v TEXT);"
      "CREATE TABLE b (id INTEGER PRIMARY KEY, v TEXT);");
  enable_table(db, "a");
  enable_table(db, "b");
  const auto tables = captured_tables(db);
  insert_rows(db, "a", 1, 4);
  insert_rows(db, "b", 1, 4);

  size_t total = 0;
  for (int round = 0; round < 3; ++round) {
    Transaction tx(db);
    Batch batch = collect_pending(db, tables, kNode, 3);
    mark_published(db, batch);
    tx.commit();
    total += batch.rows.size();
  }
  CHECK(total == 8);
  CHECK(total_pending(db, tables) == 0);
}

TEST_CASE("outbox: a batch stays within what a receiver decodes, however large its rows",
          "[outbox][collect]") {
  // Receivers refuse a batch whose decoded body, items or string bytes exceed their limits
  // (replicator/wire/codec.hpp): the publisher must cut batches below them, or valid changes
  // would be dead-lettered everywhere.
  TempDir dir{"outbox"};
  Db db = open_test_db(dir.file("o.db"));
  db.exec("CREATE TABLE big (id INTEGER PRIMARY KEY, v TEXT)");
  enable_table(db, "big");
  constexpr int kRows = 12;
  const size_t row_bytes = kMaxBatchStringBytes / 8;  // 4 MiB of text per row
  {
    Transaction tx(db);
    auto ins = db.prepare("INSERT INTO big (id, v) VALUES (?1, ?2)");
    for (int id = 1; id <= kRows; ++id) {
      ins.reset();
      ins.bind(1, int64_t{id});
      ins.bind(2, Value{Text{std::string(row_bytes, 'x')}});
      ins.run();
    }
    tx.commit();
  }
  std::set<int64_t> seen;
  for (int round = 0; round < kRows && seen.size() < kRows; ++round) {
    Transaction tx(db);
    Batch batch = collect_pending(db, captured_tables(db), kNode, 100000);
    REQUIRE_FALSE(batch.rows.empty());
    size_t string_bytes = 0;
    for (const auto& r : batch.rows) {
      seen.insert(std::get<int64_t>(r.key[0]));
      for (const auto& v : r.values)
        if (const auto* t = std::get_if<Text>(&v)) string_bytes += t->bytes.size();
    }
    INFO("round " << round << ": " << batch.rows.size() << " rows, " << string_bytes << " bytes");
    CHECK(string_bytes <= kMaxBatchStringBytes / 2);
    mark_published(db, batch);
    tx.commit();
  }
  CHECK(seen.size() == kRows);  // every row went out, in several batches

  // Many small values: the item count is bounded too.
  db.exec("CREATE TABLE wide (id INTEGER PRIMARY KEY, a, b, c, d, e, f, g, h)");
  enable_table(db, "wide");
  {
    Transaction tx(db);
    auto ins = db.prepare("INSERT INTO wide VALUES (?1, 1, 2, 3, 4, 5, 6, 7, 8)");
    for (int id = 1; id <= 200000; ++id) {
      ins.reset();
      ins.bind(1, int64_t{id});
      ins.run();
    }
    tx.commit();
  }
  Transaction tx(db);
  Batch batch = collect_pending(db, captured_tables(db), kNode, 1'000'000);
  size_t items = 0;
  for (const auto& r : batch.rows) items += kBatchItemsPerRow + r.key.size() + r.values.size();
  INFO(batch.rows.size() << " rows, " << items << " items");
  CHECK(batch.rows.size() < 200000);
  CHECK(items <= kMaxBatchItems / 2);
}
