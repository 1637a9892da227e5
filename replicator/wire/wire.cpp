// Splitting encoded batches into NATS messages and reassembling them (see wire.hpp).
#include "replicator/wire/wire.hpp"

#include <charconv>
#include <iterator>

#include <fmt/format.h>

#include "shared/hlc.hpp"

namespace harmony {

std::vector<OutgoingPart> split_frame(const std::string& frame, uint64_t origin, uint64_t batch,
                                      size_t max_part_bytes) {
  std::vector<OutgoingPart> parts;
  const size_t count = frame.empty() ? 1 : (frame.size() + max_part_bytes - 1) / max_part_bytes;
  for (size_t i = 0; i < count; ++i) {
    OutgoingPart p;
    p.index = static_cast<uint32_t>(i + 1);
    p.count = static_cast<uint32_t>(count);
    p.msg_id = fmt::format("{}-{}-{}", origin, batch, p.index);
    p.payload = frame.substr(i * max_part_bytes, max_part_bytes);
    parts.push_back(std::move(p));
  }
  return parts;
}

namespace {
template <typename T>
bool parse_number(const std::string& s, T& out) {
  if (s.empty()) return false;
  auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
  return ec == std::errc() && ptr == s.data() + s.size();
}
}  // namespace

std::optional<std::string> parse_part_headers(const std::optional<std::string>& origin,
                                              const std::optional<std::string>& batch,
                                              const std::optional<std::string>& part,
                                              IncomingPart& out) {
  if (!origin || !batch || !part)
    return std::string(
        "missing Harmony-Origin/Harmony-Batch/Harmony-Part headers "
        "(not published by harmonylite)");
  if (!parse_number(*origin, out.origin))
    return fmt::format("bad Harmony-Origin header \"{}\"", origin->substr(0, 64));
  // Refused here, before reassembly: an origin out of range could only be forged, and would
  // take a slot of the assembler and be recorded as a negative node id (above 2^63-1).
  if (!node_id_valid(out.origin))
    return fmt::format("bad Harmony-Origin header \"{}\": node ids are 1 to {}",
                       origin->substr(0, 64), kMaxNodeId);
  if (!parse_number(*batch, out.batch))
    return fmt::format("bad Harmony-Batch header \"{}\"", batch->substr(0, 64));
  auto slash = part->find('/');
  if (slash == std::string::npos || !parse_number(part->substr(0, slash), out.index) ||
      !parse_number(part->substr(slash + 1), out.count) || out.index < 1 || out.index > out.count ||
      out.count > kMaxParts)
    return fmt::format("bad Harmony-Part header \"{}\"", part->substr(0, 64));
  return std::nullopt;
}

void BatchAssembler::drop(PendingMap::iterator it, const std::string& why, Result& result) {
  const Pending& p = it->second;
  result.dropped.push_back(
      fmt::format("batch {} of node {} dropped incomplete ({} of {} parts): {}", p.batch, it->first,
                  p.parts.size(), p.count, why));
  pending_bytes_ -= p.bytes;
  pending_.erase(it);
}

void BatchAssembler::expire(uint64_t seq, Result& result) {
  for (auto it = pending_.begin(); it != pending_.end();) {
    const auto next = std::next(it);
    if (seq > it->second.first_seq && seq - it->second.first_seq > limits_.expiry_seqs)
      drop(it,
           fmt::format("expired, its first part (seq {}) is more than {} messages old",
                       it->second.first_seq, limits_.expiry_seqs),
           result);
    it = next;
  }
}

bool BatchAssembler::drop_oldest(uint64_t keep_origin, const std::string& why, Result& result) {
  auto oldest = pending_.end();
  for (auto it = pending_.begin(); it != pending_.end(); ++it)
    if (it->first != keep_origin &&
        (oldest == pending_.end() || it->second.first_seq < oldest->second.first_seq))
      oldest = it;
  if (oldest == pending_.end()) return false;
  drop(oldest, why, result);
  return true;
}

BatchAssembler::Result BatchAssembler::add(IncomingPart part) {
  Result result;
  expire(part.stream_seq, result);
  if (part.payload.empty()) {
    result.dropped.push_back(fmt::format("empty part {}/{} of batch {} of node {} ignored",
                                         part.index, part.count, part.batch, part.origin));
    return result;
  }
  if (part.count == 1) {
    // Any incomplete batch of this origin is superseded.
    if (auto it = pending_.find(part.origin); it != pending_.end())
      drop(it, fmt::format("superseded by batch {}", part.batch), result);
    result.complete = AssembledBatch{part.origin, part.batch, part.stream_seq, part.stream_seq,
                                     std::move(part.payload)};
    return result;
  }
  auto it = pending_.find(part.origin);
  if (it != pending_.end() && (it->second.batch != part.batch || it->second.count != part.count)) {
    if (part.batch < it->second.batch) {
      result.dropped.push_back(fmt::format("stale part {}/{} of batch {} of node {} ignored",
                                           part.index, part.count, part.batch, part.origin));
      return result;
    }
    drop(it, fmt::format("superseded by batch {}", part.batch), result);
    it = pending_.end();
  }
  if (it == pending_.end()) {
    if (auto done = completed_.find(part.origin);
        done != completed_.end() && done->second == std::make_pair(part.batch, part.count)) {
      result.dropped.push_back(
          fmt::format("part {}/{} of batch {} of node {} ignored: that batch is already complete",
                      part.index, part.count, part.batch, part.origin));
      return result;
    }
    if (pending_.size() >= limits_.max_pending_batches)
      drop_oldest(
          part.origin,
          fmt::format("more than {} incomplete batches pending", limits_.max_pending_batches),
          result);
    Pending p;
    p.batch = part.batch;
    p.count = part.count;
    p.first_seq = part.stream_seq;
    it = pending_.emplace(part.origin, std::move(p)).first;
  }
  Pending& p = it->second;
  if (p.parts.count(part.index)) return result;  // a redelivered part is counted once
  const size_t size = part.payload.size();
  if (p.bytes + size > limits_.max_pending_bytes) {
    // This batch alone is larger than the bound: it could never be held whole, and dropping
    // other batches for it would be in vain.
    drop(it,
         fmt::format("larger than the {} bytes incomplete batches may hold",
                     limits_.max_pending_bytes),
         result);
    return result;
  }
  while (pending_bytes_ + size > limits_.max_pending_bytes &&
         drop_oldest(part.origin,
                     fmt::format("incomplete batches exceed {} bytes", limits_.max_pending_bytes),
                     result)) {
  }
  p.parts.emplace(part.index, std::move(part.payload));
  p.bytes += size;
  pending_bytes_ += size;
  if (p.parts.size() < p.count) return result;
  AssembledBatch done{part.origin, p.batch, p.first_seq, part.stream_seq, {}};
  done.frame.reserve(p.bytes);
  for (auto& [index, s] : p.parts) done.frame += s;
  completed_[part.origin] = {p.batch, p.count};
  pending_bytes_ -= p.bytes;
  pending_.erase(it);
  result.complete = std::move(done);
  return result;
}

uint64_t BatchAssembler::safe_position(uint64_t applied_up_to) const {
  uint64_t safe = applied_up_to;
  for (const auto& [origin, p] : pending_)
    if (p.first_seq > 0) safe = std::min(safe, p.first_seq - 1);
  return safe;
}

}  // namespace harmony
