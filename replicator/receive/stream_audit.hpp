// Checks what this node read from a stream against the stream leader's copy and hands back the
// leader's messages where the two differ, so they are applied after all.
//
// Why: the replicas of an R3 stream can disagree. Debian's nats-server 2.9.10 was seen (soak,
// issue 6) holding different messages at the same sequence on different servers after leader
// changes under SIGSTOP and partitions. A consumer served from such a replica, or one whose
// delivery resumed at "last sequence + 1" on a new leader, then skips a message that every other
// node applies, and the node stays behind for good. Re-applying a message is harmless (last
// writer wins), so the fix is to compare and re-apply, never to trust one read.
//
// What is compared: the identity (Nats-Msg-Id, or a payload hash when a message has none) of
// every recent message read, kept in a bounded window. Each tick verifies up to a budget of the
// newest unverified entries against the leader (a STREAM.MSG.GET request, answered by the stream
// leader only). After a suspicious event (a resubscribe, a reconnect, a new stream leader, a
// mismatch found) the whole window is marked unverified and checked in full, twice: shortly
// after the event and again later, because a replica that forked can be repaired by the server
// meanwhile and then serve the leader's messages again while ours were the forked ones.
#pragma once
#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "replicator/receive/consumer.hpp"

namespace harmony {

// The leader's answer for one sequence.
struct LeaderMessage {
  enum class Status { Found, Gone, Unavailable } status = Status::Unavailable;
  std::string identity;     // when Found
  IncomingMessage message;  // when Found
};

struct AuditCounters {
  uint64_t checked = 0;       // sequences compared with the leader
  uint64_t mismatched = 0;    // ... that held a different message there
  uint64_t leader_reads = 0;  // requests to the leader (answered or not): the audit's cost
  uint64_t leader_bytes = 0;  // payload bytes the leader sent back for them
  std::string example;        // the newest difference: "seq N: read <id>, leader has <id>"
};

class StreamAudit {
 public:
  using Clock = std::chrono::steady_clock;
  struct Limits {
    size_t max_entries = 4096;                   // window length, messages
    size_t max_bytes = 32u << 20;                // window size, payload bytes (a full check
                                                 // downloads this much from the leader at most)
    size_t tick_budget = 64;                     // routine checks per tick
    std::chrono::milliseconds tick{5000};        // routine check interval
    std::chrono::milliseconds first_full{3000};  // full checks after a suspicious event
    std::chrono::milliseconds second_full{20000};
  };
  StreamAudit() : StreamAudit(Limits{}) {}
  explicit StreamAudit(Limits limits) : limits_(limits) {}

  // The identity of a message: its Nats-Msg-Id, else a hash of its payload.
  static std::string identity(const std::optional<std::string>& msg_id, const std::string& payload);

  // A message this node read (or re-applied) at `seq`.
  void record(uint64_t seq, std::string identity, size_t bytes);
  // Something happened that can change what the stream serves: check the whole window.
  void suspect(Clock::time_point now);
  bool due(Clock::time_point now) const;

  // Runs the checks that are due. `fetch` asks the leader for one sequence. Returns the
  // leader's messages that differ from what was read, in sequence order, to be re-applied.
  // Stops early (and retries at the next tick) when the leader does not answer.
  std::vector<IncomingMessage> run(Clock::time_point now,
                                   const std::function<LeaderMessage(uint64_t)>& fetch,
                                   AuditCounters& counters);

  size_t window() const { return entries_.size(); }
  size_t unverified() const;

 private:
  struct Entry {
    uint64_t seq = 0;
    std::string identity;
    size_t bytes = 0;
    bool verified = false;
  };
  Limits limits_;
  std::deque<Entry> entries_;  // ascending by seq
  size_t bytes_ = 0;
  std::optional<Clock::time_point> next_tick_;
  std::vector<Clock::time_point> full_checks_;  // pending, ascending
};

}  // namespace harmony
