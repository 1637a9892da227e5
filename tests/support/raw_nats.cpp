// See raw_nats.hpp.
#include "tests/support/raw_nats.hpp"

#include <fmt/format.h>
#include <catch2/catch.hpp>

namespace harmony::test {

RawNatsClient::RawNatsClient(const std::string& url) {
  natsConnection* nc = nullptr;
  REQUIRE(natsConnection_ConnectTo(&nc, url.c_str()) == NATS_OK);
  nc_.reset(nc);
  jsCtx* js = nullptr;
  REQUIRE(natsConnection_JetStream(&js, nc, nullptr) == NATS_OK);
  js_.reset(js);
}

namespace {
using NatsMsgOwner = std::unique_ptr<natsMsg, decltype(&natsMsg_Destroy)>;

NatsMsgOwner make_message(const std::string& subject, const std::string& payload,
                          const NatsHeaders& headers) {
  natsMsg* raw = nullptr;
  REQUIRE(natsMsg_Create(&raw, subject.c_str(), nullptr, payload.data(),
                         static_cast<int>(payload.size())) == NATS_OK);
  NatsMsgOwner m(raw, natsMsg_Destroy);
  for (const auto& [k, v] : headers) natsMsgHeader_Set(m.get(), k.c_str(), v.c_str());
  return m;
}
}  // namespace

RawNatsClient::Ack RawNatsClient::publish(const std::string& subject, const std::string& payload,
                                          const NatsHeaders& headers) {
  NatsMsgOwner m = make_message(subject, payload, headers);
  jsPubAck* pa = nullptr;
  jsErrCode jerr = static_cast<jsErrCode>(0);
  natsStatus s = js_PublishMsg(&pa, js_.get(), m.get(), nullptr, &jerr);
  std::unique_ptr<jsPubAck, decltype(&jsPubAck_Destroy)> ack(pa, jsPubAck_Destroy);
  Ack out;
  if (s != NATS_OK) {
    out.error = fmt::format("{} ({})", natsStatus_GetText(s), nats_GetLastError(nullptr));
    return out;
  }
  out.seq = ack->Sequence;
  out.duplicate = ack->Duplicate;
  return out;
}

uint64_t RawNatsClient::last_seq(const std::string& stream) {
  jsStreamInfo* raw = nullptr;
  REQUIRE(js_GetStreamInfo(&raw, js_.get(), stream.c_str(), nullptr, nullptr) == NATS_OK);
  std::unique_ptr<jsStreamInfo, decltype(&jsStreamInfo_Destroy)> info(raw, jsStreamInfo_Destroy);
  return info->State.LastSeq;
}

std::optional<std::string> RawNatsClient::request(const std::string& subject,
                                                  const std::string& payload,
                                                  const NatsHeaders& headers, int64_t timeout_ms) {
  NatsMsgOwner m = make_message(subject, payload, headers);
  natsMsg* raw = nullptr;
  if (natsConnection_RequestMsg(&raw, nc_.get(), m.get(), timeout_ms) != NATS_OK)
    return std::nullopt;
  NatsMsgOwner reply(raw, natsMsg_Destroy);
  return std::string(natsMsg_GetData(raw), static_cast<size_t>(natsMsg_GetDataLength(raw)));
}

}  // namespace harmony::test
