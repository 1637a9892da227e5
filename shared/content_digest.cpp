// Content digests: hashing, the stored digest table and the diff (see content_digest.hpp).
#include "shared/content_digest.hpp"

#include <bit>
#include <cstring>
#include <unordered_map>

#include <fmt/format.h>

namespace harmony {

namespace {

// Seeds keep the bucket choice and the entry hash independent of each other.
constexpr uint64_t kBucketSeed = 0x6861726d6f6e7931ULL;  // "harmony1"
constexpr uint64_t kEntrySeed = 0x6861726d6f6e7932ULL;   // "harmony2"
constexpr uint64_t kRootSeed = 0x6861726d6f6e7933ULL;    // "harmony3"

void append_u64(std::string& out, uint64_t v) {
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}

uint64_t read_u64(const unsigned char* p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}

}  // namespace

void append_canonical(std::string& out, const Value& v) {
  switch (v.index()) {
    case 0:
      out.push_back('\0');
      break;
    case 1:
      out.push_back('\1');
      append_u64(out, static_cast<uint64_t>(std::get<int64_t>(v)));
      break;
    case 2:
      out.push_back('\2');
      append_u64(out, std::bit_cast<uint64_t>(std::get<double>(v)));
      break;
    case 3: {
      const auto& b = std::get<Text>(v).bytes;
      out.push_back('\3');
      append_u64(out, b.size());
      out += b;
      break;
    }
    default: {
      const auto& b = std::get<Blob>(v).bytes;
      out.push_back('\4');
      append_u64(out, b.size());
      out += b;
      break;
    }
  }
}

std::string canonical_key(const std::vector<Value>& key) {
  std::string out;
  append_u64(out, key.size());
  for (const auto& v : key) append_canonical(out, v);
  return out;
}

// MurmurHash64A (Austin Appleby, public domain): fast, well mixed, 64 bits. Collisions are not
// a security matter here: a member that wants two nodes to differ can simply write.
uint64_t hash64(std::string_view bytes, uint64_t seed) {
  constexpr uint64_t m = 0xc6a4a7935bd1e995ULL;
  constexpr int r = 47;
  const auto* data = reinterpret_cast<const unsigned char*>(bytes.data());
  const size_t len = bytes.size();
  uint64_t h = seed ^ (len * m);
  const size_t blocks = len / 8;
  for (size_t i = 0; i < blocks; ++i) {
    uint64_t k = read_u64(data + 8 * i);
    k *= m;
    k ^= k >> r;
    k *= m;
    h ^= k;
    h *= m;
  }
  const unsigned char* tail = data + 8 * blocks;
  switch (len & 7) {
    case 7:
      h ^= uint64_t(tail[6]) << 48;
      [[fallthrough]];
    case 6:
      h ^= uint64_t(tail[5]) << 40;
      [[fallthrough]];
    case 5:
      h ^= uint64_t(tail[4]) << 32;
      [[fallthrough]];
    case 4:
      h ^= uint64_t(tail[3]) << 24;
      [[fallthrough]];
    case 3:
      h ^= uint64_t(tail[2]) << 16;
      [[fallthrough]];
    case 2:
      h ^= uint64_t(tail[1]) << 8;
      [[fallthrough]];
    case 1:
      h ^= uint64_t(tail[0]);
      h *= m;
  }
  h ^= h >> r;
  h *= m;
  h ^= h >> r;
  return h;
}

uint32_t key_bucket(std::string_view canonical_key_bytes) {
  return static_cast<uint32_t>(hash64(canonical_key_bytes, kBucketSeed) % kDigestBuckets);
}

uint64_t entry_hash(std::string_view canonical_key_bytes, const RowVersion& v) {
  std::string bytes(canonical_key_bytes);
  append_u64(bytes, static_cast<uint64_t>(v.version));
  append_u64(bytes, v.node);
  bytes.push_back(v.deleted ? '\1' : '\0');
  return hash64(bytes, kEntrySeed);
}

void TableDigest::toggle(const std::vector<Value>& key, const RowVersion& v) {
  const std::string k = canonical_key(key);
  buckets[key_bucket(k)] ^= entry_hash(k, v);
}

uint64_t root_of(const std::vector<uint64_t>& buckets) {
  std::string bytes;
  bytes.reserve(buckets.size() * 8);
  for (uint64_t b : buckets) append_u64(bytes, b);
  return hash64(bytes, kRootSeed);
}

uint64_t TableDigest::root() const {
  return root_of(buckets);
}

std::vector<uint32_t> differing_buckets(const std::vector<uint64_t>& a,
                                        const std::vector<uint64_t>& b) {
  std::vector<uint32_t> out;
  for (size_t i = 0; i < std::min(a.size(), b.size()); ++i)
    if (a[i] != b[i]) out.push_back(static_cast<uint32_t>(i));
  return out;
}

std::vector<std::vector<Value>> keys_to_fetch(const std::vector<DigestEntry>& mine,
                                              const std::vector<DigestEntry>& theirs) {
  std::unordered_map<std::string, RowVersion> local;
  for (const auto& e : mine) local.emplace(canonical_key(e.key), e.version);
  std::vector<std::vector<Value>> out;
  for (const auto& e : theirs) {
    auto it = local.find(canonical_key(e.key));
    // Equal versions are the same write: nothing to pull (a content difference under one
    // version is the scrub's business, not the digest's).
    if (it == local.end() || newer_than(e.version, it->second)) out.push_back(e.key);
  }
  return out;
}

// --- Stored digests ---

namespace {

constexpr const char* kDigestTableSql =
    "CREATE TABLE IF NOT EXISTS __harmony_digest (tbl INTEGER NOT NULL, bucket INTEGER NOT NULL, "
    "hash INTEGER NOT NULL, rows INTEGER NOT NULL, PRIMARY KEY (tbl, bucket)) WITHOUT ROWID";

std::string key_list(size_t n) {
  std::string out;
  for (const auto& k : key_columns(n)) out += (out.empty() ? "" : ", ") + k;
  return out;
}

// Calls `f(key, version)` for every {rows} entry of `t`.
template <class F>
void scan_rows(Db& db, const CapturedTable& t, F&& f) {
  const size_t n = t.key_count();
  auto s =
      db.prepare(fmt::format("SELECT {}, version, node, deleted FROM {}", key_list(n), t.rows));
  std::vector<Value> key(n);
  while (s.step()) {
    for (size_t i = 0; i < n; ++i) key[i] = s.column(static_cast<int>(i));
    RowVersion v{s.column_int(static_cast<int>(n)),
                 static_cast<uint64_t>(s.column_int(static_cast<int>(n + 1))),
                 s.column_int(static_cast<int>(n + 2)) != 0};
    f(key, v);
  }
}

}  // namespace

bool digest_table_exists(Db& db) {
  return db.query_int(
             "SELECT count(*) FROM sqlite_schema WHERE type = 'table' AND name = "
             "'__harmony_digest'") > 0;
}

bool ensure_digest_table(Db& db) {
  if (digest_table_exists(db)) return false;
  db.exec(kDigestTableSql);
  return true;
}

TableDigest compute_digest(Db& db, const CapturedTable& t) {
  TableDigest d;
  scan_rows(db, t, [&](const std::vector<Value>& key, const RowVersion& v) {
    d.toggle(key, v);
    ++d.rows;
  });
  return d;
}

TableDigest load_digest(Db& db, int64_t table_id) {
  TableDigest d;
  auto s = db.prepare("SELECT bucket, hash, rows FROM __harmony_digest WHERE tbl = ?1");
  s.bind(1, table_id);
  while (s.step()) {
    const int64_t b = s.column_int(0);
    if (b < 0 || b >= kDigestBuckets) continue;  // not ours: ignored (a rebuild drops it)
    d.buckets[static_cast<size_t>(b)] = static_cast<uint64_t>(s.column_int(1));
    d.rows += s.column_int(2);
  }
  return d;
}

void store_digest(Db& db, int64_t table_id, const TableDigest& d) {
  auto del = db.prepare("DELETE FROM __harmony_digest WHERE tbl = ?1");
  del.bind(1, table_id).run();
  // Row counts per bucket are not kept in memory; the total goes on bucket 0's row, which is
  // all anything reads (load_digest sums them).
  auto ins =
      db.prepare("INSERT INTO __harmony_digest (tbl, bucket, hash, rows) VALUES (?1, ?2, ?3, ?4)");
  for (uint32_t b = 0; b < kDigestBuckets; ++b) {
    if (d.buckets[b] == 0 && b != 0) continue;  // empty buckets are absent
    ins.reset();
    ins.bind(1, table_id)
        .bind(2, int64_t{b})
        .bind(3, static_cast<int64_t>(d.buckets[b]))
        .bind(4, b == 0 ? d.rows : int64_t{0})
        .run();
  }
}

std::vector<std::string> rebuild_digests(Db& db, const std::vector<CapturedTable>& tables) {
  ensure_digest_table(db);
  std::vector<std::string> wrong;
  std::string ids;
  for (const auto& t : tables) {
    TableDigest fresh = compute_digest(db, t);
    if (!(load_digest(db, t.id) == fresh)) {
      wrong.push_back(t.name);
      store_digest(db, t.id, fresh);
    }
    ids += (ids.empty() ? "" : ", ") + std::to_string(t.id);
  }
  db.exec(fmt::format("DELETE FROM __harmony_digest WHERE tbl NOT IN ({})", ids));
  return wrong;
}

std::map<uint32_t, std::vector<DigestEntry>> bucket_entries(Db& db, const CapturedTable& t,
                                                            const std::set<uint32_t>& buckets,
                                                            size_t max_entries) {
  std::map<uint32_t, std::vector<DigestEntry>> found;
  if (buckets.empty()) return found;
  scan_rows(db, t, [&](const std::vector<Value>& key, const RowVersion& v) {
    const uint32_t b = key_bucket(canonical_key(key));
    if (buckets.count(b)) found[b].push_back(DigestEntry{key, v});
  });
  // Whole buckets, lowest first, within the bound (at least one bucket, so a round progresses).
  std::map<uint32_t, std::vector<DigestEntry>> out;
  size_t total = 0;
  for (uint32_t b : buckets) {
    auto it = found.find(b);
    const size_t size = it == found.end() ? 0 : it->second.size();
    if (!out.empty() && total + size > max_entries) break;
    total += size;
    out[b] = it == found.end() ? std::vector<DigestEntry>{} : std::move(it->second);
  }
  return out;
}

DigestUpdater::DigestUpdater(Db& db) {
  active_ = digest_table_exists(db);
  if (!active_) return;
  // XOR in SQL: SQLite has none, and (a | b) - (a & b) equals a ^ b without overflow (the
  // bits of a & b are a subset of those of a | b).
  upsert_ = db.prepare(
      "INSERT INTO __harmony_digest (tbl, bucket, hash, rows) VALUES (?1, ?2, ?3, ?4) "
      "ON CONFLICT DO UPDATE SET hash = (hash | excluded.hash) - (hash & excluded.hash), "
      "rows = rows + excluded.rows");
}

void DigestUpdater::change(int64_t table_id, const std::vector<Value>& key,
                           const std::optional<RowVersion>& before,
                           const std::optional<RowVersion>& after) {
  if (!active_ || before == after) return;
  const std::string k = canonical_key(key);
  uint64_t delta = 0;
  if (before) delta ^= entry_hash(k, *before);
  if (after) delta ^= entry_hash(k, *after);
  const int64_t rows = (after ? 1 : 0) - (before ? 1 : 0);
  upsert_.reset();
  // Row totals are kept on bucket 0 (see store_digest), so a bucket's rows column means nothing
  // but their sum is the table's entry count.
  upsert_.bind(1, table_id).bind(2, int64_t{key_bucket(k)}).bind(3, static_cast<int64_t>(delta));
  upsert_.bind(4, int64_t{0}).run();
  if (rows != 0) {
    upsert_.reset();
    upsert_.bind(1, table_id).bind(2, int64_t{0}).bind(3, int64_t{0}).bind(4, rows).run();
  }
}

}  // namespace harmony
