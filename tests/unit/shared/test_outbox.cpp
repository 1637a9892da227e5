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
