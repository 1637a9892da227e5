// Tombstone GC (docs/anti-entropy.md "Tombstones"): this node's safe mark (is it caught up, and
// how far), the pruning of {rows} tombstones below the active horizon in short bounded write
// transactions, and the rule that keeps anti-entropy from fetching back what was pruned
// (plan_fetch, pure). The horizon itself is membership.hpp's.
#pragma once
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "replicator/sync/membership.hpp"
#include "shared/capture_registry.hpp"
#include "shared/content_digest.hpp"
#include "shared/sqlite_db.hpp"

namespace harmony {

// Tombstones removed per write transaction: ~10,000 small deletes (plus their digest and key
// entries) take tens of milliseconds, so an application waits at most that long for the lock.
inline constexpr size_t kPruneStepRows = 10'000;

// The streams' last sequences as the server holds them now (stream -> sequence), or nullopt when
// they cannot be read (no connection).
using StreamTails = std::function<std::optional<std::map<std::string, uint64_t>>()>;

// This node's safe mark, or nullopt when it is not caught up now. h is the HLC read first; then
// every capture log must be empty, no {rows} entry dirty (everything published and acknowledged),
// nothing held, and, read after those checks, every stream's last sequence at or below this
// node's applied position. Its own changes with a version below h were acknowledged before the
// tails were read, so they lie at or below p.
std::optional<SafeMark> take_safe_mark(Db& db, const StreamTails& tails);

// {rows} entries that are tombstones, over every captured table.
int64_t count_tombstones(Db& db, const std::vector<CapturedTable>& tables);

// Removes up to `limit` tombstones of `t` with a version below `horizon` that are not waiting to
// be published, with their digest contribution and digest key, inside the caller's write
// transaction. Returns how many went.
int64_t prune_tombstones(Db& db, const CapturedTable& t, int64_t horizon, size_t limit);

// What one side of an anti-entropy comparison knows about tombstone GC.
struct GcView {
  int64_t horizon = 0;   // active horizon (0: none)
  bool complete = true;  // false: a trimmed-stream gap not yet filled (anti_entropy_gap > 0)
};

struct FetchPlan {
  std::vector<std::vector<Value>> fetch;  // keys to pull from the peer (as keys_to_fetch)
  std::vector<DigestEntry> remove_local;  // own live entries the peer pruned (we are stale)
  int64_t skipped = 0;                    // differences left alone because of the horizon
};

// keys_to_fetch with the horizon's rules (docs/anti-entropy.md "Tombstones"), for the entries of
// the same complete buckets:
// - a tombstone below this node's horizon that it lacks is never fetched (it pruned it);
// - complete here, incomplete there: a live entry below our horizon that we lack is a delete we
//   pruned and the peer missed: not fetched;
// - incomplete here, complete there: fetched as before, and our live entries below the peer's
//   horizon that the peer lacks are to be removed here (the peer is authoritative below it);
// - both incomplete: differences below the lower horizon are skipped;
// - both complete: as keys_to_fetch.
FetchPlan plan_fetch(const std::vector<DigestEntry>& mine, const std::vector<DigestEntry>& theirs,
                     const GcView& me, const GcView& peer);

// Removes a stale live row and its {rows} entry here (inside the Applier's transaction: capture
// muted, no publication), with its digest contribution. Leaves it alone when {rows} no longer
// holds `expected` (changed since the comparison) or the entry waits to be published. Returns
// true when it went.
bool remove_stale_entry(Db& db, const CapturedTable& t, const std::vector<Value>& key,
                        const RowVersion& expected);

}  // namespace harmony
