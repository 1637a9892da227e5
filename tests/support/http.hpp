// A plain HTTP GET on a loopback port for tests: the replicator's health and metrics endpoints.
#pragma once
#include <string>

namespace harmony::test {

struct HttpResult {
  int status = 0;  // 0 = no answer (nothing listens yet, or the connection failed)
  std::string body;
};

// GET http://127.0.0.1:`port``path`, with short timeouts so a poll loop stays responsive.
HttpResult http_get(int port, const std::string& path);

}  // namespace harmony::test
