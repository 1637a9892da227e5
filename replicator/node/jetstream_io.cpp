// JetStream publish/consume on nats.c (see jetstream_io.hpp).
#include "replicator/node/jetstream_io.hpp"

#include <thread>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "replicator/nats/nats_client.hpp"
#include "replicator/wire/message_auth.hpp"

namespace harmony {

namespace {
// Async publishes in flight for one multi-part batch.
constexpr int64_t kMaxPendingParts = 64;
// A subscription silent this long is checked against the stream: a consumer lost with its
// server (or deleted after an outage) stays silent forever. nats-server 2.9 places an ephemeral
// R1 consumer on a random peer of the stream, so when one node's server stops, the consumers the
// other nodes had there are gone with it, and they must notice without waiting for a write of
// theirs. One stream-info request per interval and idle stream costs nothing.
constexpr auto kStallCheckInterval = std::chrono::seconds(3);
// JetStream API wait when creating the consumer and when asking whether it still exists. A
// consumer placed on a server that is down never answers; with a short wait the next attempt
// (placed anew at random) comes sooner. A create that answers late leaves an unused consumer,
// removed by the server after kConsumerInactiveNs.
constexpr int64_t kConsumerRequestTimeoutMs = 2000;
// Server heartbeats on an idle consumer (nats.c reports missed ones to the error handler) and
// flow control, as the library's ordered consumer uses them.
constexpr int64_t kConsumerHeartbeatNs = 5'000'000'000;
// How long the server keeps our ephemeral consumer while this client is away: longer than a
// nats-server restart, so a short reconnect does not lose it; a resubscribe deletes it anyway.
constexpr int64_t kConsumerInactiveNs = 30'000'000'000;

// Leader requests of the audit: short, so an unreachable leader costs the consumer little.
constexpr int64_t kLeaderRequestTimeoutMs = 2000;
// The audit's leader reads run on the receive path, one round trip each: a routine pass (64
// reads) measured 20-37 ms under load, every 5 s, and every message arriving meanwhile waited
// for it (the 1,000 txn/s p99 delay was that pass). So a pass gives way as soon as a message
// is waiting and resumes at a later tick; only when passes have given way for this long does
// one run to its end regardless, so a stream that is never idle is still audited.
constexpr auto kMaxAuditDeferral = std::chrono::seconds(30);

std::optional<std::string> header(natsMsg* m, const char* key) {
  const char* v = nullptr;
  if (natsMsgHeader_Get(m, key, &v) != NATS_OK || !v) return std::nullopt;
  return std::string(v);
}

// Headers and payload; the stream sequence is the caller's to set.
IncomingMessage to_incoming(natsMsg* m) {
  IncomingMessage out;
  out.origin = header(m, kHeaderOrigin);
  out.batch = header(m, kHeaderBatch);
  out.part = header(m, kHeaderPart);
  out.auth = header(m, kHeaderAuth);
  if (natsMsg_GetDataLength(m) > 0)
    out.payload.assign(natsMsg_GetData(m), static_cast<size_t>(natsMsg_GetDataLength(m)));
  return out;
}

NatsMsgPtr make_part_message(const std::string& subject, const OutgoingPart& p, uint64_t origin,
                             uint64_t batch, natsStatus& s) {
  natsMsg* raw = nullptr;
  s = natsMsg_Create(&raw, subject.c_str(), nullptr, p.payload.data(),
                     static_cast<int>(p.payload.size()));
  NatsMsgPtr m(raw);
  if (s != NATS_OK) return nullptr;
  std::string origin_s = std::to_string(origin), batch_s = std::to_string(batch);
  std::string part_s = fmt::format("{}/{}", p.index, p.count);
  s = natsMsgHeader_Set(m.get(), kHeaderMsgId, p.msg_id.c_str());
  if (s == NATS_OK) s = natsMsgHeader_Set(m.get(), kHeaderOrigin, origin_s.c_str());
  if (s == NATS_OK) s = natsMsgHeader_Set(m.get(), kHeaderBatch, batch_s.c_str());
  if (s == NATS_OK) s = natsMsgHeader_Set(m.get(), kHeaderPart, part_s.c_str());
  if (s == NATS_OK && !p.auth.empty()) s = natsMsgHeader_Set(m.get(), kHeaderAuth, p.auth.c_str());
  if (s != NATS_OK) return nullptr;
  return m;
}
}  // namespace

JetStreamTransport::JetStreamTransport(natsConnection* nc, std::string subject, std::string stream,
                                       std::chrono::milliseconds ack_timeout)
    : nc_(nc), subject_(std::move(subject)), stream_(std::move(stream)), ack_timeout_(ack_timeout) {
  jsOptions o;
  jsOptions_Init(&o);
  o.Wait = ack_timeout_.count();
  o.PublishAsync.MaxPending = kMaxPendingParts;
  o.PublishAsync.AckHandler = &JetStreamTransport::on_ack;
  o.PublishAsync.AckHandlerClosure = this;
  js_ = make_js_context(nc_, &o);
}

JetStreamTransport::~JetStreamTransport() {
  // First, while mu_ and the counters on_ack uses still exist.
  js_.reset();
}

void JetStreamTransport::on_ack(jsCtx*, natsMsg* msg, jsPubAck* pa, jsPubAckErr* pae,
                                void* closure) {
  NatsMsgPtr owned(msg);  // with an AckHandler the message is ours to destroy
  auto* self = static_cast<JetStreamTransport*>(closure);
  {
    std::lock_guard<std::mutex> lock(self->mu_);
    if (pae) {
      if (self->async_error_.empty())
        self->async_error_ = pae->ErrText ? pae->ErrText : nats_error_text(pae->Err, pae->ErrCode);
    } else if (pa) {
      ++self->acked_;
    }
  }
}

bool JetStreamTransport::publish(const std::vector<OutgoingPart>& parts, uint64_t origin,
                                 uint64_t batch, std::string& error) {
  jsPubOptions po;
  jsPubOptions_Init(&po);
  po.ExpectStream = stream_.c_str();
  po.MaxWait = ack_timeout_.count();
  if (parts.size() == 1) {
    // One message (the common case): a synchronous publish has the lowest latency.
    natsStatus s;
    NatsMsgPtr m = make_part_message(subject_, parts[0], origin, batch, s);
    if (!m) {
      error = nats_error_text(s);
      return false;
    }
    jsPubAck* pa = nullptr;
    jsErrCode jerr = static_cast<jsErrCode>(0);
    s = js_PublishMsg(&pa, js_.get(), m.get(), &po, &jerr);
    JsPubAckPtr ack(pa);
    if (s != NATS_OK) {
      error = nats_error_text(s, jerr);
      return false;
    }
    return true;
  }
  // Several parts: pipeline them (bounded by MaxPending), then wait for every ack.
  {
    std::lock_guard<std::mutex> lock(mu_);
    acked_ = 0;
    async_error_.clear();
  }
  for (const auto& p : parts) {
    natsStatus s;
    NatsMsgPtr m = make_part_message(subject_, p, origin, batch, s);
    if (m) {
      // On success the library takes the message and clears the pointer; on failure it is
      // still ours (and destroyed with `m`).
      natsMsg* raw = m.release();
      s = js_PublishMsgAsync(js_.get(), &raw, &po);
      m.reset(raw);
    }
    if (s != NATS_OK) {
      error = nats_error_text(s);
      break;
    }
  }
  jsPubOptions wait;
  jsPubOptions_Init(&wait);
  wait.MaxWait = ack_timeout_.count() * 2;
  natsStatus s = js_PublishAsyncComplete(js_.get(), &wait);
  if (s != NATS_OK) {
    // Taken back from the library and dropped: the caller retries the whole batch.
    NatsMsgList pending;
    js_PublishAsyncGetPendingList(pending.out(), js_.get());
    if (error.empty()) error = "timed out waiting for acknowledgements: " + nats_error_text(s);
  }
  std::lock_guard<std::mutex> lock(mu_);
  if (!async_error_.empty() && error.empty()) error = async_error_;
  return error.empty() && acked_ == static_cast<int>(parts.size());
}

JetStreamSource::JetStreamSource(natsConnection* nc, std::string stream, std::string subject,
                                 ReplicatorStats* stats, bool audit)
    : nc_(nc),
      stats_(stats),
      audit_enabled_(audit),
      stream_(std::move(stream)),
      subject_(std::move(subject)) {
  js_ = make_js_context(nc_, nullptr);
  reconnects_seen_ = reconnects();
  if (!audit_enabled_) return;  // no leader requests, no advisories to listen to
  jsOptions o;
  jsOptions_Init(&o);
  o.Wait = kLeaderRequestTimeoutMs;
  audit_js_ = make_js_context(nc_, &o);
  // A new stream leader may serve a different history than the old one did.
  const std::string advisory = "$JS.EVENT.ADVISORY.STREAM.LEADER_ELECTED." + stream_;
  natsSubscription* sub = nullptr;
  natsStatus s = natsConnection_Subscribe(&sub, nc_, advisory.c_str(),
                                          &JetStreamSource::on_leader_elected, this);
  leader_advisories_.reset(sub);
  if (s != NATS_OK) throw Error("cannot subscribe to " + advisory + ": " + nats_error_text(s));
}

JetStreamSource::~JetStreamSource() {
  stop();
  // Drained, so no callback still runs with `this` once the subscription is gone.
  if (leader_advisories_ && natsSubscription_Drain(leader_advisories_.get()) == NATS_OK)
    natsSubscription_WaitForDrainCompletion(leader_advisories_.get(), 1000);
  leader_advisories_.reset();
  audit_js_.reset();
  js_.reset();
}

void JetStreamSource::on_leader_elected(natsConnection*, natsSubscription*, natsMsg* msg,
                                        void* closure) {
  NatsMsgPtr owned(msg);
  static_cast<JetStreamSource*>(closure)->leader_changed_ = true;
}

uint64_t JetStreamSource::reconnects() const {
  natsStatistics* raw = nullptr;
  uint64_t count = 0;
  if (natsStatistics_Create(&raw) != NATS_OK) return 0;
  NatsStatisticsPtr stats(raw);
  if (natsConnection_GetStats(nc_, stats.get()) == NATS_OK)
    natsStatistics_GetCounts(stats.get(), nullptr, nullptr, nullptr, nullptr, &count);
  return count;
}

LeaderMessage JetStreamSource::leader_message(uint64_t seq) {
  LeaderMessage out;
  natsMsg* raw = nullptr;
  jsErrCode jerr = static_cast<jsErrCode>(0);
  // STREAM.MSG.GET is answered by the stream leader only.
  natsStatus s = js_GetMsg(&raw, audit_js_.get(), stream_.c_str(), seq, nullptr, &jerr);
  NatsMsgPtr m(raw);
  if (s == NATS_OK && m) {
    out.status = LeaderMessage::Status::Found;
    out.message = to_incoming(m.get());
    out.identity = StreamAudit::identity(header(m.get(), kHeaderMsgId), out.message.payload);
  } else if (jerr == JSNoMessageFoundErr) {
    out.status = LeaderMessage::Status::Gone;
  }
  return out;
}

void JetStreamSource::check_reconnected(std::chrono::steady_clock::time_point now) {
  if (const uint64_t r = reconnects(); r != reconnects_seen_) {
    // Reconnected, perhaps to another server: the consumer may have gone with the old one, and
    // what the new one serves may differ. A fresh consumer from the next sequence costs little.
    reconnects_seen_ = r;
    if (audit_enabled_) audit_.suspect(now);
    if (sub_) {
      spdlog::info("{}: reconnected to NATS; resubscribing from sequence {}", stream_, next_seq_);
      resubscribe();
    }
  }
}

void JetStreamSource::audit() {
  const auto now = std::chrono::steady_clock::now();
  if (!audit_enabled_) {
    // The reconnect check is the consumer's, not the audit's: it keeps the pace of the
    // audit's routine tick it used to ride on.
    if (now < next_reconnect_check_) return;
    next_reconnect_check_ = now + StreamAudit::Limits{}.tick;
    check_reconnected(now);
    return;
  }
  if (leader_changed_.exchange(false)) audit_.suspect(now);
  if (!audit_.due(now)) return;
  check_reconnected(now);
  AuditCounters counters;
  const bool may_give_way = now - audit_completed_ < kMaxAuditDeferral;
  bool gave_way = false;
  auto differing = audit_.run(
      now,
      [&](uint64_t seq) {
        // Unavailable ends the pass like an unanswered leader: what was checked stays checked,
        // the rest (and a full check) is due again at the next tick.
        if (may_give_way && messages_waiting()) {
          gave_way = true;
          return LeaderMessage{};
        }
        return leader_message(seq);
      },
      counters);
  if (!gave_way) audit_completed_ = now;
  if (gave_way) --counters.leader_reads;  // counted by run(), never sent
  spdlog::debug(
      "delay trace: audit of {}: {} leader reads in {} us{}", stream_, counters.leader_reads,
      std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - now)
          .count(),
      gave_way ? " (gave way to waiting messages)" : "");
  if (stats_) {
    stats_->stream_messages_checked += static_cast<int64_t>(counters.checked);
    stats_->stream_messages_repaired += static_cast<int64_t>(counters.mismatched);
    stats_->stream_audit_leader_reads += static_cast<int64_t>(counters.leader_reads);
    stats_->stream_audit_leader_bytes += static_cast<int64_t>(counters.leader_bytes);
  }
  if (differing.empty()) return;
  spdlog::warn(
      "{}: {} message(s) this node read differ from the stream leader's copy (sequences {}..{}; "
      "{}); the stream's replicas diverged. Re-applying the leader's messages (last writer wins "
      "makes that safe) and reading on from a new consumer",
      stream_, differing.size(), differing.front().stream_seq, differing.back().stream_seq,
      counters.example);
  for (auto& m : differing) repairs_.push_back(std::move(m));
  if (sub_) {
    resubscribe();
  }
}

bool JetStreamSource::messages_waiting() const {
  int msgs = 0, bytes = 0;
  return sub_ && natsSubscription_GetPending(sub_.get(), &msgs, &bytes) == NATS_OK && msgs > 0;
}

void JetStreamSource::stop() {
  if (sub_) {
    natsSubscription_Unsubscribe(sub_.get());
    sub_.reset();
  }
}

void JetStreamSource::start(uint64_t start_seq) {
  stop();
  next_seq_ = std::max<uint64_t>(start_seq, 1);
  last_message_ = std::chrono::steady_clock::now();
  subscribe();
}

void JetStreamSource::resubscribe() {
  stop();
  subscribe();
}

bool JetStreamSource::subscribe() {
  jsSubOptions so;
  jsSubOptions_Init(&so);
  so.Stream = stream_.c_str();
  // A plain ephemeral push consumer that this class recreates itself, not the library's ordered
  // consumer: that one recreates itself on a thread of its own, and unsubscribing while it does
  // so races inside nats.c 3.4.1 (jsSub_deleteConsumer uses the consumer name the reset thread
  // frees); the 20-minute soak saw a replicator abort in glibc's mutex code right after such a
  // resubscribe. Gaps in the delivery sequence, missing deliveries and reconnects resubscribe
  // from the next stream sequence below.
  so.Config.AckPolicy = js_AckNone;
  so.Config.FlowControl = true;
  so.Config.Heartbeat = kConsumerHeartbeatNs;
  so.Config.InactiveThreshold = kConsumerInactiveNs;
  so.Config.Replicas = 1;
  so.Config.MemoryStorage = true;
  so.Config.DeliverPolicy = next_seq_ <= 1 ? js_DeliverAll : js_DeliverByStartSequence;
  if (next_seq_ > 1) so.Config.OptStartSeq = next_seq_;
  jsOptions request;
  jsOptions_Init(&request);
  request.Wait = kConsumerRequestTimeoutMs;
  jsErrCode jerr = static_cast<jsErrCode>(0);
  natsSubscription* raw = nullptr;
  natsStatus s = js_SubscribeSync(&raw, js_.get(), subject_.c_str(), &request, &so, &jerr);
  if (s == NATS_OK) {
    sub_.reset(raw);
    // Catch-up can deliver far more than the library's default pending limits.
    natsSubscription_SetPendingLimits(sub_.get(), -1, 256 * 1024 * 1024);
    next_delivery_ = 1;
    // A new consumer may be served by another replica than the last one.
    if (subscribed_before_ && audit_enabled_) audit_.suspect(std::chrono::steady_clock::now());
    subscribed_before_ = true;
    return true;
  }
  auto now = std::chrono::steady_clock::now();
  if (now - last_error_log_ > std::chrono::seconds(10)) {
    last_error_log_ = now;
    spdlog::warn("cannot subscribe to {} from sequence {}: {}; retrying", stream_, next_seq_,
                 nats_error_text(s, jerr));
  }
  retry_at_ = now + std::chrono::seconds(1);
  return false;
}

std::optional<IncomingMessage> JetStreamSource::next(std::chrono::milliseconds timeout) {
  if (repairs_.empty()) audit();
  if (!repairs_.empty()) {
    IncomingMessage m = std::move(repairs_.front());
    repairs_.pop_front();
    return m;
  }
  if (!sub_) {
    if (std::chrono::steady_clock::now() < retry_at_ || !subscribe()) {
      std::this_thread::sleep_for(std::min(timeout, std::chrono::milliseconds(100)));
      return std::nullopt;
    }
  }
  if (timeout.count() <= 0) {
    // Non-blocking: only what the library has already buffered.
    int pending_msgs = 0, pending_bytes = 0;
    if (natsSubscription_GetPending(sub_.get(), &pending_msgs, &pending_bytes) != NATS_OK ||
        pending_msgs <= 0)
      return std::nullopt;
  }
  natsMsg* raw = nullptr;
  natsStatus s =
      natsSubscription_NextMsg(&raw, sub_.get(), timeout.count() > 0 ? timeout.count() : 1);
  NatsMsgPtr m(raw);
  if (s == NATS_TIMEOUT) {
    check_stalled();
    return std::nullopt;
  }
  if (s != NATS_OK) {
    spdlog::warn("reading {} failed: {}; resubscribing from sequence {}", stream_,
                 nats_error_text(s), next_seq_);
    stop();
    retry_at_ = std::chrono::steady_clock::now() + std::chrono::milliseconds(500);
    return std::nullopt;
  }
  IncomingMessage out = to_incoming(m.get());
  jsMsgMetaData* raw_meta = nullptr;
  uint64_t delivery = 0;
  if (natsMsg_GetMetaData(&raw_meta, m.get()) == NATS_OK && raw_meta) {
    JsMsgMetaDataPtr meta(raw_meta);
    out.stream_seq = meta->Sequence.Stream;
    delivery = meta->Sequence.Consumer;
  }
  if (delivery != 0 && delivery != next_delivery_) {
    // Deliveries were lost between the server and us (dropped as a slow consumer, or the
    // consumer was recreated under the same subject): read again from the next sequence.
    spdlog::warn("{}: delivery {} arrived where {} was expected; resubscribing from sequence {}",
                 stream_, delivery, next_delivery_, next_seq_);
    resubscribe();
    return std::nullopt;
  }
  next_delivery_ = delivery + 1;
  if (out.stream_seq > 0 && audit_enabled_)
    audit_.record(out.stream_seq, StreamAudit::identity(header(m.get(), kHeaderMsgId), out.payload),
                  out.payload.size());
  m.reset();
  if (out.stream_seq >= next_seq_) next_seq_ = out.stream_seq + 1;
  last_message_ = std::chrono::steady_clock::now();
  return out;
}

void JetStreamSource::check_stalled() {
  const auto now = std::chrono::steady_clock::now();
  if (now - last_message_ < kStallCheckInterval || now < next_stall_check_) return;
  next_stall_check_ = now + kStallCheckInterval;
  jsErrCode jerr = static_cast<jsErrCode>(0);
  jsStreamInfo* raw = nullptr;
  if (js_GetStreamInfo(&raw, js_.get(), stream_.c_str(), nullptr, &jerr) != NATS_OK)
    return;  // JetStream not answering: the outage is logged elsewhere; look again later
  JsStreamInfoPtr info(raw);
  const uint64_t last_seq = info->State.LastSeq;
  if (last_seq < next_seq_) {
    // Idle and up to date, but is the consumer still there? One lost with its server (or
    // removed while this client was away) would deliver nothing when writes resume. A consumer
    // whose server is down does not answer at all, while the stream (answered above) does.
    jsOptions request;
    jsOptions_Init(&request);
    request.Wait = kConsumerRequestTimeoutMs;
    jsConsumerInfo* ci = nullptr;
    jerr = static_cast<jsErrCode>(0);
    const natsStatus s = natsSubscription_GetConsumerInfo(&ci, sub_.get(), &request, &jerr);
    JsConsumerInfoPtr consumer(ci);
    if (jerr == JSConsumerNotFoundErr) {
      spdlog::info("{}: the consumer is gone from the server; resubscribing from sequence {}",
                   stream_, next_seq_);
    } else if (s == NATS_TIMEOUT) {
      spdlog::info(
          "{}: the consumer does not answer (its server may be down); resubscribing from "
          "sequence {}",
          stream_, next_seq_);
    } else {
      return;
    }
    resubscribe();
    return;
  }
  spdlog::warn(
      "no message from {} for {} s although it holds up to sequence {} and this node is at {}: "
      "resubscribing",
      stream_, std::chrono::duration_cast<std::chrono::seconds>(now - last_message_).count(),
      last_seq, next_seq_ - 1);
  last_message_ = now;
  resubscribe();
}

}  // namespace harmony
