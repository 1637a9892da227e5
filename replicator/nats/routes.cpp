// dns:// route expansion (see routes.hpp).
#include "replicator/nats/routes.hpp"

#include <arpa/inet.h>
#include <netdb.h>
#include <sys/socket.h>

#include <set>

#include <fmt/format.h>

#include "replicator/common/address.hpp"
#include "replicator/nats/nats_client.hpp"

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
    const auto address = parse_url_address(url);
    if (!address || address->host.empty()) {
      problems.push_back(fmt::format(
          "route {} is not dns://name:port/ (a name and a port are needed)", redact_url(url)));
      continue;
    }
    const std::string& host = address->host;
    const std::string port = std::to_string(address->port);
    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    addrinfo* res = nullptr;
    int rc = getaddrinfo(host.c_str(), port.c_str(), &hints, &res);
    if (rc != 0) {
      problems.push_back(
          fmt::format("route {}: cannot resolve {}: {}", redact_url(url), host, gai_strerror(rc)));
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
      std::string expanded = format_url("nats", {ip, address->port}) + "/";
      if (seen.insert(expanded).second) out.push_back(expanded);
    }
    freeaddrinfo(res);
  }
  return out;
}

}  // namespace harmony
