// In-memory stream for publisher/consumer unit tests (see fake_stream.hpp).
#include "tests/support/fake_stream.hpp"

#include <fmt/format.h>

namespace harmony::test {

uint64_t FakeStream::append(IncomingMessage m) {
  std::lock_guard<std::mutex> lock(mu_);
  m.stream_seq = messages_.size() + 1;
  messages_.push_back(std::move(m));
  cv_.notify_all();
  return messages_.size();
}

std::vector<IncomingMessage> FakeStream::snapshot() const {
  std::lock_guard<std::mutex> lock(mu_);
  return messages_;
}

size_t FakeStream::size() const {
  std::lock_guard<std::mutex> lock(mu_);
  return messages_.size();
}

bool FakeStream::seen_msg_id(const std::string& id) {
  std::lock_guard<std::mutex> lock(mu_);
  return !msg_ids_.insert(id).second;
}

std::optional<IncomingMessage> FakeStream::wait_at(uint64_t seq,
                                                   std::chrono::milliseconds timeout) {
  std::unique_lock<std::mutex> lock(mu_);
  if (!cv_.wait_for(lock, timeout, [&] { return messages_.size() >= seq; })) return std::nullopt;
  return messages_[seq - 1];
}

bool FakeTransport::publish(const std::vector<OutgoingPart>& parts, uint64_t origin, uint64_t batch,
                            std::string& error) {
  ++attempts;
  if (fail) {
    error = "no responders available for request (fake outage)";
    return false;
  }
  for (const auto& p : parts) {
    if (stream_.seen_msg_id(p.msg_id)) continue;  // JetStream's duplicate window
    IncomingMessage m;
    m.origin = std::to_string(origin);
    m.batch = std::to_string(batch);
    m.part = fmt::format("{}/{}", p.index, p.count);
    if (!p.auth.empty()) m.auth = p.auth;  // as JetStreamTransport sets Harmony-Auth
    m.payload = p.payload;
    stream_.append(std::move(m));
  }
  return true;
}

std::optional<IncomingMessage> FakeSource::next(std::chrono::milliseconds timeout) {
  auto m = stream_.wait_at(next_, timeout);
  if (m) ++next_;
  return m;
}

PublisherOptions fake_publisher_options(const std::string& db_path, uint64_t node) {
  PublisherOptions o;
  o.db_path = db_path;
  o.node = node;
  o.poll_interval = std::chrono::milliseconds(50);
  return o;
}

ConsumerOptions fake_consumer_options(const std::string& db_path, uint64_t node) {
  ConsumerOptions o;
  o.db_path = db_path;
  o.node = node;
  o.stream = "s-1";
  return o;
}

}  // namespace harmony::test
