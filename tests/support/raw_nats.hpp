// A plain NATS client with a JetStream context, as any program on the network could have: the
// tests that play an outsider publish hand-made messages into a change stream with it. Fails
// the current test (Catch REQUIRE) when it cannot connect.
#pragma once
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <nats/nats.h>

namespace harmony::test {

using NatsHeaders = std::vector<std::pair<std::string, std::string>>;

class RawNatsClient {
 public:
  explicit RawNatsClient(const std::string& url);

  struct Ack {
    uint64_t seq = 0;  // 0: refused
    bool duplicate = false;
    std::string error;  // why it was refused
  };
  Ack publish(const std::string& subject, const std::string& payload, const NatsHeaders& headers);
  uint64_t last_seq(const std::string& stream);
  // A core NATS request: the first reply's payload, or nullopt when none came in `timeout_ms`.
  std::optional<std::string> request(const std::string& subject, const std::string& payload,
                                     const NatsHeaders& headers, int64_t timeout_ms);

 private:
  std::unique_ptr<natsConnection, decltype(&natsConnection_Destroy)> nc_{nullptr,
                                                                         natsConnection_Destroy};
  std::unique_ptr<jsCtx, decltype(&jsCtx_Destroy)> js_{nullptr, jsCtx_Destroy};
};

}  // namespace harmony::test
