// Network addresses in text form: the one place that parses "host:port", "[v6]:port" and
// ":port" (config keys, flags, route and ports-file URLs) and writes them back, re-adding the
// brackets an IPv6 host needs. Hosts are kept bare (no brackets) everywhere in between, because
// that is what getaddrinfo, nats-server's -a and cpp-httplib expect.
#pragma once
#include <optional>
#include <string>
#include <string_view>

namespace harmony {

struct HostPort {
  std::string host;  // bare: "127.0.0.1", "::1", "example.org"; "" = every interface
  int port = -1;     // 0..65535; -1 = a random free port (only where the parser allowed it)
  bool operator==(const HostPort&) const = default;
};

// Parses "host:port", "[v6]:port" or ":port". The host may be empty, a name, an IPv4 address or
// a bracketed IPv6 address; an unbracketed IPv6 address is refused (where would the port
// start?), as is whitespace or '/'. The port is 0..65535, or -1 when `allow_random_port`.
// Returns nullopt when malformed.
std::optional<HostPort> parse_host_port(std::string_view text, bool allow_random_port = false);

// The address in a URL "scheme://host:port/path?query" (scheme, path and query are ignored; a
// plain host:port is accepted too). Returns nullopt when there is no valid host:port.
std::optional<HostPort> parse_url_address(std::string_view url);

// "host:port", with brackets around an IPv6 host ("[::1]:4222").
std::string format_host_port(const HostPort& address);
// "scheme://host:port", with brackets around an IPv6 host ("nats://[::1]:4222").
std::string format_url(std::string_view scheme, const HostPort& address);

}  // namespace harmony
