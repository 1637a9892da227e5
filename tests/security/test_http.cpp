// Attacks on the replicator's HTTP endpoints ([health_check], [prometheus]; served by
// replicator/ops/http_server.cpp): slow clients that would starve the health probe, request
// bodies that would be read into memory, and defaults that would expose node details to the
// network. Run against the real HttpServer in-process, over loopback sockets.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <httplib.h>
#include <catch2/catch.hpp>

#include <chrono>
#include <fstream>
#include <string>
#include <vector>

#include "replicator/config/config.hpp"
#include "replicator/ops/http_server.hpp"
#include "tests/support/support.hpp"

using namespace harmony;
using namespace std::chrono_literals;

namespace {

// A raw TCP connection to 127.0.0.1:port (closed on destruction), for requests no well-behaved
// client would send.
class RawSocket {
 public:
  explicit RawSocket(int port) : fd_(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)) {
    REQUIRE(fd_ >= 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<uint16_t>(port));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
  }
  ~RawSocket() { ::close(fd_); }
  RawSocket(const RawSocket&) = delete;
  RawSocket& operator=(const RawSocket&) = delete;

  // Sends all of `data`; false once the peer has closed or reset the connection.
  bool send_all(const char* data, size_t size) {
    while (size > 0) {
      const ssize_t n = ::send(fd_, data, size, MSG_NOSIGNAL);
      if (n <= 0) return false;
      data += n;
      size -= static_cast<size_t>(n);
    }
    return true;
  }
  bool send_all(const std::string& s) { return send_all(s.data(), s.size()); }

  // What the peer sent within `timeout` (stops at the first blank line or when it closes).
  std::string read_head(std::chrono::milliseconds timeout) {
    std::string got;
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (got.find("\r\n\r\n") == std::string::npos) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0) break;
      pollfd p{fd_, POLLIN, 0};
      if (::poll(&p, 1, static_cast<int>(left.count())) <= 0) break;
      char buf[4096];
      const ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
      if (n <= 0) break;
      got.append(buf, static_cast<size_t>(n));
    }
    return got;
  }

 private:
  int fd_;
};

// A /proc/self/status field in kB (VmRSS, VmHWM).
long status_kb(const std::string& field) {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind(field + ":", 0) == 0) return std::stol(line.substr(field.size() + 1));
  return -1;
}

// Resets VmHWM to the current RSS, so a peak measured afterwards is this test's own.
bool reset_peak_rss() {
  std::ofstream out("/proc/self/clear_refs");
  out << "5";
  out.flush();
  return static_cast<bool>(out);
}

struct Endpoint {
  int port = harmony::test::free_port();
  HttpServer server{"127.0.0.1:" + std::to_string(port), "[health_check] bind"};
  Endpoint() {
    server.handle("/health", [] { return HttpResponse{200, "application/json", "{}"}; });
    server.start();
  }
};

}  // namespace

TEST_CASE("http: four stalled clients do not starve /health", "[security][http]") {
  Endpoint e;
  // Each sends a request line and nothing more, as a slow-loris client does.
  std::vector<std::unique_ptr<RawSocket>> stalled;
  for (int i = 0; i < 4; ++i) {
    stalled.push_back(std::make_unique<RawSocket>(e.port));
    REQUIRE(stalled.back()->send_all("GET /health HTTP/1.1\r\n"));
  }
  httplib::Client cli("127.0.0.1", e.port);
  cli.set_connection_timeout(3, 0);
  cli.set_read_timeout(3, 0);  // a probe that gets no answer within 3 s counts the node as down
  const auto t0 = std::chrono::steady_clock::now();
  auto r = cli.Get("/health");
  const auto waited =
      std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0)
          .count();
  INFO("answered after " << waited << " ms");
  REQUIRE(r);
  CHECK(r->status == 200);
  CHECK(waited < 3000);
}

TEST_CASE("http: a 50 MB request body is refused without being read", "[security][http]") {
  Endpoint e;
  constexpr size_t kBody = 50u << 20;  // far above any probe or scrape request
  REQUIRE(reset_peak_rss());
  const long peak_before = status_kb("VmHWM");

  RawSocket s(e.port);
  REQUIRE(s.send_all("PUT /health HTTP/1.1\r\nHost: x\r\nContent-Length: " + std::to_string(kBody) +
                     "\r\n\r\n"));
  // The answer comes before any of the body is sent: the server does not wait for it.
  const std::string head = s.read_head(2s);
  INFO("answer before the body: " << (head.empty() ? "(none within 2 s)" : head));
  const bool refused = head.rfind("HTTP/1.1 405", 0) == 0 || head.rfind("HTTP/1.1 413", 0) == 0;
  CHECK(refused);

  // Whatever the server does with the body, it must not keep it: send it and measure the peak.
  const std::string chunk(64 << 10, 'x');
  size_t sent = 0;
  while (sent < kBody && s.send_all(chunk)) sent += chunk.size();
  if (!refused) s.read_head(5s);  // let the server finish reading what it was sent
  const long grown_kb = status_kb("VmHWM") - peak_before;
  INFO("body bytes the server accepted: " << sent << "; peak RSS grew by " << grown_kb << " kB");
  CHECK(grown_kb < 16 * 1024);  // the body is 51200 kB; a refusal costs next to nothing

  // Other methods are refused as well; GET and HEAD still answer.
  httplib::Client cli("127.0.0.1", e.port);
  cli.set_read_timeout(3, 0);
  auto post = cli.Post("/health", "x", "text/plain");
  REQUIRE(post);
  CHECK(post->status == 405);
  CHECK(post->get_header_value("Allow") == "GET, HEAD");
  auto del = cli.Delete("/health");
  REQUIRE(del);
  CHECK(del->status == 405);
  auto head_r = cli.Head("/health");
  REQUIRE(head_r);
  CHECK(head_r->status == 200);
  auto get = cli.Get("/health");
  REQUIRE(get);
  CHECK(get->status == 200);
}

TEST_CASE("http: endpoints bind loopback and answer without details unless configured",
          "[security][http]") {
  harmony::test::TempDir dir("sec-http-defaults");
  const std::string path = dir.file("node.toml");
  harmony::test::write_file(path,
                            "db_path = \"" + dir.file("a.db") +
                                "\"\n[health_check]\nenable = true\n[prometheus]\nenable = true\n");
  std::vector<std::string> warnings;
  Config c = load_config(path, warnings);
  CHECK(c.health_check.bind == "127.0.0.1:8090");
  CHECK_FALSE(c.health_check.detailed);
  CHECK(c.prometheus.bind == "127.0.0.1:3010");

  harmony::test::write_file(path, "db_path = \"" + dir.file("a.db") + "\"\n");
  c = load_config(path, warnings);
  CHECK(c.health_check.bind == "127.0.0.1:8090");
  CHECK_FALSE(c.health_check.detailed);
  CHECK(c.prometheus.bind == "127.0.0.1:3010");
}
