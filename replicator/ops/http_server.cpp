// cpp-httplib setup for the health and metrics endpoints (see http_server.hpp). The heavy
// header is included here only.
#include "replicator/ops/http_server.hpp"

#include <httplib.h>

#include <atomic>
#include <chrono>
#include <thread>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "replicator/common/address.hpp"
#include "shared/error.hpp"

namespace harmony {

std::pair<std::string, int> parse_bind_address(const std::string& bind, const std::string& what) {
  auto bad = [&](const char* why) {
    return Error(fmt::format("{} \"{}\": {} (expected host:port, e.g. 0.0.0.0:8090 or :8090)", what,
                             bind, why));
  };
  auto address = parse_host_port(bind);
  if (!address) throw bad("not host:port with a port 0-65535");
  // An empty host means every interface (HarmonyLite's ":8090").
  if (address->host.empty()) address->host = "0.0.0.0";
  return {address->host, address->port};
}

struct HttpServer::Impl {
  httplib::Server server;
  std::atomic<bool> listener_done{false};  // the listener thread has left listen_after_bind()
  std::thread thread;
};

HttpServer::HttpServer(std::string bind, std::string what)
    : bind_(std::move(bind)), what_(std::move(what)), impl_(std::make_unique<Impl>()) {
  // httplib gives each connection a worker thread for as long as it is open, so a client that
  // sends half a request holds one until the read timeout. Probes and scrapes need one or two;
  // the rest are there so that a handful of stalled connections cannot leave none for them (a
  // parked thread costs a stack of address space, not memory in use).
  constexpr size_t kWorkerThreads = 16;
  impl_->server.new_task_queue = [] { return new httplib::ThreadPool(kWorkerThreads); };
  // SO_REUSEADDR only: httplib's default adds SO_REUSEPORT, which would let a second process
  // bind the same port silently and take half of the probes.
  impl_->server.set_socket_options([](socket_t sock) {
    int yes = 1;
    setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes);
  });
  // A probe sends its whole request at once: 2 s without a byte (in the request line, headers
  // or between keep-alive requests) means a stalled or hostile client, whose thread is freed.
  constexpr time_t kIdleSeconds = 2;
  impl_->server.set_read_timeout(kIdleSeconds, 0);
  impl_->server.set_keep_alive_timeout(kIdleSeconds);  // also the wait for a first request
  // One request per connection: a refused request's unread body is then never parsed as a
  // next request line (which httplib would read whole, looking for its end). Probes and
  // scrapes come seconds apart; a new loopback connection costs nothing to them.
  impl_->server.set_keep_alive_max_count(1);
  impl_->server.set_write_timeout(5, 0);
  // No endpoint takes a body: a request that announces more than 4 KiB is answered 413 before
  // any of it is read (httplib's default is unlimited, read into one string).
  constexpr size_t kMaxRequestBodyBytes = 4 << 10;
  impl_->server.set_payload_max_length(kMaxRequestBodyBytes);
  // Only GET and HEAD are served. Decided before routing, i.e. before httplib would read a body:
  // 405 and the connection closed, so the unread body is never parsed as a next request.
  impl_->server.set_pre_routing_handler([](const httplib::Request& req, httplib::Response& res) {
    if (req.method == "GET" || req.method == "HEAD")
      return httplib::Server::HandlerResponse::Unhandled;
    res.status = 405;
    res.set_header("Allow", "GET, HEAD");
    res.set_header("Connection", "close");
    res.set_content("method not allowed: only GET and HEAD\n", "text/plain; charset=utf-8");
    return httplib::Server::HandlerResponse::Handled;
  });
}

HttpServer::~HttpServer() {
  stop();
}

void HttpServer::handle(const std::string& path, std::function<HttpResponse()> handler) {
  auto serve = [handler](const httplib::Request&, httplib::Response& res) {
    HttpResponse r;
    try {
      r = handler();
    } catch (const std::exception& e) {
      r.status = 500;
      r.body = std::string("internal error: ") + e.what() + "\n";
    }
    res.status = r.status;
    res.set_content(r.body, r.content_type.c_str());
  };
  impl_->server.Get(path, serve);  // HEAD too (httplib answers it from the GET handler)
}

void HttpServer::start() {
  auto [host, port] = parse_bind_address(bind_, what_);
  if (port == 0) {
    port_ = impl_->server.bind_to_any_port(host);
    if (port_ < 0) throw Error(fmt::format("{} \"{}\": cannot listen on {}", what_, bind_, host));
  } else {
    if (!impl_->server.bind_to_port(host, port))
      throw Error(fmt::format(
          "{} \"{}\": cannot listen on {}:{} (address in use, no such interface, or not "
          "permitted)",
          what_, bind_, host, port));
    port_ = port;
  }
  impl_->thread = std::thread([this] {
    impl_->server.listen_after_bind();
    impl_->listener_done = true;
  });
}

void HttpServer::stop() {
  if (!impl_) return;
  if (!impl_->thread.joinable()) return;
  // httplib's stop() does nothing until listen_after_bind() has marked the server running; a
  // stop right after start() (a start-up failing just after the health endpoint came up) would
  // otherwise let the thread go on to listen forever and the join below wait forever. So wait
  // for the listener to be running (or gone) first: a few microseconds after start().
  while (!impl_->server.is_running() && !impl_->listener_done)
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  impl_->server.stop();
  impl_->thread.join();
}

}  // namespace harmony
