// Route URLs for the embedded nats-server's cluster. HarmonyLite accepts
// dns://name:port/?min=N&interval_ms=M in -cluster-peers / -leaf-servers and expands each into
// one nats://ip:port/ per A/AAAA record; nats-server itself only understands the expanded form.
#pragma once
#include <string>
#include <vector>

namespace harmony {

// Expands dns:// entries (A and AAAA records, via getaddrinfo); other URLs pass unchanged.
// A dns:// name that does not resolve is kept out and reported in `problems`.
std::vector<std::string> expand_routes(const std::vector<std::string>& urls,
                                       std::vector<std::string>& problems);

}  // namespace harmony
