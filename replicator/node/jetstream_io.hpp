// JetStream implementations of the publisher's BatchTransport and the consumer's
// MessageSource, on nats.c: publishes with Nats-Msg-Id (dedup) and ExpectStream, reads with an
// ephemeral push consumer (recreated here on gaps, reconnects and silence) starting at the
// stored position + 1 (positions live in the database, so the server keeps no consumer state
// for us), and (unless [replication_log] stream_audit = false) checks what it read against the
// stream leader's copy (replicator/receive/stream_audit.hpp), handing back the leader's messages
// where a replica served something else.
#pragma once
#include <nats/nats.h>

#include <atomic>
#include <chrono>
#include <deque>
#include <mutex>
#include <string>

#include "replicator/common/stats.hpp"
#include "replicator/nats/nats_client.hpp"
#include "replicator/publish/publisher.hpp"
#include "replicator/receive/consumer.hpp"
#include "replicator/receive/stream_audit.hpp"

namespace harmony {

class JetStreamTransport : public BatchTransport {
 public:
  JetStreamTransport(natsConnection* nc, std::string subject, std::string stream,
                     std::chrono::milliseconds ack_timeout);
  ~JetStreamTransport() override;
  bool publish(const std::vector<OutgoingPart>& parts, uint64_t origin, uint64_t batch,
               std::string& error) override;

 private:
  static void on_ack(jsCtx* js, natsMsg* msg, jsPubAck* pa, jsPubAckErr* pae, void* closure);
  natsConnection* nc_;
  JsCtxPtr js_;  // with the async ack handler
  std::string subject_, stream_;
  std::chrono::milliseconds ack_timeout_;
  std::mutex mu_;
  int acked_ = 0;
  std::string async_error_;
};

class JetStreamSource : public MessageSource {
 public:
  // `stats` (optional) receives the audit counters. `audit` false ([replication_log]
  // stream_audit = false): nothing is checked against the stream leader and nothing is asked
  // of it; reconnects still resubscribe.
  JetStreamSource(natsConnection* nc, std::string stream, std::string subject,
                  ReplicatorStats* stats = nullptr, bool audit = true);
  ~JetStreamSource() override;
  void start(uint64_t start_seq) override;
  std::optional<IncomingMessage> next(std::chrono::milliseconds timeout) override;
  void stop() override;

 private:
  bool subscribe();
  // A fresh consumer from the next sequence (the old one is deleted first).
  void resubscribe();
  // Resubscribes when nothing arrived for a while although the stream holds more.
  void check_stalled();
  // Resubscribes after a reconnect and runs the due checks against the stream leader;
  // differing messages go to repairs_.
  void audit();
  // A reconnect since the last look: resubscribes (and marks the audit window suspect).
  void check_reconnected(std::chrono::steady_clock::time_point now);
  // Messages already delivered to the subscription and not read yet.
  bool messages_waiting() const;
  LeaderMessage leader_message(uint64_t seq);
  uint64_t reconnects() const;
  static void on_leader_elected(natsConnection*, natsSubscription*, natsMsg* msg, void* closure);
  natsConnection* nc_;
  ReplicatorStats* stats_;
  const bool audit_enabled_;
  std::chrono::steady_clock::time_point next_reconnect_check_{};  // audit off
  JsCtxPtr audit_js_;  // leader requests with a short timeout
  NatsSubscriptionPtr leader_advisories_;
  std::atomic<bool> leader_changed_{false};
  StreamAudit audit_;
  // The last audit pass that ran to its end without giving way to waiting messages.
  std::chrono::steady_clock::time_point audit_completed_ = std::chrono::steady_clock::now();
  std::deque<IncomingMessage> repairs_;
  uint64_t reconnects_seen_ = 0;
  bool subscribed_before_ = false;
  JsCtxPtr js_;
  NatsSubscriptionPtr sub_;  // null while not subscribed
  std::string stream_, subject_;
  uint64_t next_seq_ = 1;
  uint64_t next_delivery_ = 1;  // consumer (delivery) sequence expected next
  std::chrono::steady_clock::time_point retry_at_{};
  std::chrono::steady_clock::time_point last_error_log_{};
  std::chrono::steady_clock::time_point last_message_{};
  std::chrono::steady_clock::time_point next_stall_check_{};
};

}  // namespace harmony
