// Operations plumbing that a Node starts: the HTTP endpoints ([health_check] and
// [prometheus], one listener per distinct bind address) and the monitor thread that keeps the
// stats current for them (stream last sequences for lag, the embedded nats-server's pid and
// restarts) and keeps this node's entry in the schema registry fresh.
#pragma once
#include <atomic>
#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "replicator/common/stats.hpp"
#include "replicator/config/config.hpp"
#include "replicator/ops/health.hpp"
#include "replicator/ops/http_server.hpp"

namespace harmony {

class NatsConnection;
class EmbeddedServer;
class SchemaRegistry;

class OpsEndpoints {
 public:
  // Starts the enabled endpoints at once (before NATS is up, so a probe can report an
  // unreachable NATS as 503). Throws Error naming the config key when a bind fails.
  OpsEndpoints(const Config& config, uint64_t node_id, const ReplicatorStats& stats);
  ~OpsEndpoints();
  // Port actually bound for [health_check] / [prometheus] (0 when disabled).
  int health_port() const { return health_port_; }
  int metrics_port() const { return metrics_port_; }

 private:
  HealthChecker health_;
  std::vector<std::unique_ptr<HttpServer>> servers_;
  int health_port_ = 0, metrics_port_ = 0;
};

class OpsMonitor {
 public:
  OpsMonitor(const Config& config, uint64_t node_id, ReplicatorStats& stats, NatsConnection& conn,
             const EmbeddedServer* server);
  ~OpsMonitor();
  // Worker body: returns when `stop` becomes true.
  void run(const std::atomic<bool>& stop);

 private:
  void poll_streams();
  void refresh_registry(bool force);

  const Config& config_;
  uint64_t node_;
  ReplicatorStats& stats_;
  NatsConnection& conn_;
  const EmbeddedServer* server_;
  std::unique_ptr<SchemaRegistry> registry_;
  uint64_t registered_epoch_ = 0;
  std::chrono::steady_clock::time_point next_registry_{};
  bool registry_failed_logged_ = false;
};

}  // namespace harmony
