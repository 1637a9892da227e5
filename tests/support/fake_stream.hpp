// An in-memory stand-in for one JetStream stream, for unit tests of the publisher and consumer
// logic without a server: FakeTransport appends (with Nats-Msg-Id dedup), FakeSource reads
// from a start sequence. It can be told to fail publishes, like an unreachable NATS.
#pragma once
#include <atomic>
#include <condition_variable>
#include <mutex>
#include <set>
#include <vector>

#include "replicator/publish/publisher.hpp"
#include "replicator/receive/consumer.hpp"

namespace harmony::test {

class FakeStream {
 public:
  // Appends a raw message (as a foreign publisher would); returns its sequence.
  uint64_t append(IncomingMessage m);
  std::vector<IncomingMessage> snapshot() const;
  size_t size() const;
  std::optional<IncomingMessage> wait_at(uint64_t seq, std::chrono::milliseconds timeout);
  bool seen_msg_id(const std::string& id);  // records it; true when already present (dedup)

 private:
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::vector<IncomingMessage> messages_;  // seq = index + 1
  std::set<std::string> msg_ids_;
};

class FakeTransport : public BatchTransport {
 public:
  explicit FakeTransport(FakeStream& stream) : stream_(stream) {}
  bool publish(const std::vector<OutgoingPart>& parts, uint64_t origin, uint64_t batch,
               std::string& error) override;
  std::atomic<bool> fail{false};
  std::atomic<int> attempts{0};

 private:
  FakeStream& stream_;
};

class FakeSource : public MessageSource {
 public:
  explicit FakeSource(FakeStream& stream) : stream_(stream) {}
  void start(uint64_t start_seq) override { next_ = start_seq; }
  std::optional<IncomingMessage> next(std::chrono::milliseconds timeout) override;
  void stop() override {}

 private:
  FakeStream& stream_;
  uint64_t next_ = 1;
};

// Options for running a Publisher / Consumer on `db_path` against a FakeStream: the stream is
// named "s-1"; the publisher polls every 50 ms so tests do not wait on the default second.
PublisherOptions fake_publisher_options(const std::string& db_path, uint64_t node);
ConsumerOptions fake_consumer_options(const std::string& db_path, uint64_t node);

}  // namespace harmony::test
