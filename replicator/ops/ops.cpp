// HTTP endpoints and the operations monitor (see ops.hpp).
#include "replicator/ops/ops.hpp"

#include <thread>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "replicator/nats/nats_client.hpp"
#include "replicator/nats/nats_config.hpp"
#include "replicator/nats/nats_server.hpp"
#include "replicator/ops/metrics.hpp"
#include "replicator/ops/schema_registry.hpp"

namespace harmony {

namespace {
constexpr auto kStreamPollEvery = std::chrono::seconds(2);
constexpr auto kRegistryRetry = std::chrono::seconds(10);
}  // namespace

OpsEndpoints::OpsEndpoints(const Config& config, uint64_t node_id, const ReplicatorStats& stats)
    : health_(config.db_path, node_id, stats) {
  auto server_for = [&](const std::string& bind, const std::string& what) -> HttpServer& {
    for (auto& s : servers_)
      if (s->bind() == bind) return *s;
    servers_.push_back(std::make_unique<HttpServer>(bind, what));
    return *servers_.back();
  };
  HttpServer* health_server = nullptr;
  HttpServer* metrics_server = nullptr;
  if (config.health_check.enable) {
    const bool detailed = config.health_check.detailed;
    health_server = &server_for(config.health_check.bind, "[health_check] bind");
    health_server->handle(config.health_check.path, [this, detailed] {
      HealthAnswer a = health_.check(detailed);
      return HttpResponse{a.healthy ? 200 : 503, "application/json", a.body.dump() + "\n"};
    });
  }
  if (config.prometheus.enable) {
    MetricsOptions mo;
    mo.namespace_ = config.prometheus.namespace_;
    mo.subsystem = config.prometheus.subsystem;
    mo.node_id = node_id;
    metrics_server = &server_for(config.prometheus.bind, "[prometheus] bind");
    metrics_server->handle("/metrics", [&stats, mo] {
      return HttpResponse{200, "text/plain; version=0.0.4; charset=utf-8",
                          render_metrics(stats, mo, wall_clock_ms())};
    });
  }
  for (auto& s : servers_) s->start();
  if (health_server) {
    health_port_ = health_server->port();
    spdlog::info("health endpoint on {} (port {}), path {}", config.health_check.bind, health_port_,
                 config.health_check.path);
  }
  if (metrics_server) {
    metrics_port_ = metrics_server->port();
    spdlog::info("prometheus metrics on {} (port {}), path /metrics", config.prometheus.bind,
                 metrics_port_);
  }
}

OpsEndpoints::~OpsEndpoints() {
  for (auto& s : servers_) s->stop();
}

OpsMonitor::OpsMonitor(const Config& config, uint64_t node_id, ReplicatorStats& stats,
                       NatsConnection& conn, const EmbeddedServer* server)
    : config_(config), node_(node_id), stats_(stats), conn_(conn), server_(server) {}

OpsMonitor::~OpsMonitor() = default;

void OpsMonitor::poll_streams() {
  if (server_) {
    NatsServerState st;
    st.embedded = true;
    st.pid = server_->pid();
    st.restarts = server_->restarts();
    st.client_url = server_->client_url();
    stats_.set_nats_server(st);
  }
  // Stream progress means "how far this node has applied"; a node that applies nothing
  // (replicate = false) has no streams to report.
  if (!config_.replicate || !conn_.connected()) return;
  for (int shard = 1; shard <= config_.replication_log.shards; ++shard) {
    const std::string name = stream_name(config_, shard);
    try {
      if (auto state = stream_state(conn_, name))
        stats_.update_stream(
            name, [&](StreamProgress& p) { p.last_seq = std::max(p.last_seq, state->last_seq); });
    } catch (const std::exception& e) {
      spdlog::debug("stream state of {}: {}", name, e.what());
    }
  }
}

void OpsMonitor::refresh_registry(bool force) {
  const auto now = std::chrono::steady_clock::now();
  const uint64_t epoch = stats_.schema_epoch();
  if (!force && epoch == registered_epoch_ && now < next_registry_) return;
  if (!conn_.connected()) return;
  std::string error;
  try {
    if (!registry_)
      registry_ = std::make_unique<SchemaRegistry>(conn_.get(), registry_bucket(config_),
                                                   config_.replication_log.replicas);
    if (registry_->put(make_registry_entry(node_, stats_.schema(), wall_clock_ms()), error)) {
      registered_epoch_ = epoch;
      next_registry_ = now + kRegistryRefresh;
      if (registry_failed_logged_) spdlog::info("schema registry entry stored");
      registry_failed_logged_ = false;
      return;
    }
  } catch (const std::exception& e) {
    error = e.what();
  }
  // Usually JetStream is still electing its leaders: try again soon, say so once.
  next_registry_ = now + kRegistryRetry;
  registered_epoch_ = epoch;
  if (!registry_failed_logged_)
    spdlog::warn("cannot update the schema registry yet ({}); retrying", error);
  registry_failed_logged_ = true;
}

void OpsMonitor::run(const std::atomic<bool>& stop) {
  auto next_poll = std::chrono::steady_clock::now();
  while (!stop) {
    const auto now = std::chrono::steady_clock::now();
    if (now >= next_poll) {
      next_poll = now + kStreamPollEvery;
      poll_streams();
    }
    refresh_registry(false);
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
}

}  // namespace harmony
