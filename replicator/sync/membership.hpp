// Tombstone GC's membership and horizon (docs/anti-entropy.md "Tombstones"): the nodes this node
// has heard from in anti-entropy roots replies, each with its latest safe mark (h, p), and the
// two-generation horizon below which every member has applied every change. Owns the pure rule
// (Membership: fed reports and a clock, no NATS, no database) and its persistence in
// __harmony_members and __harmony_meta (load_membership / save_membership).
#pragma once
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "shared/sqlite_db.hpp"

namespace harmony {

// A node's safe mark: at a moment it was caught up (consumers at the streams' last sequences,
// capture log folded, nothing unpublished, no held rows), `h` is its HLC read before those
// checks and `p` its applied position per stream. Every change it created with a version below
// h is then in the streams at or below p.
struct SafeMark {
  int64_t h = 0;
  std::map<std::string, uint64_t> p;  // stream -> last applied sequence
  bool operator==(const SafeMark&) const = default;
};

struct Member {
  std::optional<SafeMark> mark;  // nullopt: it answered but never reported a mark (an old peer)
  int64_t last_seen_ms = 0;
};

// The pending candidate: H1 = min h, P1 = max p per stream over the members it was taken from.
struct HorizonCandidate {
  int64_t h = 0;
  std::map<std::string, uint64_t> p;
  std::vector<uint64_t> members;  // the member set it was taken over
  bool operator==(const HorizonCandidate&) const = default;
};

class Membership {
 public:
  explicit Membership(uint64_t self) : self_(self) {}

  // A roots reply (or this node's own mark) at wall clock `now_ms`.
  void observe(uint64_t node, const std::optional<SafeMark>& mark, int64_t now_ms);
  // Drops members not seen for `retention_ms` (never this node); returns them.
  std::vector<uint64_t> expire(int64_t now_ms, int64_t retention_ms);
  // The two-generation step: when every member's p has reached the candidate's P1 (per stream),
  // the candidate's H1 becomes the active horizon; then (or when there is no candidate, or the
  // member set changed) a new candidate is taken from the current marks. No candidate is taken
  // while a member has no mark or this node knows of no other member (a lone node cannot know
  // who else exists). Returns the active horizon (0: none).
  int64_t advance();

  int64_t horizon() const { return horizon_; }
  const std::optional<HorizonCandidate>& candidate() const { return candidate_; }
  const std::map<uint64_t, Member>& members() const { return members_; }
  uint64_t self() const { return self_; }

  // Restores persisted state (load_membership).
  void restore(std::map<uint64_t, Member> members, std::optional<HorizonCandidate> candidate,
               int64_t horizon);

 private:
  std::optional<HorizonCandidate> take_candidate() const;
  std::vector<uint64_t> member_ids() const;

  uint64_t self_;
  std::map<uint64_t, Member> members_;
  std::optional<HorizonCandidate> candidate_;
  int64_t horizon_ = 0;
};

// __harmony_meta keys: the active horizon, and the candidate (JSON) waiting to become it.
inline constexpr const char* kTombstoneHorizonKey = "tombstone_horizon";
inline constexpr const char* kTombstoneCandidateKey = "tombstone_candidate";

// Creates __harmony_members when missing (inside the caller's write transaction).
void ensure_members_table(Db& db);
// The persisted state; an empty Membership when nothing is stored yet.
Membership load_membership(Db& db, uint64_t self);
// Replaces the persisted state (inside the caller's write transaction).
void save_membership(Db& db, const Membership& m);
// This node's own mark as stored (what its roots reply reports), and the active horizon; both
// tolerate a database without __harmony_members (nullopt / 0).
std::optional<SafeMark> stored_own_mark(Db& db, uint64_t self);
int64_t stored_horizon(Db& db);

// The positions map as JSON text and back (persistence; nullopt when the text is not such a map).
std::string positions_json(const std::map<std::string, uint64_t>& p);
std::optional<std::map<std::string, uint64_t>> parse_positions_json(const std::string& text);

}  // namespace harmony
