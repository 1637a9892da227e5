// Network namespaces for partition tests: one namespace per node plus a hub namespace holding a
// bridge, joined by veth pairs. A node is cut off by taking its veth down on the hub side (its own
// loopback, where its replicator talks to its nats-server, stays up) and healed by bringing it up.
// Nothing is created in the caller's namespace. Owns every namespace it creates: they are deleted
// on destruction, by cleanup_netns_labs() (signal handlers, exit paths), and leftovers of runs
// whose process is gone are removed by name when the next lab is created.
#pragma once
#include <string>
#include <vector>

namespace harmony::test {

class NetnsLab {
 public:
  // Creates the hub and `nodes` node namespaces (10.77.0.<i+1>/24 on eth0, lo up). Throws
  // std::runtime_error with the failing command's output (after removing what was created).
  explicit NetnsLab(int nodes);
  ~NetnsLab();
  NetnsLab(const NetnsLab&) = delete;
  NetnsLab& operator=(const NetnsLab&) = delete;

  int size() const { return static_cast<int>(nodes_.size()); }
  const std::string& ns(int i) const { return nodes_.at(static_cast<size_t>(i)).ns; }
  const std::string& address(int i) const { return nodes_.at(static_cast<size_t>(i)).address; }
  // Link down / up on the hub side of node i's veth. Idempotent.
  void cut(int i);
  void heal(int i);
  bool is_cut(int i) const { return nodes_.at(static_cast<size_t>(i)).cut; }
  // Deletes everything now (also called by the destructor). Safe to call twice.
  void destroy();

  // Whether namespaces can be made here (root, `ip netns` works); `why` says why not.
  static bool available(std::string* why = nullptr);
  // Deletes namespaces left behind by earlier runs whose process no longer exists.
  static void remove_stale();

 private:
  struct Node {
    std::string ns, veth, address;
    bool cut = false;
  };
  std::string prefix_, hub_;
  std::vector<Node> nodes_;
  bool destroyed_ = false;
};

// Destroys every NetnsLab alive in this process (for signal handlers and fatal exits; runs only
// `ip netns delete`, so it is safe to call while the labs' owners are stuck elsewhere).
void cleanup_netns_labs();

}  // namespace harmony::test
