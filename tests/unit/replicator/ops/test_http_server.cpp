// The HTTP listener behind [health_check] and [prometheus] (replicator/ops/http_server.cpp): bind
// addresses as HarmonyLite parses them, paths, and errors that name the config key.
#include <httplib.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <thread>

#include <catch2/catch.hpp>

#include "replicator/ops/http_server.hpp"
#include "shared/error.hpp"
#include "tests/support/support.hpp"

using namespace harmony;

TEST_CASE("bind addresses parse like HarmonyLite's, bad ones name the key", "[metrics]") {
  CHECK(parse_bind_address(":3010", "k") == std::pair<std::string, int>{"0.0.0.0", 3010});
  CHECK(parse_bind_address("127.0.0.1:8090", "k") ==
        std::pair<std::string, int>{"127.0.0.1", 8090});
  CHECK(parse_bind_address("[::1]:80", "k") == std::pair<std::string, int>{"::1", 80});
  CHECK(parse_bind_address("localhost:0", "k").second == 0);
  for (const char* bad : {"8090", "host:", "host:x", "host:70000", "host:12ab"}) {
    INFO(bad);
    try {
      parse_bind_address(bad, "[health_check] bind");
      FAIL("accepted");
    } catch (const Error& e) {
      CHECK(std::string(e.what()).find("[health_check] bind") != std::string::npos);
    }
  }
}

TEST_CASE("the HTTP server answers on its paths and names the key when it cannot bind",
          "[metrics]") {
  const int port = harmony::test::free_port();
  const std::string bind = "127.0.0.1:" + std::to_string(port);
  HttpServer server(bind, "[health_check] bind");
  server.handle("/health", [] { return HttpResponse{503, "application/json", "{}"}; });
  server.handle("/metrics", [] { return HttpResponse{200, "text/plain", "x 1\n"}; });
  server.start();
  CHECK(server.port() == port);
  httplib::Client cli("127.0.0.1", port);
  auto r = cli.Get("/health");
  REQUIRE(r);
  CHECK(r->status == 503);
  CHECK(r->body == "{}");
  CHECK(r->get_header_value("Content-Type") == "application/json");
  r = cli.Post("/health", "", "text/plain");  // GET and HEAD only (HarmonyLite: any method)
  REQUIRE(r);
  CHECK(r->status == 405);
  r = cli.Get("/metrics");
  REQUIRE(r);
  CHECK(r->body == "x 1\n");
  r = cli.Get("/other");
  REQUIRE(r);
  CHECK(r->status == 404);

  HttpServer clash(bind, "[prometheus] bind");
  clash.handle("/metrics", [] { return HttpResponse{}; });
  try {
    clash.start();
    FAIL("bound a port in use");
  } catch (const Error& e) {
    CHECK(std::string(e.what()).find("[prometheus] bind") != std::string::npos);
  }
  server.stop();
  CHECK_FALSE(cli.Get("/health"));
}

// A start-up that fails right after the health endpoint started stops the server at once. The
// stop must not depend on the listener thread having reached its loop: httplib's stop() does
// nothing until then, and the thread would listen (and the join wait) forever. Run in a child
// process so a hang is reported as a failure instead of hanging the suite.
TEST_CASE("the HTTP server stops even when stopped right after it started", "[metrics]") {
  constexpr int kCycles = 300;
  constexpr auto kBound = std::chrono::seconds(30);
  const pid_t child = fork();
  REQUIRE(child >= 0);
  if (child == 0) {
    for (int i = 0; i < kCycles; ++i) {
      harmony::HttpServer server("127.0.0.1:0", "[health_check] bind");
      server.handle("/health", [] { return harmony::HttpResponse{}; });
      server.start();
      server.stop();
    }
    _exit(0);
  }
  int status = -1;
  const auto deadline = std::chrono::steady_clock::now() + kBound;
  while (waitpid(child, &status, WNOHANG) == 0) {
    if (std::chrono::steady_clock::now() > deadline) {
      kill(child, SIGKILL);
      waitpid(child, &status, 0);
      FAIL("start/stop cycles still running after " << kBound.count() << " s: stop() hangs");
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  CHECK(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 0);
}
