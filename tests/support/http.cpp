// Loopback HTTP GET for tests (see http.hpp).
#include "tests/support/http.hpp"

#include <httplib.h>

namespace harmony::test {

namespace {
// Loopback answers in microseconds; these only bound a stuck or half-started process.
constexpr time_t kConnectTimeoutSeconds = 2;
constexpr time_t kReadTimeoutSeconds = 5;
}  // namespace

HttpResult http_get(int port, const std::string& path) {
  httplib::Client client("127.0.0.1", port);
  client.set_connection_timeout(kConnectTimeoutSeconds, 0);
  client.set_read_timeout(kReadTimeoutSeconds, 0);
  auto r = client.Get(path.c_str());
  if (!r) return {};
  return {r->status, r->body};
}

}  // namespace harmony::test
