// Content digests for anti-entropy (docs/anti-entropy.md): per captured table, kDigestBuckets
// hash buckets over the primary key; a bucket's digest is the XOR of a 64-bit hash of every
// {rows} entry (canonical key bytes, version, node, tombstone) that falls in it. XOR makes the
// digest independent of the order rows were written in and lets fold and apply keep it up to
// date by one XOR per changed row (remove the old entry's hash, add the new one), stored in
// __harmony_digest in the same transaction as the {rows} change. This file owns the hashing, the
// stored table (incremental updates and the rebuild from {rows}) and the diff of two digests.
// Pure logic plus SQLite: no NATS, no config.
#pragma once
#include <array>
#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "shared/capture_registry.hpp"
#include "shared/sqlite_db.hpp"
#include "shared/value.hpp"

namespace harmony {

// 4096 buckets per table: the bucket digests of a table that differs are 32 KiB (four pages of
// 1024, each well under NATS's default 1 MiB payload), and a bucket of a 1M-row table holds ~244
// rows, so listing the entries of a differing bucket costs ~8 KB. Fewer buckets would make each
// listed bucket (the repair's unit of traffic) larger; more would make the bucket pages larger.
// Every node must use the same number (the bucket of a key is part of the protocol).
inline constexpr uint32_t kDigestBuckets = 4096;

// __harmony_meta key: sequences of the streams this node skipped because retention had removed
// them before it read them: at start-up when no snapshot covered them
// (replicator/snapshot/snapshot_service.cpp), or while running (replicator/receive/consumer.cpp).
// The rows they carried are anti-entropy's to fill; a round with every reachable peer that finds
// nothing missing here takes off what it started with (replicator/sync/anti_entropy.cpp).
inline constexpr const char* kAntiEntropyGapKey = "anti_entropy_gap";
// Adds `sequences` (negative: takes off) to kAntiEntropyGapKey, never below 0; returns the new
// gap. Inside the caller's write transaction.
int64_t add_to_anti_entropy_gap(Db& db, int64_t sequences);

// What {rows} records for one key.
struct RowVersion {
  int64_t version = 0;  // HLC
  uint64_t node = 0;    // origin
  bool deleted = false;
  bool operator==(const RowVersion&) const = default;
};

// Last-writer-wins order of two versions of one row: (version, node), as the Applier decides.
inline bool newer_than(const RowVersion& a, const RowVersion& b) {
  return a.version != b.version ? a.version > b.version : a.node > b.node;
}

// Canonical bytes of a value: the storage class (one byte) then the value exactly as the wire
// carries it (shared/value.hpp): int64 and REAL bits little-endian, TEXT and BLOB as a 64-bit
// length plus the raw bytes. Every node derives the same bytes from the same received Value.
void append_canonical(std::string& out, const Value& v);
std::string canonical_key(const std::vector<Value>& key);

uint64_t hash64(std::string_view bytes, uint64_t seed);
uint32_t key_bucket(std::string_view canonical_key_bytes);
uint64_t entry_hash(std::string_view canonical_key_bytes, const RowVersion& v);

// One table's digest in memory.
struct TableDigest {
  std::vector<uint64_t> buckets = std::vector<uint64_t>(kDigestBuckets, 0);
  int64_t rows = 0;  // {rows} entries, tombstones included
  void toggle(const std::vector<Value>& key, const RowVersion& v);  // add or remove (XOR)
  uint64_t root() const;
  bool operator==(const TableDigest&) const = default;
};

// A hash of the bucket array (not an XOR: two tables with the same buckets in other places
// must differ). Sent in the first message of a round.
uint64_t root_of(const std::vector<uint64_t>& buckets);

// Buckets whose digests differ (both arrays kDigestBuckets long).
std::vector<uint32_t> differing_buckets(const std::vector<uint64_t>& a,
                                        const std::vector<uint64_t>& b);

struct DigestEntry {
  std::vector<Value> key;
  RowVersion version;
};

// Keys whose peer entry wins over ours (we lack the key, or hold an older version): what a pull
// fetches. `mine` and `theirs` are the entries of the same buckets.
std::vector<std::vector<Value>> keys_to_fetch(const std::vector<DigestEntry>& mine,
                                              const std::vector<DigestEntry>& theirs);

// --- Stored digests (__harmony_digest_chunks) ---

// The stored digest: __harmony_digest_chunks (tbl, chunk, hashes, rows), kDigestChunkBuckets
// consecutive buckets per row, their hashes one BLOB of little-endian 64-bit words; the sum of
// `rows` over a table's chunks is its entry count. Why chunks (issue 18, docs/performance.md): a
// 1000-row transaction touches ~900 of a table's 4096 buckets, and one upsert per bucket was 15 %
// of the apply's instructions; by chunks of 64 it rewrites 64 rows of 512 bytes (7 to a 4 KiB
// page), while a 1-row transaction still rewrites one row. A chunk of zeros may be absent.
inline constexpr uint32_t kDigestChunkBuckets = 64;
inline constexpr uint32_t kDigestChunks = kDigestBuckets / kDigestChunkBuckets;

// Creates __harmony_digest_chunks when missing (dropping the per-bucket __harmony_digest of
// releases before it). Returns true when it was created (rebuild needed).
bool ensure_digest_table(Db& db);
bool digest_table_exists(Db& db);
// Scans {rows} (one read of the table; used at start-up and to check the stored digest).
TableDigest compute_digest(Db& db, const CapturedTable& t);
TableDigest load_digest(Db& db, int64_t table_id);
void store_digest(Db& db, int64_t table_id, const TableDigest& d);
// Recomputes every table's stored digest from {rows} inside the caller's transaction; drops the
// digests of tables no longer captured. Returns the tables whose stored digest was wrong.
std::vector<std::string> rebuild_digests(Db& db, const std::vector<CapturedTable>& tables);

// The keys of each bucket are kept in __harmony_digest_keys (tbl, bucket, canonical key), by the
// DigestUpdater next to the digest, so listing a bucket reads that bucket only (the repair costs
// what differs, not the table: docs/anti-entropy.md has the figures). Existing files get it from
// the start-up rebuild (rebuild_digests fills it when its key count differs from {rows}).
bool digest_keys_exist(Db& db);
// The values of a key from its canonical bytes; nullopt when the bytes are not a canonical key.
std::optional<std::vector<Value>> decode_canonical_key(std::string_view bytes);

// Every {rows} entry of `t` in `buckets`: from __harmony_digest_keys (one index range per bucket
// and a {rows} lookup per key) when it exists, else one read of {rows}. Whole buckets only: stops
// before a bucket that would take the result past `max_entries` (never returns part of a bucket),
// and `complete` lists the buckets returned. A single bucket above the bound is returned alone.
std::map<uint32_t, std::vector<DigestEntry>> bucket_entries(Db& db, const CapturedTable& t,
                                                            const std::set<uint32_t>& buckets,
                                                            size_t max_entries);

// --- Content scrub (docs/anti-entropy.md) ---
// {rows} versions cannot see a value changed with capture muted: the scrub hashes the values.

// Hash of a row's values, independent of column order (nodes may have added columns in another
// order): (name, canonical value) pairs sorted by name.
uint64_t row_content_hash(const std::vector<std::string>& names, const std::vector<Value>& values);
// One live row's contribution to its bucket's scrub digest: its key, version and content.
uint64_t scrub_entry_hash(std::string_view canonical_key_bytes, const RowVersion& v,
                          uint64_t content);
// The scrub digests of buckets [first, first + count): XOR of scrub_entry_hash over the live
// {rows} entries whose row exists here (a row this node lacks is not vouched for). One read of
// {rows} plus one row read per live entry in those buckets.
std::vector<uint64_t> scrub_digests(Db& db, const CapturedTable& t, uint32_t first, uint32_t count);
// The values of the row at `key` here (non-generated columns, names in `names`); nullopt when
// the table has no such row.
std::optional<std::vector<Value>> row_values(Db& db, const CapturedTable& t,
                                             const std::vector<Value>& key,
                                             std::vector<std::string>& names);

// What one node holds for a row whose version (value, origin, live) is the same as ours.
struct ContentVote {
  uint64_t node = 0;
  uint64_t content = 0;  // row_content_hash
};
// The content the row's version stands for: the origin node's when it voted (it wrote it), else
// the content most nodes hold, a tie going to the lowest content hash (every node decides the
// same). nullopt without votes.
std::optional<uint64_t> winning_content(uint64_t origin, const std::vector<ContentVote>& votes);

// Keys staged in bulk (see DigestUpdater): __harmony_digest_keys_new (tbl, bucket, key), a rowid
// table, so a catch-up appends to it instead of inserting at random places in the keys' b-tree.
// Its entries are part of the keys per bucket: bucket_entries reads them too, and
// merge_staged_keys moves them into __harmony_digest_keys in key order.
//
// Why (issue 18, docs/performance.md "Catch-up"): __harmony_digest_keys is ordered by bucket, a
// hash of the key, so the keys of one transaction land on pages all over its b-tree; a catch-up
// transaction of 20,000 rows into a table of 1M keys dirtied nearly every leaf (~36 MB) and
// wrote it to the WAL again at each commit, which halved the catch-up rate.
//
// A transaction that adds at least this many keys stages them (below it they go straight into
// the b-tree: a few pages, and the steady state keeps no staged keys at all). 1024 keys dirty at
// most 1024 leaves directly, ~4 MiB; staged, 1024 keys of ~30 bytes fill ~8 pages.
inline constexpr size_t kStageKeysFrom = 1024;
// Staged keys are merged once this many are waiting: the merge writes each leaf of the b-tree it
// touches once, so a larger figure spreads that over more keys, while bucket_entries scans the
// staged keys (262,144 of ~30 bytes: ~8 MiB, a few milliseconds) and the merge's transaction
// holds the write lock for about a second on a 1M-key table.
inline constexpr int64_t kMergeStagedKeysAt = 262'144;
// A batched updater keeps at most this many added keys in memory before writing them (a fold of
// one huge local transaction): ~50 bytes each, ~3 MiB.
inline constexpr size_t kMaxBufferedKeys = 65'536;

// Staged keys waiting (O(log n): staging only appends, and a merge empties it).
int64_t staged_key_count(Db& db);
// Moves every staged key into __harmony_digest_keys, in key order; nothing when none wait.
void merge_staged_keys(Db& db);

// Incremental maintenance, used by fold and apply inside their write transaction: `before` is
// what {rows} held for the key (nullopt: no entry), `after` what it holds now. Does nothing when
// the database has no __harmony_digest_chunks yet (the replicator creates and fills it at
// start-up). Hook for tombstone GC (issue 16, not built yet): a pruned tombstone must leave the
// digest through here too (after = nullopt), and a horizon must keep a peer's round from fetching
// it back; see docs/anti-entropy.md.
class DigestUpdater {
 public:
  // Immediate: every change() writes its chunk and key at once. Batched (fold and apply): bucket
  // hashes and row totals are summed in memory and new keys kept, all written by flush(), which
  // the caller must call before its transaction commits; two upserts per row were a third of the
  // apply's instructions (docs/performance.md). flush() inserts a small transaction's keys into
  // __harmony_digest_keys in key order, and stages a large one's (kStageKeysFrom); a small
  // transaction that changes rows after a burst merges what the burst staged (so does a drop),
  // so a steady state stages nothing.
  enum class Writes { Immediate, Batched };
  explicit DigestUpdater(Db& db, Writes writes = Writes::Immediate);
  bool active() const { return active_; }
  // Both the digest and its key table exist: nothing to look up again.
  bool complete() const { return active_ && keys_active_; }
  void change(int64_t table_id, const std::vector<Value>& key,
              const std::optional<RowVersion>& before, const std::optional<RowVersion>& after);
  // Writes what Batched changes summed and kept (nothing otherwise), and starts again.
  void flush();
  // Forgets the sums and keys (their transaction rolled back).
  void discard();

 private:
  struct NewKey {
    int64_t table_id;
    uint32_t bucket;
    std::string key;
    auto operator<=>(const NewKey&) const = default;
  };
  // Hashes XORed and entries counted since the last write_sums, per table. Bounded by the
  // buckets: one array of kDigestBuckets per table changed, kept from one transaction to the
  // next (only touched chunks are cleared).
  struct TableSums {
    std::vector<uint64_t> hashes = std::vector<uint64_t>(kDigestBuckets, 0);
    std::array<int64_t, kDigestChunks> rows{};  // entries added minus removed, per chunk
    uint64_t touched = 0;                       // bit c: chunk c has a change
  };
  static_assert(kDigestChunks <= 64, "TableSums::touched has one bit per chunk");
  // XORs every touched chunk's sums into its stored row (read, XOR, write) and clears them.
  void write_sums();
  // Writes the kept keys: staged when this transaction added kStageKeysFrom or more, else into
  // the b-tree in key order.
  void write_keys();
  Db* db_ = nullptr;
  bool active_ = false;
  bool keys_active_ = false;  // __harmony_digest_keys exists
  bool batched_ = false;
  bool staging_merged_ = false;  // a drop merged the staged keys first (once per updater)
  Stmt read_chunk_, write_chunk_, add_key_, drop_key_, stage_key_, count_staged_;
  std::map<int64_t, TableSums> sums_;
  // Batched: keys added since the last flush (at most kMaxBufferedKeys kept), and their count.
  std::vector<NewKey> keys_;
  size_t added_ = 0;
};

}  // namespace harmony
