// Content digests (shared/content_digest.hpp): the same {rows} entries give the same digest in
// any order; the digest that fold and apply maintain incrementally equals the one rebuilt from
// {rows} after any sequence of local writes and replication; the diff narrows to what differs.
#include <algorithm>
#include <random>

#include "shared/content_digest.hpp"
#include "shared/fold.hpp"
#include "tests/support/capture_fixture.hpp"

using namespace harmony;
using namespace harmony::test;

namespace {

const char* kSchema =
    "CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT);"
    "CREATE TABLE c (a TEXT, b INTEGER, v TEXT, PRIMARY KEY (a, b)) WITHOUT ROWID;";

void fold_now(Db& db) {
  Transaction tx(db);
  fold_all(db, captured_tables(db), node_id(db));
  tx.commit();
}

// Every table's stored (incremental) digest equals the one computed from {rows}.
void check_incremental_matches_rebuild(Db& db) {
  for (const auto& t : captured_tables(db)) {
    INFO("table " << t.name);
    const TableDigest stored = load_digest(db, t.id);
    const TableDigest fresh = compute_digest(db, t);
    CHECK(stored.rows == fresh.rows);
    CHECK(differing_buckets(stored.buckets, fresh.buckets).empty());
    CHECK(stored.root() == fresh.root());
  }
}

uint64_t root_of_table(Db& db, const std::string& name) {
  auto t = find_captured(db, name);
  REQUIRE(t);
  return load_digest(db, t->id).root();
}

}  // namespace

TEST_CASE("the same rows in any order give the same digest", "[content_digest]") {
  std::vector<DigestEntry> entries;
  for (int i = 0; i < 500; ++i)
    entries.push_back({{Value{int64_t{i}}, Value{Text{"k" + std::to_string(i)}}},
                       RowVersion{1000 + i, static_cast<uint64_t>(i % 3 + 1), i % 7 == 0}});
  TableDigest first;
  for (const auto& e : entries) first.toggle(e.key, e.version);
  std::mt19937 rng(42);
  for (int round = 0; round < 5; ++round) {
    std::shuffle(entries.begin(), entries.end(), rng);
    TableDigest again;
    for (const auto& e : entries) again.toggle(e.key, e.version);
    CHECK(again.root() == first.root());
  }
  // Any change of version, node, tombstone or key changes the digest.
  TableDigest changed = first;
  changed.toggle(entries[0].key, entries[0].version);
  changed.toggle(entries[0].key, RowVersion{entries[0].version.version + 1, entries[0].version.node,
                                            entries[0].version.deleted});
  CHECK(changed.root() != first.root());
  CHECK(differing_buckets(changed.buckets, first.buckets).size() == 1);
}

TEST_CASE("canonical key bytes keep the storage class", "[content_digest]") {
  const std::vector<std::vector<Value>> keys = {{Value{int64_t{1}}},
                                                {Value{1.0}},
                                                {Value{Text{"1"}}},
                                                {Value{Blob{"1"}}},
                                                {Value{Null{}}},
                                                {Value{Text{""}}},
                                                {Value{Text{"a"}}, Value{Text{"b"}}},
                                                {Value{Text{"ab"}}}};
  for (size_t i = 0; i < keys.size(); ++i)
    for (size_t j = i + 1; j < keys.size(); ++j)
      CHECK(canonical_key(keys[i]) != canonical_key(keys[j]));
}

TEST_CASE("keys_to_fetch pulls what the peer holds newer or we lack", "[content_digest]") {
  const std::vector<DigestEntry> mine = {{{Value{int64_t{1}}}, {10, 1, false}},
                                         {{Value{int64_t{2}}}, {20, 1, false}},
                                         {{Value{int64_t{3}}}, {30, 2, false}}};
  const std::vector<DigestEntry> theirs = {{{Value{int64_t{1}}}, {10, 1, false}},  // same
                                           {{Value{int64_t{2}}}, {19, 3, true}},   // older
                                           {{Value{int64_t{3}}}, {30, 3, true}},   // tie: node 3
                                           {{Value{int64_t{4}}}, {5, 2, false}}};  // lacking
  auto keys = keys_to_fetch(mine, theirs);
  REQUIRE(keys.size() == 2);
  CHECK(std::get<int64_t>(keys[0][0]) == 3);
  CHECK(std::get<int64_t>(keys[1][0]) == 4);
}

TEST_CASE("the incremental digest equals the rebuilt one after random folds and applies",
          "[content_digest]") {
  TwoNodes n(kSchema);
  for (Db* db : {&n.a, &n.b}) {
    Transaction tx(*db);
    rebuild_digests(*db, captured_tables(*db));
    tx.commit();
  }
  std::mt19937 rng(7);
  std::uniform_int_distribution<int> id(1, 60), op(0, 5);
  for (int step = 0; step < 40; ++step) {
    for (Db* db : {&n.a, &n.b}) {
      for (int w = 0; w < 8; ++w) {
        const int k = id(rng);
        switch (op(rng)) {
          case 0:
          case 1:
            db->exec(fmt::format("INSERT OR REPLACE INTO t VALUES ({}, 'v{}')", k, step));
            break;
          case 2:
            db->exec(fmt::format("DELETE FROM t WHERE id = {}", k));
            break;
          case 3:
            db->exec(
                fmt::format("INSERT OR REPLACE INTO c VALUES ('k{}', {}, 's{}')", k % 5, k, step));
            break;
          case 4:
            db->exec(fmt::format("DELETE FROM c WHERE b = {}", k));
            break;
          default:
            db->exec(fmt::format("UPDATE OR REPLACE t SET id = {} WHERE id = {}", 100 + k, k));
            break;
        }
      }
      if (step % 3 == 0) fold_now(*db);
    }
    if (step % 4 == 1) replicate_once(n.a, n.b);
    if (step % 4 == 3) replicate_once(n.b, n.a);
    check_incremental_matches_rebuild(n.a);
    check_incremental_matches_rebuild(n.b);
  }
  replicate_both(n.a, n.b, 5);
  check_incremental_matches_rebuild(n.a);
  check_incremental_matches_rebuild(n.b);
  // Converged nodes have equal digests (table ids are local; tables compare by name).
  CHECK(root_of_table(n.a, "t") == root_of_table(n.b, "t"));
  CHECK(root_of_table(n.a, "c") == root_of_table(n.b, "c"));
}

TEST_CASE("a rebuild finds and fixes a stored digest that drifted from {rows}",
          "[content_digest]") {
  TwoNodes n(kSchema);
  {
    Transaction tx(n.a);
    rebuild_digests(n.a, captured_tables(n.a));
    tx.commit();
  }
  n.a.exec("INSERT INTO t VALUES (1, 'x'), (2, 'y')");
  fold_now(n.a);
  check_incremental_matches_rebuild(n.a);
  // Behind the replicator's back: a {rows} entry removed by hand.
  auto t = find_captured(n.a, "t");
  REQUIRE(t);
  n.a.exec(fmt::format("DELETE FROM {} WHERE k1 = 1", t->rows));
  CHECK(!(load_digest(n.a, t->id) == compute_digest(n.a, *t)));
  Transaction tx(n.a);
  auto wrong = rebuild_digests(n.a, captured_tables(n.a));
  tx.commit();
  REQUIRE(wrong.size() == 1);
  CHECK(wrong[0] == "t");
  check_incremental_matches_rebuild(n.a);
}

TEST_CASE("bucket_entries returns whole buckets within the bound", "[content_digest]") {
  TwoNodes n(kSchema);
  std::string sql;
  for (int i = 0; i < 2000; ++i) sql += fmt::format("INSERT INTO t VALUES ({}, 'v');", i);
  n.a.exec(sql);
  fold_now(n.a);
  auto t = find_captured(n.a, "t");
  REQUIRE(t);
  std::set<uint32_t> all;
  for (uint32_t b = 0; b < kDigestBuckets; ++b) all.insert(b);
  auto everything = bucket_entries(n.a, *t, all, 1'000'000);
  size_t total = 0;
  for (const auto& [b, entries] : everything) total += entries.size();
  CHECK(total == 2000);
  auto bounded = bucket_entries(n.a, *t, all, 100);
  size_t bounded_total = 0;
  for (const auto& [b, entries] : bounded) {
    bounded_total += entries.size();
    CHECK(entries.size() == everything[b].size());  // whole buckets only
  }
  CHECK(bounded_total <= 100);
  CHECK(!bounded.empty());
}
