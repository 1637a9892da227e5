// cpp-httplib setup for the health and metrics endpoints (see http_server.hpp). The heavy
// header is included here only.
#include "replicator/ops/http_server.hpp"

#include <httplib.h>

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
  std::thread thread;
};

HttpServer::HttpServer(std::string bind, std::string what)
    : bind_(std::move(bind)), what_(std::move(what)), impl_(std::make_unique<Impl>()) {
  // Two worker threads are plenty for probes and scrapes (the default is one per core, >= 8).
  impl_->server.new_task_queue = [] { return new httplib::ThreadPool(2); };
  // SO_REUSEADDR only: httplib's default adds SO_REUSEPORT, which would let a second process
  // bind the same port silently and take half of the probes.
  impl_->server.set_socket_options([](socket_t sock) {
    int yes = 1;
    setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes);
  });
  impl_->server.set_read_timeout(5, 0);
  impl_->server.set_write_timeout(5, 0);
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
  impl_->server.Get(path, serve);
  impl_->server.Post(path, serve);
  impl_->server.Put(path, serve);
  impl_->server.Options(path, serve);
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
  impl_->thread = std::thread([this] { impl_->server.listen_after_bind(); });
}

void HttpServer::stop() {
  if (!impl_) return;
  if (impl_->thread.joinable()) {
    impl_->server.stop();
    impl_->thread.join();
  }
}

}  // namespace harmony
