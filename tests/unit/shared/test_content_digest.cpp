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

TEST_CASE(
    "digest chunks: a per-bucket digest of an earlier release is replaced, a damaged "
    "chunk is rebuilt",
    "[content_digest]") {
  TwoNodes n(kSchema);
  // A file an earlier release kept: one row per bucket in __harmony_digest.
  n.a.exec(
      "CREATE TABLE __harmony_digest (tbl INTEGER NOT NULL, bucket INTEGER NOT NULL, hash INTEGER "
      "NOT NULL, rows INTEGER NOT NULL, PRIMARY KEY (tbl, bucket)) WITHOUT ROWID;"
      "INSERT INTO __harmony_digest VALUES (1, 7, 12345, 2)");
  n.a.exec("INSERT INTO t VALUES (1, 'x'), (2, 'y'), (3, 'z')");
  fold_now(n.a);
  CHECK(!digest_table_exists(n.a));  // fold kept no digest: there were no chunks yet
  {
    Transaction tx(n.a);
    CHECK(ensure_digest_table(n.a));  // created: the caller rebuilds
    rebuild_digests(n.a, captured_tables(n.a));
    tx.commit();
  }
  CHECK(n.a.query_int("SELECT count(*) FROM sqlite_schema WHERE name = '__harmony_digest'") == 0);
  check_incremental_matches_rebuild(n.a);
  CHECK(n.a.query_int("SELECT sum(rows) FROM __harmony_digest_chunks") == 3);

  // Fold and apply keep the chunks exact through many buckets and both modes.
  std::string sql;
  for (int i = 10; i < 3000; ++i) sql += fmt::format("INSERT INTO t VALUES ({}, 'v');", i);
  n.a.exec(sql);
  fold_now(n.a);
  n.a.exec("UPDATE t SET v = 'w' WHERE id % 5 = 0; DELETE FROM t WHERE id % 7 = 0");
  fold_now(n.a);
  check_incremental_matches_rebuild(n.a);

  // A chunk whose blob is not 64 words (an edit behind the replicator's back) reads as zeros,
  // so the digest is wrong until the rebuild, which replaces it.
  auto t = find_captured(n.a, "t");
  REQUIRE(t);
  n.a.exec(
      fmt::format("UPDATE __harmony_digest_chunks SET hashes = x'00' WHERE tbl = {} AND "
                  "chunk = (SELECT max(chunk) FROM __harmony_digest_chunks WHERE tbl = {})",
                  t->id, t->id));
  CHECK(!(load_digest(n.a, t->id) == compute_digest(n.a, *t)));
  Transaction tx(n.a);
  const auto wrong = rebuild_digests(n.a, captured_tables(n.a));
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

TEST_CASE("content scrub: row hashes ignore column order and see a value changed with capture off",
          "[content_digest][scrub]") {
  const std::vector<Value> values{Value{int64_t{5}}, Value{Text{"x"}}};
  CHECK(row_content_hash({"id", "v"}, values) ==
        row_content_hash({"v", "id"}, {Value{Text{"x"}}, Value{int64_t{5}}}));
  CHECK(row_content_hash({"id", "v"}, values) !=
        row_content_hash({"id", "v"}, {Value{int64_t{5}}, Value{Text{"y"}}}));
  // Same storage class matters: 5 and '5' differ.
  CHECK(row_content_hash({"id", "v"}, values) !=
        row_content_hash({"id", "v"}, {Value{int64_t{5}}, Value{Text{"5"}}}));

  TwoNodes n(kSchema);
  n.a.exec("INSERT INTO t VALUES (1, 'a'), (2, 'b'), (3, 'c')");
  fold_now(n.a);
  auto t = find_captured(n.a, "t");
  REQUIRE(t);
  const auto before = scrub_digests(n.a, *t, 0, kDigestBuckets);
  const TableDigest versions_before = compute_digest(n.a, *t);
  n.a.exec(
      "INSERT INTO __harmony_mute VALUES (1); UPDATE t SET v = 'x' WHERE id = 2; "
      "DELETE FROM __harmony_mute;");
  fold_now(n.a);
  // The version digest cannot see it; the scrub digest of exactly one bucket changes.
  CHECK(compute_digest(n.a, *t) == versions_before);
  const auto after = scrub_digests(n.a, *t, 0, kDigestBuckets);
  CHECK(differing_buckets(before, after).size() == 1);
  // A window of buckets gives the same digests as the whole range.
  const uint32_t b = differing_buckets(before, after)[0];
  CHECK(scrub_digests(n.a, *t, b, 1) == std::vector<uint64_t>{after[b]});
}

TEST_CASE("content scrub: the origin's content wins, else the majority, ties deterministic",
          "[content_digest][scrub]") {
  CHECK(!winning_content(1, {}));
  // Origin 2 voted: its content, even outvoted.
  CHECK(winning_content(2, {{1, 10}, {2, 20}, {3, 10}}) == 20u);
  // Origin unreachable: the majority.
  CHECK(winning_content(9, {{1, 10}, {2, 20}, {3, 10}}) == 10u);
  // A tie: the lowest content hash, whatever the order of the votes.
  CHECK(winning_content(9, {{1, 30}, {2, 20}}) == 20u);
  CHECK(winning_content(9, {{2, 20}, {1, 30}}) == 20u);
}

TEST_CASE("bucket keys: kept by fold and apply, filled for an old file, listing reads one bucket",
          "[content_digest][digest_keys]") {
  TwoNodes n(kSchema);
  n.a.exec("INSERT INTO t VALUES (1, 'x'), (2, 'y'), (3, 'z'); INSERT INTO c VALUES ('a', 1, 'v')");
  fold_now(n.a);
  auto all_buckets = [] {
    std::set<uint32_t> all;
    for (uint32_t b = 0; b < kDigestBuckets; ++b) all.insert(b);
    return all;
  };
  // What a scan of {rows} lists, as sorted (key, version) text per bucket.
  auto listing = [&](const CapturedTable& t) {
    std::map<uint32_t, std::set<std::string>> out;
    for (auto& [b, entries] : bucket_entries(n.a, t, all_buckets(), SIZE_MAX))
      for (const auto& e : entries)
        out[b].insert(canonical_key(e.key) + std::to_string(e.version.version) +
                      (e.version.deleted ? "d" : "l"));
    for (auto it = out.begin(); it != out.end();) it = it->second.empty() ? out.erase(it) : ++it;
    return out;
  };
  auto t = find_captured(n.a, "t");
  auto c = find_captured(n.a, "c");
  REQUIRE(t);
  REQUIRE(c);
  const auto scanned_t = listing(*t);  // no keys table yet: a scan of {rows}
  REQUIRE(!digest_keys_exist(n.a));
  {
    Transaction tx(n.a);
    rebuild_digests(n.a, captured_tables(n.a));  // the migration of an existing file
    tx.commit();
  }
  REQUIRE(digest_keys_exist(n.a));
  CHECK(n.a.query_int("SELECT count(*) FROM __harmony_digest_keys") == 4);
  CHECK(listing(*t) == scanned_t);
  // Later writes keep it: a new row, a delete (tombstone keeps its key), composite keys.
  n.a.exec(
      "INSERT INTO t VALUES (4, 'w'); DELETE FROM t WHERE id = 2; INSERT INTO c VALUES "
      "('b', 2, 'v')");
  fold_now(n.a);
  CHECK(n.a.query_int("SELECT count(*) FROM __harmony_digest_keys") == 6);
  const auto via_keys_t = listing(*t), via_keys_c = listing(*c);
  n.a.exec("DROP TABLE __harmony_digest_keys");
  CHECK(listing(*t) == via_keys_t);
  CHECK(listing(*c) == via_keys_c);
}

TEST_CASE("canonical keys decode back to their values, bad bytes are refused",
          "[content_digest][digest_keys]") {
  const std::vector<Value> key{Value{Null{}}, Value{int64_t{-7}}, Value{2.5}, Value{Text{"é"}},
                               Value{Blob{std::string("\0b", 2)}}};
  const auto back = decode_canonical_key(canonical_key(key));
  REQUIRE(back.has_value());
  REQUIRE(back->size() == key.size());
  CHECK(std::get<int64_t>((*back)[1]) == -7);
  CHECK(std::get<Blob>((*back)[4]).bytes == std::string("\0b", 2));
  CHECK(canonical_key(*back) == canonical_key(key));
  const std::string bytes = canonical_key(key);
  CHECK_FALSE(decode_canonical_key(bytes.substr(0, bytes.size() - 1)).has_value());
  CHECK_FALSE(decode_canonical_key(bytes + "x").has_value());
  CHECK_FALSE(decode_canonical_key("abc").has_value());
}

namespace {

// Pages this connection wrote from its cache (to the WAL) since the last call.
int64_t pages_written(Db& db) {
  int current = 0, highest = 0;
  sqlite3_db_status(db.handle(), SQLITE_DBSTATUS_CACHE_WRITE, &current, &highest, 1);
  return current;
}

}  // namespace

// Issue 18: catch-up after a restart lost half its speed since the keys per bucket came in. The
// keys' b-tree is ordered by bucket (a hash), so a catch-up transaction's keys land on pages all
// over it and each commit wrote most of the b-tree to the WAL again. Deterministic measure: pages
// written per 1000 keys added in 10,000-key transactions to a table of 200,000 keys.
TEST_CASE("bulk key additions write a few pages per 1000 keys, not the whole keys b-tree",
          "[content_digest][digest_keys][catchup]") {
  TwoNodes n(kSchema);
  auto t = find_captured(n.a, "t");
  REQUIRE(t);
  constexpr int64_t kExisting = 200'000, kPerTxn = 10'000, kTxns = 10;
  {
    Transaction tx(n.a);
    ensure_digest_table(n.a);
    // An existing table's keys, as a start-up rebuild leaves them (in b-tree order, packed).
    n.a.exec(fmt::format(
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {}) "
        "INSERT INTO __harmony_digest_keys (tbl, bucket, key) SELECT {}, (i * 2654435761) % {}, "
        "CAST('existing' || i AS BLOB) FROM n ORDER BY 2, 3",
        kExisting, t->id, kDigestBuckets));
    tx.commit();
  }
  REQUIRE(digest_keys_exist(n.a));
  n.a.exec("PRAGMA wal_checkpoint(TRUNCATE)");
  pages_written(n.a);
  DigestUpdater digest(n.a, DigestUpdater::Writes::Batched);
  REQUIRE(digest.complete());
  int64_t id = 0;
  for (int64_t txn = 0; txn < kTxns; ++txn) {
    Transaction tx(n.a);
    for (int64_t i = 0; i < kPerTxn; ++i, ++id)
      digest.change(t->id, {Value{id}}, std::nullopt, RowVersion{1000 + id, 1, false});
    digest.flush();
    tx.commit();
  }
  const double per_1000 = 1000.0 * static_cast<double>(pages_written(n.a)) / (kPerTxn * kTxns);
  WARN("pages written per 1000 keys added: " << per_1000);
  // The b-tree is ~1,500 leaves: rewriting it per transaction is ~150 pages per 1000 keys;
  // appending ~30-byte keys is ~8, plus the bucket digests (~25 pages per transaction).
  CHECK(per_1000 < 30);
}

// The staged keys (content_digest.hpp, kStageKeysFrom) are keys like the others: listing a bucket
// sees them, a small transaction after the burst merges them, a drop (tombstone GC) finds a key
// still staged, and the digest stays equal to a rebuild from {rows} throughout.
TEST_CASE("staged bucket keys: listed, merged after the burst, dropped, digest exact",
          "[content_digest][digest_keys][catchup]") {
  TwoNodes n(kSchema);
  {
    Transaction tx(n.a);
    rebuild_digests(n.a, captured_tables(n.a));
    tx.commit();
  }
  auto t = find_captured(n.a, "t");
  REQUIRE(t);
  auto all_buckets = [] {
    std::set<uint32_t> all;
    for (uint32_t b = 0; b < kDigestBuckets; ++b) all.insert(b);
    return all;
  };
  auto listing = [&] {
    std::map<uint32_t, std::vector<std::string>> out;
    for (auto& [b, entries] : bucket_entries(n.a, *t, all_buckets(), SIZE_MAX))
      for (const auto& e : entries)
        out[b].push_back(canonical_key(e.key) + std::to_string(e.version.version));
    for (auto it = out.begin(); it != out.end();) it = it->second.empty() ? out.erase(it) : ++it;
    return out;
  };
  // What a scan of {rows} gives, in the keys' order within a bucket.
  auto scanned = [&] {
    std::map<uint32_t, std::map<std::string, std::string>> sorted;
    auto s = n.a.prepare(fmt::format("SELECT k1, version FROM {}", t->rows));
    while (s.step()) {
      const std::string k = canonical_key({s.column(0)});
      sorted[key_bucket(k)][k] = k + std::to_string(s.column_int(1));
    }
    std::map<uint32_t, std::vector<std::string>> out;
    for (const auto& [b, entries] : sorted)
      for (const auto& [k, text] : entries) out[b].push_back(text);
    return out;
  };
  const auto keys = [&] { return n.a.query_int("SELECT count(*) FROM __harmony_digest_keys"); };
  // A burst: one fold of 3000 new rows (a catch-up transaction is the same DigestUpdater).
  n.a.exec(
      "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 3000) "
      "INSERT INTO t SELECT i, 'v' || i FROM n");
  fold_now(n.a);
  check_incremental_matches_rebuild(n.a);
  CHECK(staged_key_count(n.a) == 3000);
  CHECK(keys() == 0);
  // Listed as a scan of {rows} lists them, in the same (key) order.
  CHECK(listing() == scanned());
  // A tombstone pruned while its key is staged: merged first, then dropped.
  {
    Transaction tx(n.a);
    DigestUpdater(n.a).change(t->id, {Value{int64_t{7}}}, RowVersion{1, 1, false}, std::nullopt);
    CHECK(staged_key_count(n.a) == 0);
    CHECK(keys() == 2999);
    tx.rollback();
  }
  CHECK(staged_key_count(n.a) == 3000);
  // A small transaction after the burst: the staged keys go into the b-tree.
  n.a.exec("INSERT INTO t VALUES (5000, 'x'); DELETE FROM t WHERE id = 2");
  fold_now(n.a);
  check_incremental_matches_rebuild(n.a);
  CHECK(staged_key_count(n.a) == 0);
  CHECK(keys() == 3001);
  CHECK(keys() == n.a.query_int("SELECT sum(rows) FROM __harmony_digest_chunks"));
  CHECK(listing() == scanned());
}
