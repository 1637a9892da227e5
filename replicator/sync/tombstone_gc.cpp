// Tombstone GC: safe mark, pruning, and the horizon's rules for anti-entropy (see
// tombstone_gc.hpp).
#include "replicator/sync/tombstone_gc.hpp"

#include <algorithm>
#include <unordered_map>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "shared/fold.hpp"
#include "shared/meta_store.hpp"

namespace harmony {

std::optional<SafeMark> take_safe_mark(Db& db, const StreamTails& tails) {
  if (!tails) return std::nullopt;
  SafeMark mark;
  {
    Transaction tx(db, Transaction::Kind::Deferred);
    mark.h = load_clock(db);  // first: whatever is folded after this gets a version above it
  }
  {
    Transaction tx(db, Transaction::Kind::Deferred);
    for (const auto& t : captured_tables(db)) {
      if (db.query_int(fmt::format("SELECT EXISTS (SELECT 1 FROM {})", t.log)) != 0)
        return std::nullopt;  // not folded yet
      if (db.query_int(fmt::format("SELECT EXISTS (SELECT 1 FROM {} WHERE dirty)", t.rows)) != 0)
        return std::nullopt;  // not published and acknowledged yet
    }
    if (db.query_int("SELECT EXISTS (SELECT 1 FROM __harmony_held)") != 0) return std::nullopt;
  }
  // Read after the outbox was found empty: every own change below h is in the streams by now.
  const auto last = tails();
  if (!last || last->empty()) return std::nullopt;
  std::map<std::string, uint64_t> positions;
  {
    Transaction tx(db, Transaction::Kind::Deferred);
    positions = load_positions(db);
  }
  for (const auto& [stream, seq] : *last) {
    const uint64_t at = positions.count(stream) ? positions[stream] : 0;
    if (at < seq) return std::nullopt;  // behind: messages wait to be applied here
    mark.p[stream] = at;
  }
  return mark;
}

int64_t count_tombstones(Db& db, const std::vector<CapturedTable>& tables) {
  int64_t n = 0;
  for (const auto& t : tables)
    n += db.query_int(fmt::format("SELECT count(*) FROM {} WHERE deleted", t.rows));
  return n;
}

int64_t prune_tombstones(Db& db, const CapturedTable& t, int64_t horizon, size_t limit) {
  const size_t n = t.key_count();
  const auto keys = key_columns(n);
  // A dirty tombstone has not reached the stream yet: it must go out first.
  auto pick = db.prepare(fmt::format(
      "SELECT {}, version, node FROM {} WHERE deleted AND NOT dirty AND version < ?1 LIMIT ?2",
      fmt::join(keys, ", "), t.rows));
  pick.bind(1, horizon).bind(2, static_cast<int64_t>(limit));
  std::vector<std::pair<std::vector<Value>, RowVersion>> victims;
  while (pick.step()) {
    std::vector<Value> key;
    for (size_t i = 0; i < n; ++i) key.push_back(pick.column(static_cast<int>(i)));
    victims.emplace_back(
        std::move(key),
        RowVersion{pick.column_int(static_cast<int>(n)),
                   static_cast<uint64_t>(pick.column_int(static_cast<int>(n + 1))), true});
  }
  pick.reset();
  auto drop = db.prepare(fmt::format("DELETE FROM {} WHERE {}", t.rows, key_match(keys, 1)));
  DigestUpdater digest(db);
  for (const auto& [key, version] : victims) {
    drop.reset();
    for (size_t i = 0; i < n; ++i) drop.bind(static_cast<int>(i + 1), key[i]);
    drop.run();
    digest.change(t.id, key, version, std::nullopt);
  }
  return static_cast<int64_t>(victims.size());
}

FetchPlan plan_fetch(const std::vector<DigestEntry>& mine, const std::vector<DigestEntry>& theirs,
                     const GcView& me, const GcView& peer) {
  std::unordered_map<std::string, const DigestEntry*> local, remote;
  for (const auto& e : mine) local.emplace(canonical_key(e.key), &e);
  for (const auto& e : theirs) remote.emplace(canonical_key(e.key), &e);
  const int64_t lower = std::min(me.horizon, peer.horizon);
  FetchPlan plan;
  for (const auto& e : theirs) {
    auto it = local.find(canonical_key(e.key));
    const bool lack = it == local.end();
    if (!lack && !newer_than(e.version, it->second->version)) continue;  // nothing to pull
    const int64_t v = e.version.version;
    bool skip = false;
    // A tombstone below our horizon changes no content here: we pruned it (or never had the key).
    if (lack && e.version.deleted && v < me.horizon) skip = true;
    // Complete here, incomplete there: a live entry below our horizon that we lack is a delete
    // we pruned and the peer missed (its gap): fetching it would resurrect the row.
    if (me.complete && !peer.complete && lack && v < me.horizon) skip = true;
    // Both incomplete: neither can vouch for what lies below the horizon.
    if (!me.complete && !peer.complete && v < lower) skip = true;
    if (skip)
      ++plan.skipped;
    else
      plan.fetch.push_back(e.key);
  }
  // Incomplete here, complete there: the peer is authoritative below its horizon; what we hold
  // live there and it lacks was deleted and pruned while we missed the delete.
  if (!me.complete && peer.complete && peer.horizon > 0)
    for (const auto& e : mine)
      if (!e.version.deleted && e.version.version < peer.horizon &&
          !remote.count(canonical_key(e.key)))
        plan.remove_local.push_back(e);
  return plan;
}

bool remove_stale_entry(Db& db, const CapturedTable& t, const std::vector<Value>& key,
                        const RowVersion& expected) {
  const size_t n = t.key_count();
  if (key.size() != n) return false;
  const auto keys = key_columns(n);
  auto check = db.prepare(fmt::format("SELECT version, node, deleted, dirty FROM {} WHERE {}",
                                      t.rows, key_match(keys, 1)));
  for (size_t i = 0; i < n; ++i) check.bind(static_cast<int>(i + 1), key[i]);
  if (!check.step()) return false;
  const RowVersion now{check.column_int(0), static_cast<uint64_t>(check.column_int(1)),
                       check.column_int(2) != 0};
  const bool dirty = check.column_int(3) != 0;
  check.reset();
  if (!(now == expected) || dirty) return false;  // changed meanwhile, or ours to publish
  auto row = db.prepare(
      fmt::format("DELETE FROM {} WHERE {}", quote_ident(t.name), key_match(quoted_pk(t.info), 1)));
  for (size_t i = 0; i < n; ++i) row.bind(static_cast<int>(i + 1), key[i]);
  row.run();
  auto entry = db.prepare(fmt::format("DELETE FROM {} WHERE {}", t.rows, key_match(keys, 1)));
  for (size_t i = 0; i < n; ++i) entry.bind(static_cast<int>(i + 1), key[i]);
  entry.run();
  DigestUpdater(db).change(t.id, key, expected, std::nullopt);
  return true;
}

}  // namespace harmony
