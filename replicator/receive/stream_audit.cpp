// Comparing what was read with the stream leader's copy (see stream_audit.hpp).
#include "replicator/receive/stream_audit.hpp"

#include <algorithm>

#include <fmt/format.h>

namespace harmony {

std::string StreamAudit::identity(const std::optional<std::string>& msg_id,
                                  const std::string& payload) {
  if (msg_id && !msg_id->empty()) return *msg_id;
  return fmt::format("#{:016x}/{}", std::hash<std::string>{}(payload), payload.size());
}

void StreamAudit::record(uint64_t seq, std::string id, size_t bytes) {
  if (entries_.empty() || seq > entries_.back().seq) {
    entries_.push_back({seq, std::move(id), bytes, false});
    bytes_ += bytes;
    while (entries_.size() > 1 &&
           (entries_.size() > limits_.max_entries || bytes_ > limits_.max_bytes)) {
      bytes_ -= entries_.front().bytes;
      entries_.pop_front();
    }
    return;
  }
  if (seq < entries_.front().seq) return;  // older than the window: nothing to compare with
  auto it = std::lower_bound(entries_.begin(), entries_.end(), seq,
                             [](const Entry& e, uint64_t s) { return e.seq < s; });
  if (it != entries_.end() && it->seq == seq) {
    // The same sequence delivered again (a consumer reset): a different message there means
    // the stream's history changed under us. What was applied stays recorded; the leader
    // decides at once.
    if (it->identity != id) {
      it->verified = false;
      full_checks_.insert(full_checks_.begin(), Clock::time_point::min());
    }
    return;
  }
  // A sequence inside the window that was never delivered before.
  entries_.insert(it, {seq, std::move(id), bytes, false});
  bytes_ += bytes;
}

void StreamAudit::suspect(Clock::time_point now) {
  full_checks_.push_back(now + limits_.first_full);
  full_checks_.push_back(now + limits_.second_full);
  std::sort(full_checks_.begin(), full_checks_.end());
}

bool StreamAudit::due(Clock::time_point now) const {
  if (!full_checks_.empty() && full_checks_.front() <= now) return true;
  return !next_tick_ || *next_tick_ <= now;
}

size_t StreamAudit::unverified() const {
  return static_cast<size_t>(
      std::count_if(entries_.begin(), entries_.end(), [](const Entry& e) { return !e.verified; }));
}

std::vector<IncomingMessage> StreamAudit::run(Clock::time_point now,
                                              const std::function<LeaderMessage(uint64_t)>& fetch,
                                              AuditCounters& counters) {
  std::vector<IncomingMessage> differing;
  if (!due(now)) return differing;
  next_tick_ = now + limits_.tick;
  bool full = false;
  while (!full_checks_.empty() && full_checks_.front() <= now) {
    full_checks_.erase(full_checks_.begin());
    full = true;
  }
  if (full)
    for (auto& e : entries_) e.verified = false;
  size_t budget = full ? entries_.size() : limits_.tick_budget;
  // Newest first: a fork shows at the newest messages first, and the routine budget is best
  // spent where nothing was checked yet.
  for (auto it = entries_.rbegin(); it != entries_.rend() && budget > 0; ++it) {
    if (it->verified) continue;
    LeaderMessage leader = fetch(it->seq);
    ++counters.leader_reads;
    if (leader.status == LeaderMessage::Status::Found)
      counters.leader_bytes += leader.message.payload.size();
    if (leader.status == LeaderMessage::Status::Unavailable) {
      // No leader right now (election, outage): keep what was found; if this was a full check,
      // it is due again at the next tick.
      if (full) full_checks_.insert(full_checks_.begin(), *next_tick_);
      break;
    }
    --budget;
    it->verified = true;
    if (leader.status == LeaderMessage::Status::Gone) continue;  // removed by retention
    ++counters.checked;
    if (leader.identity == it->identity) continue;
    ++counters.mismatched;
    if (counters.example.empty())
      counters.example = fmt::format("sequence {}: read {}, leader has {}", it->seq, it->identity,
                                     leader.identity);
    it->identity = leader.identity;
    leader.message.stream_seq = it->seq;
    leader.message.replay = true;
    differing.push_back(std::move(leader.message));
    if (!full) {
      // The first difference found by a routine check: check everything now, and once more
      // later in case the replica that served us is still settling.
      full = true;
      budget = entries_.size();
      full_checks_.push_back(now + limits_.second_full);
      std::sort(full_checks_.begin(), full_checks_.end());
    }
  }
  std::sort(differing.begin(), differing.end(),
            [](const IncomingMessage& a, const IncomingMessage& b) {
              return a.stream_seq < b.stream_seq;
            });
  return differing;
}

}  // namespace harmony
