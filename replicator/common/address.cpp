// Parsing and formatting of host:port addresses (see address.hpp).
#include "replicator/common/address.hpp"

#include <fmt/format.h>

namespace harmony {

namespace {

constexpr size_t kMaxPortDigits = 5;  // 65535
constexpr int kMaxPort = 65535;

std::optional<int> parse_port(std::string_view text, bool allow_random_port) {
  if (allow_random_port && text == "-1") return -1;
  if (text.empty() || text.size() > kMaxPortDigits) return std::nullopt;
  int value = 0;
  for (char c : text) {
    if (c < '0' || c > '9') return std::nullopt;
    value = value * 10 + (c - '0');
  }
  if (value > kMaxPort) return std::nullopt;
  return value;
}

bool is_ipv6(std::string_view host) {
  return host.find(':') != std::string_view::npos;
}

}  // namespace

std::optional<HostPort> parse_host_port(std::string_view text, bool allow_random_port) {
  const auto colon = text.rfind(':');
  if (colon == std::string_view::npos) return std::nullopt;
  std::string_view host = text.substr(0, colon);
  if (!host.empty() && host.front() == '[') {
    if (host.size() < 3 || host.back() != ']') return std::nullopt;
    host = host.substr(1, host.size() - 2);
  } else if (is_ipv6(host)) {
    return std::nullopt;  // unbracketed IPv6: the port cannot be told apart
  }
  for (char c : host) {
    if (c == ' ' || c == '\t' || c == '/' || c == '[' || c == ']') return std::nullopt;
  }
  auto port = parse_port(text.substr(colon + 1), allow_random_port);
  if (!port) return std::nullopt;
  return HostPort{std::string(host), *port};
}

std::optional<HostPort> parse_url_address(std::string_view url) {
  if (auto scheme_end = url.find("://"); scheme_end != std::string_view::npos)
    url = url.substr(scheme_end + 3);
  url = url.substr(0, url.find_first_of("/?"));
  return parse_host_port(url);
}

std::string format_host_port(const HostPort& address) {
  return is_ipv6(address.host) ? fmt::format("[{}]:{}", address.host, address.port)
                               : fmt::format("{}:{}", address.host, address.port);
}

std::string format_url(std::string_view scheme, const HostPort& address) {
  return fmt::format("{}://{}", scheme, format_host_port(address));
}

}  // namespace harmony
