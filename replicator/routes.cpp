// dns:// route expansion (see routes.hpp).
#include "replicator/routes.hpp"

#include <arpa/inet.h>
#include <netdb.h>
#include <sys/socket.h>

#include <set>

#include <fmt/format.h>

namespace harmony {

std::vector<std::string> expand_routes(const std::vector<std::string>& urls,
                                       std::vector<std::string>& problems) {
  std::vector<std::string> out;
  const std::string prefix = "dns://";
  for (const auto& url : urls) {
    if (url.rfind(prefix, 0) != 0) {
      out.push_back(url);
      continue;
    }
    std::string rest = url.substr(prefix.size());
    rest = rest.substr(0, rest.find_first_of("/?"));
    auto colon = rest.rfind(':');
    if (colon == std::string::npos || colon == 0) {
      problems.push_back(fmt::format("route {} has no port (expected dns://name:port/)", url));
      continue;
    }
    std::string host = rest.substr(0, colon), port = rest.substr(colon + 1);
    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    addrinfo* res = nullptr;
    int rc = getaddrinfo(host.c_str(), port.c_str(), &hints, &res);
    if (rc != 0) {
      problems.push_back(
          fmt::format("route {}: cannot resolve {}: {}", url, host, gai_strerror(rc)));
      continue;
    }
    std::set<std::string> seen;
    for (addrinfo* a = res; a; a = a->ai_next) {
      char ip[INET6_ADDRSTRLEN] = {0};
      const void* addr =
          a->ai_family == AF_INET
              ? static_cast<const void*>(&reinterpret_cast<sockaddr_in*>(a->ai_addr)->sin_addr)
              : static_cast<const void*>(&reinterpret_cast<sockaddr_in6*>(a->ai_addr)->sin6_addr);
      if (!inet_ntop(a->ai_family, addr, ip, sizeof ip)) continue;
      std::string expanded = a->ai_family == AF_INET6 ? fmt::format("nats://[{}]:{}/", ip, port)
                                                      : fmt::format("nats://{}:{}/", ip, port);
      if (seen.insert(expanded).second) out.push_back(expanded);
    }
    freeaddrinfo(res);
  }
  return out;
}

}  // namespace harmony
