// Content digests: hashing, the stored digest table and the diff (see content_digest.hpp).
#include "shared/content_digest.hpp"

#include <algorithm>
#include <bit>
#include <cstring>
#include <unordered_map>

#include <fmt/format.h>

#include "shared/meta_store.hpp"

namespace harmony {

namespace {

// Seeds keep the bucket choice and the entry hash independent of each other.
constexpr uint64_t kBucketSeed = 0x6861726d6f6e7931ULL;   // "harmony1"
constexpr uint64_t kEntrySeed = 0x6861726d6f6e7932ULL;    // "harmony2"
constexpr uint64_t kRootSeed = 0x6861726d6f6e7933ULL;     // "harmony3"
constexpr uint64_t kContentSeed = 0x6861726d6f6e7934ULL;  // "harmony4"
constexpr uint64_t kScrubSeed = 0x6861726d6f6e7935ULL;    // "harmony5"

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
    "CREATE TABLE IF NOT EXISTS __harmony_digest_chunks (tbl INTEGER NOT NULL, chunk INTEGER NOT "
    "NULL, hashes BLOB NOT NULL, rows INTEGER NOT NULL, PRIMARY KEY (tbl, chunk)) WITHOUT ROWID";
constexpr size_t kChunkBytes = kDigestChunkBuckets * sizeof(uint64_t);

// A stored chunk's hashes into `out` (kDigestChunkBuckets words). A blob of another size is not
// ours (an edit behind the replicator's back): read as zeros, and the next rebuild replaces it.
void read_chunk_hashes(std::string_view blob, uint64_t* out) {
  if (blob.size() != kChunkBytes) {
    std::fill(out, out + kDigestChunkBuckets, uint64_t{0});
    return;
  }
  if constexpr (std::endian::native == std::endian::little) {
    std::memcpy(out, blob.data(), kChunkBytes);  // the stored order: one copy
  } else {
    for (size_t i = 0; i < kDigestChunkBuckets; ++i)
      out[i] = read_u64(reinterpret_cast<const unsigned char*>(blob.data()) + 8 * i);
  }
}

std::string chunk_blob(const uint64_t* hashes) {
  std::string out;
  if constexpr (std::endian::native == std::endian::little) {
    out.assign(reinterpret_cast<const char*>(hashes), kChunkBytes);
  } else {
    out.reserve(kChunkBytes);
    for (size_t i = 0; i < kDigestChunkBuckets; ++i) append_u64(out, hashes[i]);
  }
  return out;
}

// The keys per bucket (see content_digest.hpp): ~the key's bytes + 20 per {rows} entry.
constexpr const char* kDigestKeysSql =
    "CREATE TABLE IF NOT EXISTS __harmony_digest_keys (tbl INTEGER NOT NULL, bucket INTEGER NOT "
    "NULL, key BLOB NOT NULL, PRIMARY KEY (tbl, bucket, key)) WITHOUT ROWID";
// Staged keys (content_digest.hpp, kStageKeysFrom): a rowid table without an index, so adding
// appends to its last page.
constexpr const char* kStagedKeysSql =
    "CREATE TABLE IF NOT EXISTS __harmony_digest_keys_new (tbl INTEGER NOT NULL, bucket INTEGER "
    "NOT NULL, key BLOB NOT NULL)";

bool staged_keys_exist(Db& db) {
  return db.query_int(
             "SELECT count(*) FROM sqlite_schema WHERE type = 'table' AND name = "
             "'__harmony_digest_keys_new'") > 0;
}

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

std::string_view as_view(const Value& v) {
  if (const auto* b = std::get_if<Blob>(&v)) return b->bytes;
  if (const auto* t = std::get_if<Text>(&v)) return t->bytes;
  return {};
}

// Fills __harmony_digest_keys for `t` from {rows}.
void rebuild_keys(Db& db, const CapturedTable& t) {
  auto del = db.prepare("DELETE FROM __harmony_digest_keys WHERE tbl = ?1");
  del.bind(1, t.id).run();
  auto ins = db.prepare(
      "INSERT OR IGNORE INTO __harmony_digest_keys (tbl, bucket, key) VALUES (?1, ?2, ?3)");
  auto s = db.prepare(fmt::format("SELECT {} FROM {}", key_list(t.key_count()), t.rows));
  std::vector<Value> key(t.key_count());
  while (s.step()) {
    for (size_t i = 0; i < key.size(); ++i) key[i] = s.column(static_cast<int>(i));
    const std::string k = canonical_key(key);
    ins.reset();
    ins.bind(1, t.id).bind(2, int64_t{key_bucket(k)}).bind(3, Value{Blob{k}}).run();
  }
}

}  // namespace

bool digest_table_exists(Db& db) {
  return db.query_int(
             "SELECT count(*) FROM sqlite_schema WHERE type = 'table' AND name = "
             "'__harmony_digest_chunks'") > 0;
}

bool digest_keys_exist(Db& db) {
  return db.query_int(
             "SELECT count(*) FROM sqlite_schema WHERE type = 'table' AND name = "
             "'__harmony_digest_keys'") > 0;
}

std::optional<std::vector<Value>> decode_canonical_key(std::string_view bytes) {
  auto u64 = [&](size_t at) {
    return read_u64(reinterpret_cast<const unsigned char*>(bytes.data()) + at);
  };
  if (bytes.size() < 8) return std::nullopt;
  const uint64_t n = u64(0);
  size_t at = 8;
  std::vector<Value> out;
  for (uint64_t i = 0; i < n; ++i) {
    if (at >= bytes.size()) return std::nullopt;
    const char c = bytes[at++];
    if (c == '\0') {
      out.emplace_back(Null{});
      continue;
    }
    if (bytes.size() - at < 8) return std::nullopt;
    const uint64_t v = u64(at);
    at += 8;
    if (c == '\1') {
      out.emplace_back(static_cast<int64_t>(v));
    } else if (c == '\2') {
      out.emplace_back(std::bit_cast<double>(v));
    } else if (c == '\3' || c == '\4') {
      if (bytes.size() - at < v) return std::nullopt;
      std::string s(bytes.substr(at, static_cast<size_t>(v)));
      at += static_cast<size_t>(v);
      if (c == '\3')
        out.emplace_back(Text{std::move(s)});
      else
        out.emplace_back(Blob{std::move(s)});
    } else {
      return std::nullopt;
    }
  }
  if (at != bytes.size()) return std::nullopt;
  return out;
}

int64_t staged_key_count(Db& db) {
  if (!staged_keys_exist(db)) return 0;
  // Rowids are contiguous: staging only appends, and merge_staged_keys empties it at once.
  return db.query_int(
      "SELECT coalesce(max(rowid) - min(rowid) + 1, 0) FROM __harmony_digest_keys_new");
}

void merge_staged_keys(Db& db) {
  if (staged_key_count(db) == 0) return;
  // In key order, so each leaf of the keys' b-tree is visited (and written) once.
  db.exec(
      "INSERT OR IGNORE INTO __harmony_digest_keys (tbl, bucket, key) SELECT tbl, bucket, key "
      "FROM __harmony_digest_keys_new ORDER BY tbl, bucket, key");
  db.exec("DELETE FROM __harmony_digest_keys_new");
}

bool ensure_digest_table(Db& db) {
  db.exec(kDigestKeysSql);
  db.exec(kStagedKeysSql);
  // The per-bucket table of releases before chunks: nothing reads it any more (a file that went
  // back to such a release and forward again gets its chunks rebuilt at start like every file).
  db.exec("DROP TABLE IF EXISTS __harmony_digest");
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
  auto s = db.prepare("SELECT chunk, hashes, rows FROM __harmony_digest_chunks WHERE tbl = ?1");
  s.bind(1, table_id);
  while (s.step()) {
    const int64_t c = s.column_int(0);
    if (c < 0 || c >= kDigestChunks) continue;  // not ours: ignored (a rebuild drops it)
    read_chunk_hashes(as_view(s.column(1)),
                      &d.buckets[static_cast<size_t>(c) * kDigestChunkBuckets]);
    d.rows += s.column_int(2);
  }
  return d;
}

void store_digest(Db& db, int64_t table_id, const TableDigest& d) {
  auto del = db.prepare("DELETE FROM __harmony_digest_chunks WHERE tbl = ?1");
  del.bind(1, table_id).run();
  // Entry counts per chunk are not kept in memory: the total goes on chunk 0's row (later
  // changes add theirs to their own chunk's), and only the sum is ever read (load_digest).
  auto ins = db.prepare(
      "INSERT INTO __harmony_digest_chunks (tbl, chunk, hashes, rows) VALUES (?1, ?2, ?3, ?4)");
  for (uint32_t c = 0; c < kDigestChunks; ++c) {
    const uint64_t* hashes = &d.buckets[size_t{c} * kDigestChunkBuckets];
    if (c != 0 &&
        std::all_of(hashes, hashes + kDigestChunkBuckets, [](uint64_t h) { return h == 0; }))
      continue;  // chunks of zeros are absent
    ins.reset();
    ins.bind(1, table_id)
        .bind(2, int64_t{c})
        .bind(3, Value{Blob{chunk_blob(hashes)}})
        .bind(4, c == 0 ? d.rows : int64_t{0})
        .run();
  }
}

std::vector<std::string> rebuild_digests(Db& db, const std::vector<CapturedTable>& tables) {
  ensure_digest_table(db);
  merge_staged_keys(db);  // the counts and rebuilds below see every key in one table
  std::vector<std::string> wrong;
  std::string ids;
  for (const auto& t : tables) {
    TableDigest fresh = compute_digest(db, t);
    const bool digest_wrong = !(load_digest(db, t.id) == fresh);
    if (digest_wrong) {
      wrong.push_back(t.name);
      store_digest(db, t.id, fresh);
    }
    // Migration and repair of the keys per bucket: a file from before them, or one whose
    // {rows} was edited behind the replicator's back (then the digest is wrong too).
    auto count = db.prepare("SELECT count(*) FROM __harmony_digest_keys WHERE tbl = ?1");
    count.bind(1, t.id);
    if (digest_wrong || !count.step() || count.column_int(0) != fresh.rows) rebuild_keys(db, t);
    ids += (ids.empty() ? "" : ", ") + std::to_string(t.id);
  }
  db.exec(fmt::format("DELETE FROM __harmony_digest_chunks WHERE tbl NOT IN ({})", ids));
  db.exec(fmt::format("DELETE FROM __harmony_digest_keys WHERE tbl NOT IN ({})", ids));
  return wrong;
}

std::map<uint32_t, std::vector<DigestEntry>> bucket_entries(Db& db, const CapturedTable& t,
                                                            const std::set<uint32_t>& buckets,
                                                            size_t max_entries) {
  std::map<uint32_t, std::vector<DigestEntry>> found;
  if (buckets.empty()) return found;
  if (digest_keys_exist(db)) {
    // One index range per bucket, then each key's {rows} entry: proportional to the buckets.
    // Keys still staged (a catch-up in progress) are read in one pass over the staging table,
    // which kMergeStagedKeysAt bounds.
    std::map<uint32_t, std::vector<std::string>> staged;
    if (staged_key_count(db) > 0) {
      auto s = db.prepare("SELECT bucket, key FROM __harmony_digest_keys_new WHERE tbl = ?1");
      s.bind(1, t.id);
      while (s.step()) {
        const int64_t b = s.column_int(0);
        if (b < 0 || b >= kDigestBuckets || !buckets.count(static_cast<uint32_t>(b))) continue;
        staged[static_cast<uint32_t>(b)].emplace_back(as_view(s.column(1)));
      }
    }
    std::string match;
    for (size_t i = 0; i < t.key_count(); ++i)
      match += fmt::format("{}k{} IS ?{}", i ? " AND " : "", i + 1, i + 1);
    auto keys = db.prepare(
        "SELECT key FROM __harmony_digest_keys WHERE tbl = ?1 AND bucket = ?2 ORDER BY key");
    auto version =
        db.prepare(fmt::format("SELECT version, node, deleted FROM {} WHERE {}", t.rows, match));
    std::map<uint32_t, std::vector<DigestEntry>> out;
    size_t total = 0;
    for (uint32_t b : buckets) {
      std::vector<std::string> raw;
      keys.reset();
      keys.bind(1, t.id).bind(2, int64_t{b});
      while (keys.step()) raw.emplace_back(as_view(keys.column(0)));
      keys.reset();
      if (auto it = staged.find(b); it != staged.end()) {
        // The same order as the b-tree's (BLOBs compare as memcmp, as std::string does).
        raw.insert(raw.end(), it->second.begin(), it->second.end());
        std::sort(raw.begin(), raw.end());
        raw.erase(std::unique(raw.begin(), raw.end()), raw.end());
      }
      std::vector<DigestEntry> entries;
      for (const auto& bytes : raw) {
        auto key = decode_canonical_key(bytes);
        if (!key || key->size() != t.key_count()) continue;
        version.reset();
        for (size_t i = 0; i < key->size(); ++i) version.bind(static_cast<int>(i + 1), (*key)[i]);
        if (!version.step()) continue;  // stale: the next rebuild drops it
        entries.push_back(DigestEntry{
            std::move(*key),
            RowVersion{version.column_int(0), static_cast<uint64_t>(version.column_int(1)),
                       version.column_int(2) != 0}});
      }
      version.reset();
      if (!out.empty() && total + entries.size() > max_entries) break;
      total += entries.size();
      out[b] = std::move(entries);
    }
    return out;
  }
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

uint64_t row_content_hash(const std::vector<std::string>& names, const std::vector<Value>& values) {
  std::vector<size_t> order(std::min(names.size(), values.size()));
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) { return names[a] < names[b]; });
  std::string bytes;
  for (size_t i : order) {
    append_u64(bytes, names[i].size());
    bytes += names[i];
    append_canonical(bytes, values[i]);
  }
  return hash64(bytes, kContentSeed);
}

uint64_t scrub_entry_hash(std::string_view canonical_key_bytes, const RowVersion& v,
                          uint64_t content) {
  std::string bytes(canonical_key_bytes);
  append_u64(bytes, static_cast<uint64_t>(v.version));
  append_u64(bytes, v.node);
  append_u64(bytes, content);
  return hash64(bytes, kScrubSeed);
}

namespace {

struct RowReader {
  std::vector<std::string> names;
  Stmt select;
  RowReader(Db& db, const CapturedTable& t) {
    std::string cols, match;
    for (const auto& c : t.info.columns) {
      if (c.generated) continue;
      names.push_back(c.name);
      cols += (cols.empty() ? "" : ", ") + quote_ident(c.name);
    }
    int i = 1;
    for (const auto* c : t.info.primary_key())
      match += fmt::format("{}{} IS ?{}", match.empty() ? "" : " AND ", quote_ident(c->name), i++);
    select = db.prepare(fmt::format("SELECT {} FROM {} WHERE {}", cols, quote_ident(t.name),
                                    match.empty() ? "0" : match));
  }
  std::optional<std::vector<Value>> read(const std::vector<Value>& key) {
    select.reset();
    for (size_t i = 0; i < key.size(); ++i) select.bind(static_cast<int>(i + 1), key[i]);
    if (!select.step()) {
      select.reset();
      return std::nullopt;
    }
    std::vector<Value> out;
    for (int i = 0; i < select.column_count(); ++i) out.push_back(select.column(i));
    select.reset();
    return out;
  }
};

}  // namespace

std::vector<uint64_t> scrub_digests(Db& db, const CapturedTable& t, uint32_t first,
                                    uint32_t count) {
  std::vector<uint64_t> out(count, 0);
  if (count == 0 || first >= kDigestBuckets) return out;
  RowReader reader(db, t);
  std::set<uint32_t> window;
  for (uint32_t b = first; b < std::min(kDigestBuckets, first + count); ++b) window.insert(b);
  for (const auto& [b, entries] : bucket_entries(db, t, window, SIZE_MAX))
    for (const auto& e : entries) {
      if (e.version.deleted) continue;
      const auto values = reader.read(e.key);
      if (!values) continue;
      out[b - first] ^= scrub_entry_hash(canonical_key(e.key), e.version,
                                         row_content_hash(reader.names, *values));
    }
  return out;
}

std::optional<std::vector<Value>> row_values(Db& db, const CapturedTable& t,
                                             const std::vector<Value>& key,
                                             std::vector<std::string>& names) {
  RowReader reader(db, t);
  names = reader.names;
  return reader.read(key);
}

std::optional<uint64_t> winning_content(uint64_t origin, const std::vector<ContentVote>& votes) {
  if (votes.empty()) return std::nullopt;
  for (const auto& v : votes)
    if (v.node == origin) return v.content;
  std::map<uint64_t, size_t> counts;
  for (const auto& v : votes) ++counts[v.content];
  // Most votes; among equal counts the lowest hash (std::map iterates in ascending order).
  auto best = counts.begin();
  for (auto it = counts.begin(); it != counts.end(); ++it)
    if (it->second > best->second) best = it;
  return best->first;
}

DigestUpdater::DigestUpdater(Db& db, Writes writes)
    : db_(&db), batched_(writes == Writes::Batched) {
  active_ = digest_table_exists(db);
  if (!active_) return;
  read_chunk_ =
      db.prepare("SELECT hashes, rows FROM __harmony_digest_chunks WHERE tbl = ?1 AND chunk = ?2");
  write_chunk_ = db.prepare(
      "INSERT INTO __harmony_digest_chunks (tbl, chunk, hashes, rows) VALUES (?1, ?2, ?3, ?4) "
      "ON CONFLICT DO UPDATE SET hashes = excluded.hashes, rows = excluded.rows");
  // Both or neither: ensure_digest_table creates them together (a file of an older release has
  // the keys only until its replicator starts; until then nothing is staged).
  if (digest_keys_exist(db) && staged_keys_exist(db)) {
    add_key_ = db.prepare(
        "INSERT OR IGNORE INTO __harmony_digest_keys (tbl, bucket, key) VALUES (?1, ?2, ?3)");
    drop_key_ =
        db.prepare("DELETE FROM __harmony_digest_keys WHERE tbl = ?1 AND bucket = ?2 AND key = ?3");
    keys_active_ = true;
  }
}

void DigestUpdater::change(int64_t table_id, const std::vector<Value>& key,
                           const std::optional<RowVersion>& before,
                           const std::optional<RowVersion>& after) {
  if (!active_ || before == after) return;
  std::string k = canonical_key(key);
  uint64_t delta = 0;
  if (before) delta ^= entry_hash(k, *before);
  if (after) delta ^= entry_hash(k, *after);
  const int64_t rows = (after ? 1 : 0) - (before ? 1 : 0);
  const uint32_t bucket = key_bucket(k);
  TableSums& sums = sums_[table_id];
  sums.hashes[bucket] ^= delta;
  sums.touched |= uint64_t{1} << (bucket / kDigestChunkBuckets);
  sums.rows[bucket / kDigestChunkBuckets] += rows;
  if (!batched_) write_sums();
  if (rows == 0 || !keys_active_) return;
  if (rows > 0 && batched_) {
    keys_.push_back(NewKey{table_id, bucket, std::move(k)});
    ++added_;
    if (keys_.size() >= kMaxBufferedKeys) write_keys();
    return;
  }
  if (rows < 0 && !staging_merged_) {
    // A drop (tombstone GC) deletes from the b-tree: the key may still be staged or kept here,
    // so those go in first. Once per updater: later drops find nothing staged.
    write_keys();
    merge_staged_keys(*db_);
    staging_merged_ = true;
  }
  Stmt& s = rows > 0 ? add_key_ : drop_key_;
  s.reset();
  s.bind(1, table_id).bind(2, int64_t{bucket}).bind(3, Value{Blob{std::move(k)}}).run();
}

void DigestUpdater::write_keys() {
  if (keys_.empty()) return;
  Stmt* insert = &add_key_;
  if (added_ >= kStageKeysFrom) {
    if (!stage_key_)
      stage_key_ = db_->prepare(
          "INSERT INTO __harmony_digest_keys_new (tbl, bucket, key) VALUES (?1, ?2, ?3)");
    insert = &stage_key_;
  } else {
    // A few keys: into the b-tree at once, in its order (neighbours share pages).
    std::sort(keys_.begin(), keys_.end());
  }
  for (auto& k : keys_) {
    insert->reset();
    insert->bind(1, k.table_id).bind(2, int64_t{k.bucket}).bind(3, Value{Blob{std::move(k.key)}});
    insert->run();
  }
  keys_.clear();
}

void DigestUpdater::write_sums() {
  for (auto& [table_id, sums] : sums_) {
    for (uint32_t c = 0; c < kDigestChunks; ++c) {
      if ((sums.touched & (uint64_t{1} << c)) == 0) continue;
      uint64_t* delta = &sums.hashes[size_t{c} * kDigestChunkBuckets];
      uint64_t stored[kDigestChunkBuckets];
      int64_t rows = 0;
      read_chunk_.reset();
      read_chunk_.bind(1, table_id).bind(2, int64_t{c});
      if (read_chunk_.step()) {
        read_chunk_hashes(as_view(read_chunk_.column(0)), stored);
        rows = read_chunk_.column_int(1);
      } else {
        std::fill(std::begin(stored), std::end(stored), uint64_t{0});
      }
      read_chunk_.reset();
      for (size_t i = 0; i < kDigestChunkBuckets; ++i) stored[i] ^= delta[i];
      rows += sums.rows[c];
      sums.rows[c] = 0;
      write_chunk_.reset();
      write_chunk_.bind(1, table_id)
          .bind(2, int64_t{c})
          .bind(3, Value{Blob{chunk_blob(stored)}})
          .bind(4, rows)
          .run();
      std::fill(delta, delta + kDigestChunkBuckets, uint64_t{0});
    }
    sums.touched = 0;
  }
}

void DigestUpdater::discard() {
  // Called at every transaction's start: only touched chunks hold anything to clear.
  for (auto& [table_id, sums] : sums_) {
    for (uint32_t c = 0; c < kDigestChunks; ++c) {
      if ((sums.touched & (uint64_t{1} << c)) == 0) continue;
      std::fill_n(&sums.hashes[size_t{c} * kDigestChunkBuckets], kDigestChunkBuckets, uint64_t{0});
      sums.rows[c] = 0;
    }
    sums.touched = 0;
  }
  keys_.clear();
  added_ = 0;
}

void DigestUpdater::flush() {
  bool changed = added_ > 0;
  for (const auto& [table_id, sums] : sums_) changed = changed || sums.touched != 0;
  write_sums();
  if (keys_active_ && batched_) {
    write_keys();
    // Merge when enough wait, or when this transaction was a small one that changed something:
    // the burst that staged them is over, and a steady state keeps every key in the b-tree. (Not
    // for a flush that changed nothing: every apply transaction folds first, usually nothing.)
    if (!count_staged_)
      count_staged_ = db_->prepare(
          "SELECT coalesce(max(rowid) - min(rowid) + 1, 0) FROM __harmony_digest_keys_new");
    count_staged_.reset();
    const int64_t staged = count_staged_.step() ? count_staged_.column_int(0) : 0;
    count_staged_.reset();
    if (staged > 0 && (staged >= kMergeStagedKeysAt || (changed && added_ < kStageKeysFrom)))
      merge_staged_keys(*db_);
  }
  added_ = 0;
}

int64_t add_to_anti_entropy_gap(Db& db, int64_t sequences) {
  const int64_t gap = std::max<int64_t>(
      0, std::max<int64_t>(0, meta_get_int(db, kAntiEntropyGapKey, 0)) + sequences);
  meta_set(db, kAntiEntropyGapKey, gap);
  return gap;
}

}  // namespace harmony
