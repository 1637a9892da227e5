// Attacks on the apply path through the names and keys a received batch carries (issue 14,
// items 1 and 7): column layouts whose names contain the bytes the Applier once joined its
// statement-cache key with, rows shaped unlike their table entry, and rows whose key disagrees
// with their values. Each batch is applied by the real Applier to a real SQLite file; a refused
// row must leave the table and its row versions untouched and name its reason in a dead letter.
#include <catch2/catch.hpp>

#include <string>

#include "replicator/wire/codec.hpp"
#include "shared/apply.hpp"
#include "shared/capture.hpp"
#include "shared/hlc.hpp"
#include "tests/support/db_fixture.hpp"
#include "tests/support/replicate.hpp"
#include "tests/support/support.hpp"

using namespace harmony;
using namespace harmony::test;

namespace {

// A captured database with `schema`, as the replicator leaves it after start-up.
struct Replica {
  TempDir dir{"apply-input"};
  Db db;
  std::vector<HeldRows> held;  // what the last applies held (rows that cannot apply yet)
  explicit Replica(const std::string& schema) {
    db = open_test_db(dir.file("r.db"));
    db.exec("PRAGMA journal_mode=WAL");
    db.exec(schema);
    ensure_base_schema(db);
    enable_all(db);
  }
  // Applies `batch` in one transaction, as the receive side does.
  ApplyStats apply(const Batch& batch) {
    Transaction tx(db);
    Applier applier(db, node_id(db), captured_tables(db));
    applier.begin();
    auto st = applier.apply(batch, {"test", ++seq}, held);
    applier.finish();
    tx.commit();
    return st;
  }
  // Several batches through one Applier (its statement cache lives as long as it does).
  ApplyStats apply(const std::vector<Batch>& batches) {
    Transaction tx(db);
    Applier applier(db, node_id(db), captured_tables(db));
    applier.begin();
    ApplyStats total;
    for (const auto& b : batches) total += applier.apply(b, {"test", ++seq}, held);
    applier.finish();
    tx.commit();
    return total;
  }
  int64_t versions(const std::string& table) {
    auto t = find_captured(db, table);
    REQUIRE(t);
    return db.query_int("SELECT count(*) FROM " + t->rows);
  }
  int64_t dead_letters(const std::string& like) {
    auto s = db.prepare("SELECT count(*) FROM __harmony_dead_letters WHERE reason LIKE ?1");
    s.bind(1, like);
    REQUIRE(s.step());
    return s.column_int(0);
  }
  std::string reasons() {
    std::string out;
    auto s = db.prepare("SELECT reason FROM __harmony_dead_letters ORDER BY id");
    while (s.step()) out += s.column_text(0) + "\n";
    return out;
  }
  uint64_t seq = 0;
};

constexpr uint64_t kPeer = 0x5eed;

int64_t now_version() {
  return hlc_from_ms(wall_clock_ms());
}

Batch one_table(const std::string& name, std::vector<std::string> columns,
                std::vector<std::string> key_columns) {
  Batch b;
  b.origin_node = kPeer;
  b.batch_id = 1;
  b.tables.push_back(BatchTable{name, "", std::move(columns), std::move(key_columns), 0});
  return b;
}

RowChange live(std::vector<Value> key, std::vector<Value> values, uint32_t table = 0) {
  return RowChange{table, now_version(), false, std::move(key), std::move(values)};
}

// Goes through the wire format and back, as a batch from a peer does.
Batch over_the_wire(const Batch& b) {
  return decode_batch(encode_batch(b, false));
}

}  // namespace

// Item 1. "a\x1fb" is a legal SQLite column name; the old cache key joined columns with
// '\x1f', so [id, a, b] and [id, "a\x1fb"] shared one prepared statement and the second
// layout's value went into column a.
TEST_CASE("apply: layouts whose names once collided in the statement cache write their own columns",
          "[security][apply]") {
  const std::string joined = std::string("a\x1f") + "b";
  Replica r("CREATE TABLE t (id INTEGER PRIMARY KEY, a TEXT, b TEXT, \"" + joined + "\" TEXT);");
  Batch split = one_table("t", {"id", "a", "b"}, {"id"});
  split.rows.push_back(live({int64_t{1}}, {int64_t{1}, Text{"A"}, Text{"B"}}));
  Batch whole = one_table("t", {"id", joined}, {"id"});
  whole.batch_id = 2;
  whole.rows.push_back(live({int64_t{2}}, {int64_t{2}, Text{"joined"}}));

  auto st = r.apply({split, whole});
  INFO(r.reasons());
  CHECK(st.applied == 2);
  CHECK(st.dead_lettered == 0);
  CHECK(r.db.query_int("SELECT count(*) FROM t WHERE id = 2 AND a IS NULL AND \"" + joined +
                       "\" = 'joined'") == 1);
  CHECK(r.db.query_int("SELECT count(*) FROM t WHERE id = 1 AND a = 'A' AND b = 'B'") == 1);
}

// Item 1. A layout with one key column whose name holds '\x1f' collided with the two-column key
// (a, b): the cached statements read row.key[1] of a row that carries one key value.
TEST_CASE("apply: a cached layout never reads key values a row does not carry",
          "[security][apply]") {
  const std::string joined = std::string("a\x1f") + "b";
  Replica r("CREATE TABLE c (a TEXT, b INTEGER, v TEXT, PRIMARY KEY (a, b)) WITHOUT ROWID;");
  Batch good = one_table("c", {"a", "b", "v"}, {"a", "b"});
  good.rows.push_back(live({Text{"k"}, int64_t{1}}, {Text{"k"}, int64_t{1}, Text{"x"}}));
  Batch evil = one_table("c", {"a", "b", "v"}, {joined});
  evil.batch_id = 2;
  evil.rows.push_back(live({Text{"k"}}, {Text{"k"}, int64_t{1}, Text{"evil"}}));

  auto st = r.apply({good, evil});
  INFO(r.reasons());
  CHECK(st.applied == 1);
  // A key of other columns is a schema this node does not have (yet): held, never applied.
  CHECK(st.held == 1);
  REQUIRE(r.held.size() == 1);
  CHECK(r.held[0].reason.find("primary key") != std::string::npos);
  CHECK(r.db.query_int("SELECT count(*) FROM c WHERE a = 'k' AND b = 1 AND v = 'x'") == 1);
  CHECK(r.versions("c") == 1);
}

// Item 1, defence in depth: the decoder checks these shapes, but the Applier reads whatever
// Batch it is handed and must refuse a row rather than index past its vectors.
TEST_CASE("apply: rows shaped unlike their table entry are refused, not read out of bounds",
          "[security][apply]") {
  Replica r(kBooksSchema);
  Batch b = one_table("Books", {"id", "title", "author", "publication_year"}, {"id"});
  SECTION("fewer key values than key columns") {
    b.rows.push_back(live({}, {int64_t{1}, Text{"T"}, Text{"A"}, int64_t{2000}}));
  }
  SECTION("fewer values than columns") {
    b.rows.push_back(live({int64_t{1}}, {int64_t{1}, Text{"T"}}));
  }
  SECTION("more values than columns") {
    b.rows.push_back(
        live({int64_t{1}}, {int64_t{1}, Text{"T"}, Text{"A"}, int64_t{2000}, Text{"extra"}}));
  }
  SECTION("a table index past the batch's tables") {
    b.rows.push_back(live({int64_t{1}}, {int64_t{1}, Text{"T"}, Text{"A"}, int64_t{2000}}, 7));
  }
  auto st = r.apply(b);
  INFO(r.reasons());
  CHECK(st.applied == 0);
  CHECK(st.dead_lettered == 1);
  CHECK(r.db.query_int("SELECT count(*) FROM Books") == 0);
  CHECK(r.versions("Books") == 0);
}

// Item 7. The version is recorded under row.key while the upsert writes row.values: a key that
// disagrees with the values, or values without the key, left a row and a version that do not
// belong together (for an INTEGER PRIMARY KEY, a fresh rowid).
TEST_CASE("apply: a row must carry its whole key, equal to its values", "[security][apply]") {
  Replica r(kBooksSchema);
  std::string reason;
  bool held = false;  // a key of other columns: another schema, held rather than refused
  Batch b;
  SECTION("key says id 5 while values say id 9") {
    b = one_table("Books", {"id", "title", "author", "publication_year"}, {"id"});
    b.rows.push_back(
        live({int64_t{5}}, {int64_t{9}, Text{"Dune"}, Text{"Herbert"}, int64_t{1965}}));
    reason = "%\"id\"%differs%";
  }
  SECTION("key column missing from the columns") {
    b = one_table("Books", {"title", "author", "publication_year"}, {"id"});
    b.rows.push_back(live({int64_t{5}}, {Text{"Dune"}, Text{"Herbert"}, int64_t{1965}}));
    reason = "%primary key column \"id\"%";
  }
  SECTION("key of the same number in another storage class") {
    b = one_table("Books", {"id", "title", "author", "publication_year"}, {"id"});
    b.rows.push_back(live({Text{"5"}}, {int64_t{5}, Text{"Dune"}, Text{"Herbert"}, int64_t{1965}}));
    reason = "%\"id\"%differs%";
  }
  SECTION("key columns that are not the primary key") {
    b = one_table("Books", {"id", "title", "author", "publication_year"}, {"title"});
    b.rows.push_back(
        live({Text{"Dune"}}, {int64_t{5}, Text{"Dune"}, Text{"Herbert"}, int64_t{1965}}));
    reason = "%primary key%";
    held = true;
  }
  // The decoder lets all of these through (their shapes are consistent): the Applier decides.
  auto st = r.apply(over_the_wire(b));
  INFO(r.reasons());
  CHECK(st.applied == 0);
  CHECK(st.skipped_older == 0);
  if (held) {
    CHECK(st.held == 1);
    CHECK(st.dead_lettered == 0);
  } else {
    CHECK(st.dead_lettered == 1);
    CHECK(r.dead_letters(reason) == 1);
  }
  CHECK(r.db.query_int("SELECT count(*) FROM Books") == 0);
  CHECK(r.versions("Books") == 0);
}

// Item 7, what must keep working: keys equal to their values under the key's collation (a NOCASE
// key may be spelled differently in the row versions than in the row, see outbox.cpp), a key
// sent in another order than the local primary key, and tombstones (which carry no values).
TEST_CASE("apply: keys equal to their values under the key's collation are applied",
          "[security][apply]") {
  Replica r(
      "CREATE TABLE n (name TEXT COLLATE NOCASE, tag TEXT COLLATE RTRIM, v TEXT, "
      "PRIMARY KEY (name, tag)) WITHOUT ROWID;");
  Batch b = one_table("n", {"v", "tag", "name"}, {"tag", "name"});
  b.rows.push_back(live({Text{"x"}, Text{"abc"}}, {Text{"one"}, Text{"x  "}, Text{"ABC"}}));
  b.rows.push_back(live({Text{"y"}, Text{"def"}}, {Text{"two"}, Text{"y"}, Text{"def"}}));
  auto st = r.apply(over_the_wire(b));
  INFO(r.reasons());
  CHECK(st.applied == 2);
  CHECK(st.dead_lettered == 0);
  CHECK(r.db.query_int("SELECT count(*) FROM n WHERE name = 'abc' AND tag = 'x' AND v = 'one'") ==
        1);
  CHECK(r.versions("n") == 2);

  Batch del = one_table("n", {"v", "tag", "name"}, {"tag", "name"});
  del.batch_id = 2;
  del.rows.push_back(RowChange{0, now_version() + 1, true, {Text{"y"}, Text{"def"}}, {}});
  st = r.apply(over_the_wire(del));
  CHECK(st.applied == 1);
  CHECK(r.db.query_int("SELECT count(*) FROM n") == 1);
}
