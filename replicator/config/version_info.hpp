// Version report printed by `harmonylite -version`.
#pragma once
#include <string>

namespace harmony {

std::string version_report(const std::string& nats_server_binary = "nats-server");
std::string nats_server_version(const std::string& binary);

}  // namespace harmony
