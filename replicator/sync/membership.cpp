// Tombstone GC's membership and two-generation horizon (see membership.hpp).
#include "replicator/sync/membership.hpp"

#include <algorithm>

#include <nlohmann/json.hpp>

#include "shared/meta_store.hpp"

namespace harmony {

void Membership::observe(uint64_t node, const std::optional<SafeMark>& mark, int64_t now_ms) {
  Member& m = members_[node];
  // A peer that answers without a mark (it is not caught up right now) keeps its last report:
  // a mark only ever says "at some moment everything before h was at or below p", which stays
  // true.
  if (mark) m.mark = mark;
  m.last_seen_ms = std::max(m.last_seen_ms, now_ms);
}

std::vector<uint64_t> Membership::expire(int64_t now_ms, int64_t retention_ms) {
  std::vector<uint64_t> dropped;
  if (retention_ms <= 0) return dropped;
  for (auto it = members_.begin(); it != members_.end();) {
    if (it->first != self_ && now_ms - it->second.last_seen_ms > retention_ms) {
      dropped.push_back(it->first);
      it = members_.erase(it);
    } else {
      ++it;
    }
  }
  return dropped;
}

std::vector<uint64_t> Membership::member_ids() const {
  std::vector<uint64_t> ids;
  for (const auto& [id, m] : members_) ids.push_back(id);
  return ids;
}

std::optional<HorizonCandidate> Membership::take_candidate() const {
  // A lone node cannot know who else exists: with no other member nothing is ever safe.
  if (members_.size() < 2 || !members_.count(self_)) return std::nullopt;
  HorizonCandidate c;
  bool first = true;
  for (const auto& [id, m] : members_) {
    if (!m.mark) return std::nullopt;  // a member that never reported blocks the horizon
    c.h = first ? m.mark->h : std::min(c.h, m.mark->h);
    first = false;
    for (const auto& [stream, pos] : m.mark->p) c.p[stream] = std::max(c.p[stream], pos);
  }
  c.members = member_ids();
  return c;
}

int64_t Membership::advance() {
  if (candidate_ && candidate_->members != member_ids()) {
    // A member came or went since the candidate was taken: a newcomer's clock was not in H1 (it
    // may still create versions below it), so the candidate is taken again over the new set.
    candidate_.reset();
  }
  if (candidate_) {
    bool reached = true;
    for (const auto& [id, m] : members_) {
      if (!m.mark) {
        reached = false;
        break;
      }
      for (const auto& [stream, pos] : candidate_->p) {
        auto it = m.mark->p.find(stream);
        if (it == m.mark->p.end() || it->second < pos) reached = false;
      }
    }
    if (!reached) return horizon_;
    // Every member has applied everything up to P1, which holds every change any member created
    // with a version below H1: nothing below H1 can still arrive anywhere.
    horizon_ = std::max(horizon_, candidate_->h);
    candidate_.reset();
  }
  candidate_ = take_candidate();
  return horizon_;
}

void Membership::restore(std::map<uint64_t, Member> members,
                         std::optional<HorizonCandidate> candidate, int64_t horizon) {
  members_ = std::move(members);
  candidate_ = std::move(candidate);
  horizon_ = horizon;
}

// --- Persistence ---

std::string positions_json(const std::map<std::string, uint64_t>& p) {
  return nlohmann::json(p).dump();
}

std::optional<std::map<std::string, uint64_t>> parse_positions_json(const std::string& text) {
  const auto j = nlohmann::json::parse(text, nullptr, false);
  if (!j.is_object()) return std::nullopt;
  std::map<std::string, uint64_t> out;
  for (const auto& [k, v] : j.items()) {
    if (!v.is_number_unsigned()) return std::nullopt;
    out[k] = v.get<uint64_t>();
  }
  return out;
}

namespace {

bool members_table_exists(Db& db) {
  return db.query_int(
             "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = "
             "'__harmony_members'") > 0;
}

}  // namespace

void ensure_members_table(Db& db) {
  // node: member id; h, p: its latest safe mark (NULL: none reported); last_seen: wall clock ms.
  db.exec(
      "CREATE TABLE IF NOT EXISTS __harmony_members (node INTEGER PRIMARY KEY, h INTEGER, "
      "p TEXT, last_seen INTEGER NOT NULL)");
}

Membership load_membership(Db& db, uint64_t self) {
  Membership m(self);
  std::map<uint64_t, Member> members;
  if (members_table_exists(db)) {
    auto s = db.prepare("SELECT node, h, p, last_seen FROM __harmony_members");
    while (s.step()) {
      Member mem;
      mem.last_seen_ms = s.column_int(3);
      if (!s.column_is_null(1) && !s.column_is_null(2))
        if (auto p = parse_positions_json(s.column_text(2)))
          mem.mark = SafeMark{s.column_int(1), std::move(*p)};
      members[static_cast<uint64_t>(s.column_int(0))] = std::move(mem);
    }
  }
  std::optional<HorizonCandidate> candidate;
  if (auto v = meta_get(db, kTombstoneCandidateKey); v && std::holds_alternative<Text>(*v)) {
    const auto j = nlohmann::json::parse(std::get<Text>(*v).bytes, nullptr, false);
    if (j.is_object() && j.contains("h") && j["h"].is_number_integer() && j.contains("p") &&
        j.contains("m") && j["m"].is_array()) {
      HorizonCandidate c;
      c.h = j["h"].get<int64_t>();
      auto p = parse_positions_json(j["p"].dump());
      bool ok = p.has_value();
      if (ok) c.p = std::move(*p);
      for (const auto& id : j["m"]) {
        if (!id.is_number_unsigned())
          ok = false;
        else
          c.members.push_back(id.get<uint64_t>());
      }
      if (ok) candidate = std::move(c);
    }
  }
  m.restore(std::move(members), std::move(candidate), meta_get_int(db, kTombstoneHorizonKey, 0));
  return m;
}

void save_membership(Db& db, const Membership& m) {
  ensure_members_table(db);
  db.exec("DELETE FROM __harmony_members");
  auto ins =
      db.prepare("INSERT INTO __harmony_members (node, h, p, last_seen) VALUES (?, ?, ?, ?)");
  for (const auto& [id, mem] : m.members()) {
    ins.reset();
    ins.bind(1, static_cast<int64_t>(id));
    if (mem.mark) {
      ins.bind(2, mem.mark->h);
      ins.bind(3, std::string_view(positions_json(mem.mark->p)));
    } else {
      ins.bind_null(2);
      ins.bind_null(3);
    }
    ins.bind(4, mem.last_seen_ms);
    ins.run();
  }
  meta_set(db, kTombstoneHorizonKey, Value{m.horizon()});
  if (const auto& c = m.candidate()) {
    nlohmann::json j = {{"h", c->h}, {"p", c->p}, {"m", c->members}};
    meta_set(db, kTombstoneCandidateKey, Value{Text{j.dump()}});
  } else {
    meta_set(db, kTombstoneCandidateKey, Value{Text{""}});
  }
}

std::optional<SafeMark> stored_own_mark(Db& db, uint64_t self) {
  if (!members_table_exists(db)) return std::nullopt;
  auto s = db.prepare("SELECT h, p FROM __harmony_members WHERE node = ?");
  s.bind(1, static_cast<int64_t>(self));
  if (!s.step() || s.column_is_null(0) || s.column_is_null(1)) return std::nullopt;
  auto p = parse_positions_json(s.column_text(1));
  if (!p) return std::nullopt;
  return SafeMark{s.column_int(0), std::move(*p)};
}

int64_t stored_horizon(Db& db) {
  return meta_get_int(db, kTombstoneHorizonKey, 0);
}

}  // namespace harmony
