// The replicator's small HTTP server (cpp-httplib, plain HTTP) for the health endpoint and the
// Prometheus metrics: one listener per distinct bind address, so [health_check] and
// [prometheus] share one port when they name the same address. Only GET and HEAD are
// answered (405 otherwise, before any body is read); request bodies are refused above 4 KiB;
// stalled clients are dropped after 2 s idle.
#pragma once
#include <functional>
#include <memory>
#include <string>
#include <utility>

namespace harmony {

struct HttpResponse {
  int status = 200;
  std::string content_type = "text/plain; charset=utf-8";
  std::string body;
};

// "host:port", ":port" (every interface) or "[::1]:port" -> (host, port). Throws Error naming
// `what` (the config key) when malformed.
std::pair<std::string, int> parse_bind_address(const std::string& bind, const std::string& what);

class HttpServer {
 public:
  // `what` names the config key for messages, e.g. "[health_check] bind".
  HttpServer(std::string bind, std::string what);
  ~HttpServer();  // stops
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  void handle(const std::string& path, std::function<HttpResponse()> handler);
  // Binds and starts serving on a thread of its own. Throws Error naming the config key when
  // the address cannot be bound (in use, no such interface, permission).
  void start();
  void stop();
  int port() const { return port_; }
  const std::string& bind() const { return bind_; }

 private:
  struct Impl;
  std::string bind_, what_;
  int port_ = 0;
  std::unique_ptr<Impl> impl_;
};

}  // namespace harmony
