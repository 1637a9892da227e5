// Network namespace lab for partition tests (see netns.hpp).
#include "tests/support/netns.hpp"

#include <signal.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <mutex>
#include <set>
#include <sstream>
#include <stdexcept>

#include <fmt/format.h>

#include "tests/support/support.hpp"

namespace harmony::test {

namespace {

// Every namespace name starts with this, followed by the creating process's pid.
constexpr const char* kPrefix = "hsk";

std::mutex& registry_mutex() {
  static std::mutex m;
  return m;
}
std::set<NetnsLab*>& registry() {
  static std::set<NetnsLab*> labs;
  return labs;
}

void ip(const std::vector<std::string>& args) {
  std::vector<std::string> argv = {"ip"};
  argv.insert(argv.end(), args.begin(), args.end());
  auto r = run_command(argv, 20s);
  if (r.exit_code != 0) {
    std::string cmd;
    for (const auto& a : argv) cmd += a + " ";
    throw std::runtime_error(fmt::format("{}failed ({}): {}", cmd, r.exit_code, r.output));
  }
}

void delete_ns(const std::string& name) {
  run_command({"ip", "netns", "delete", name}, 20s);  // absent already: fine
}

std::vector<std::string> list_ns() {
  auto r = run_command({"ip", "netns", "list"}, 20s);
  std::vector<std::string> out;
  std::istringstream in(r.output);
  std::string line;
  while (std::getline(in, line)) {
    auto name = line.substr(0, line.find(' '));
    if (!name.empty()) out.push_back(name);
  }
  return out;
}

}  // namespace

bool NetnsLab::available(std::string* why) {
  if (geteuid() != 0) {
    if (why) *why = "network namespaces need root";
    return false;
  }
  auto r = run_command({"ip", "netns", "list"}, 20s);
  if (r.exit_code != 0) {
    if (why) *why = "`ip netns list` failed: " + r.output;
    return false;
  }
  return true;
}

void NetnsLab::remove_stale() {
  for (const auto& name : list_ns()) {
    if (name.rfind(kPrefix, 0) != 0) continue;
    size_t i = std::string(kPrefix).size(), j = i;
    while (j < name.size() && std::isdigit(static_cast<unsigned char>(name[j]))) ++j;
    if (j == i) continue;
    pid_t pid = static_cast<pid_t>(std::stol(name.substr(i, j - i)));
    if (pid == getpid()) continue;
    if (::kill(pid, 0) == 0 || errno == EPERM) continue;  // its owner still runs
    delete_ns(name);
  }
}

NetnsLab::NetnsLab(int nodes) {
  static int serial = 0;
  prefix_ = fmt::format("{}{}{}", kPrefix, getpid(), static_cast<char>('a' + serial++ % 26));
  hub_ = prefix_ + "-hub";
  for (int i = 0; i < nodes; ++i)
    nodes_.push_back({fmt::format("{}-n{}", prefix_, i + 1), fmt::format("{}v{}", prefix_, i + 1),
                      fmt::format("10.77.0.{}", i + 1)});
  {
    std::lock_guard lk(registry_mutex());
    registry().insert(this);
  }
  try {
    remove_stale();
    ip({"netns", "add", hub_});
    ip({"-n", hub_, "link", "set", "lo", "up"});
    ip({"-n", hub_, "link", "add", "br0", "type", "bridge"});
    ip({"-n", hub_, "link", "set", "br0", "up"});
    for (const auto& n : nodes_) {
      ip({"netns", "add", n.ns});
      ip({"-n", n.ns, "link", "set", "lo", "up"});
      ip({"-n", hub_, "link", "add", n.veth, "type", "veth", "peer", "name", "eth0", "netns",
          n.ns});
      ip({"-n", hub_, "link", "set", n.veth, "master", "br0", "up"});
      ip({"-n", n.ns, "addr", "add", n.address + "/24", "dev", "eth0"});
      ip({"-n", n.ns, "link", "set", "eth0", "up"});
    }
  } catch (...) {
    destroy();
    throw;
  }
}

NetnsLab::~NetnsLab() {
  destroy();
}

void NetnsLab::destroy() {
  {
    std::lock_guard lk(registry_mutex());
    registry().erase(this);
    if (destroyed_) return;
    destroyed_ = true;
  }
  // Node namespaces first: deleting one removes its veth pair from the hub as well.
  for (const auto& n : nodes_) delete_ns(n.ns);
  delete_ns(hub_);
}

void NetnsLab::cut(int i) {
  auto& n = nodes_.at(static_cast<size_t>(i));
  ip({"-n", hub_, "link", "set", n.veth, "down"});
  n.cut = true;
}

void NetnsLab::heal(int i) {
  auto& n = nodes_.at(static_cast<size_t>(i));
  ip({"-n", hub_, "link", "set", n.veth, "up"});
  n.cut = false;
}

void cleanup_netns_labs() {
  std::set<NetnsLab*> labs;
  {
    std::lock_guard lk(registry_mutex());
    labs = registry();
  }
  for (auto* lab : labs) lab->destroy();
}

}  // namespace harmony::test
