// Health answer and database probe (see health.hpp).
#include "replicator/ops/health.hpp"

#include <algorithm>
#include <cmath>
#include <ctime>

#include <fmt/chrono.h>
#include <fmt/format.h>

#include "harmony_version.hpp"
#include "shared/app_triggers.hpp"
#include "shared/capture.hpp"

namespace harmony {

nlohmann::json rfc3339_or_null(int64_t ms) {
  if (ms <= 0) return nullptr;
  const std::time_t secs = static_cast<std::time_t>(ms / 1000);
  return fmt::format("{:%Y-%m-%dT%H:%M:%S}.{:03d}Z", fmt::gmtime(secs), ms % 1000);
}

namespace {

// Rows held longer than this make the node "degraded": a moment of holding is normal (a table
// created on one node a little before another), a lasting one means this node differs from its
// peers until somebody acts (the DDL is missing here, a clock is wrong).
constexpr int64_t kHeldDegradedAfterMs = 30'000;

// What keeps the node from matching its peers although it replicates: held rows, tables that an
// application trigger writes again on every node, clocks apart. Answered with 200 and status
// "degraded" (a load balancer keeps the node; its other rows are current).
std::vector<std::string> health_warnings(const ReplicatorStats& s, const DbProbe& probe,
                                         int64_t now_ms) {
  std::vector<std::string> warnings = probe.app_trigger_warnings;
  // Clocks: a skew beyond the drift bound makes rows wait (held on the node behind) and lets the
  // node ahead win conflicts it should not; a lowered clock or versions issued beyond the bound
  // mean this node's clock ran ahead. Skew samples older than this say nothing about now.
  constexpr int64_t kSkewCurrentMs = 2 * ClockSkew::kWindowMs;
  const int64_t bound = s.max_clock_drift_ms;
  for (const auto& [origin, k] : s.clock_skews()) {
    if (now_ms - k.updated_ms > kSkewCurrentMs) continue;
    if (k.ahead_ms > bound)
      warnings.push_back(fmt::format(
          "clock skew: node {}'s clock is {:.1f} s ahead of this node's, beyond the drift bound "
          "({:.1f} s): its rows are held here until they are plausible",
          origin, static_cast<double>(k.ahead_ms) / 1000.0, static_cast<double>(bound) / 1000.0));
    else if (-k.ahead_ms > bound)
      warnings.push_back(fmt::format(
          "clock skew: rows from node {} arrive {:.1f} s behind this node's clock, beyond the "
          "drift bound ({:.1f} s): this node's clock may be ahead (the others then hold its "
          "rows), node {}'s behind, or delivery late",
          origin, static_cast<double>(-k.ahead_ms) / 1000.0, static_cast<double>(bound) / 1000.0,
          origin));
  }
  if (s.clock_lowered > 0)
    warnings.push_back(fmt::format(
        "clock: the stored clock was found {:.1f} s ahead of this host's clock and lowered to the "
        "drift bound ({} time(s) since start): this host's clock ran ahead",
        static_cast<double>(s.clock_lowered_ms) / 1000.0, s.clock_lowered.load()));
  if (s.versions_beyond_bound > 0)
    warnings.push_back(fmt::format(
        "clock: {} local version(s) issued beyond this host's clock + drift bound (rows last "
        "written while a clock ran ahead); peers hold them until they are plausible",
        s.versions_beyond_bound.load()));
  if (s.anti_entropy_gap > 0)
    warnings.push_back(fmt::format(
        "repairing a gap of {} sequence(s) by anti-entropy: the streams trimmed past this node's "
        "position before it read them (down, or too far behind); clears when a round with every "
        "reachable peer finds nothing missing here",
        s.anti_entropy_gap.load()));
  for (const auto& [name, p] : s.streams())
    if (p.held_rows > 0 && p.held_since_ms > 0 && now_ms - p.held_since_ms > kHeldDegradedAfterMs)
      warnings.push_back(fmt::format("stream {}: {} row(s) held for {} s; oldest: {}", name,
                                     p.held_rows, (now_ms - p.held_since_ms) / 1000,
                                     p.held_reason));
  return warnings;
}

// Why the node does not replicate right now, one phrase each; empty when it does. A paused
// stream counts: it applies nothing until its cause is fixed, whatever else still works.
std::vector<std::string> health_problems(const ReplicatorStats& s, const DbProbe& probe,
                                         bool restoring) {
  std::vector<std::string> problems;
  if (restoring) problems.push_back("starting: restoring snapshot");
  if (!probe.db_connected) problems.push_back("the database cannot be read");
  if (!s.nats_connected) problems.push_back("not connected to NATS");
  if (probe.db_connected && !probe.cdc_installed)
    problems.push_back("change capture is not installed on every replicated table");
  for (const auto& [name, p] : s.streams())
    if (p.paused) problems.push_back(fmt::format("stream {} is paused: {}", name, p.pause_reason));
  return problems;
}

nlohmann::json stream_json(const StreamProgress& p, int64_t now_ms) {
  nlohmann::json st;
  st["position"] = p.position;
  st["last_seq"] = p.last_seq;
  const uint64_t lag = p.last_seq > p.position ? p.last_seq - p.position : 0;
  st["lag_messages"] = lag;
  st["lag_seconds"] =
      lag > 0 && p.caught_up_ms > 0 ? std::max<int64_t>(0, now_ms - p.caught_up_ms) / 1000 : 0;
  st["replication_delay_ms"] = std::max<int64_t>(0, p.delay_ms);
  st["last_applied"] = rfc3339_or_null(p.last_applied_ms);
  st["paused"] = p.paused;
  if (p.paused) {
    st["pause_reason"] = p.pause_reason;
    st["paused_since"] = rfc3339_or_null(p.paused_since_ms);
  }
  st["held_rows"] = p.held_rows;
  if (p.held_rows > 0) {
    st["held_since"] = rfc3339_or_null(p.held_since_ms);
    st["held_reason"] = p.held_reason;
  }
  return st;
}

nlohmann::json schema_json(const ReplicatorStats& s) {
  // Rows that wait for a table or column this node does not have yet: a schema difference.
  bool waiting = false;
  for (const auto& [name, p] : s.streams()) waiting = waiting || p.held_rows > 0;
  nlohmann::json schema;
  schema["status"] = waiting ? "rows held" : "ok";
  nlohmann::json tables = nlohmann::json::object();
  for (const auto& [name, t] : s.schema()) {
    nlohmann::json e;
    e["hash"] = t.hash;
    e["previous"] = t.previous.empty() ? nlohmann::json(nullptr) : nlohmann::json(t.previous[0]);
    tables[name] = std::move(e);
  }
  schema["tables"] = std::move(tables);
  return schema;
}

double mb(uint64_t bytes) {
  return static_cast<double>(bytes) / (1024.0 * 1024.0);
}

}  // namespace

nlohmann::json snapshot_transfer_json(const SnapshotTransferStatus& t) {
  nlohmann::json j;
  j["phase"] = t.phase;
  j["step"] = t.step.empty() ? nlohmann::json(nullptr) : nlohmann::json(t.step);
  j["done_bytes"] = t.done_bytes;
  j["total_bytes"] = t.total_bytes;
  j["percent"] = nullptr;
  j["mb_per_s"] = nullptr;
  j["eta_s"] = nullptr;
  if (t.step.empty()) return j;
  if (t.total_bytes > 0) j["percent"] = std::min<uint64_t>(100, t.done_bytes * 100 / t.total_bytes);
  if (t.step_seconds > 0) {
    const double rate = mb(t.done_bytes) / t.step_seconds;
    j["mb_per_s"] = std::round(rate * 10) / 10;
    // The rest at the rate so far, as the progress log line says it.
    if (rate > 0 && t.total_bytes > t.done_bytes)
      j["eta_s"] = static_cast<int64_t>(std::ceil(mb(t.total_bytes - t.done_bytes) / rate));
  }
  return j;
}

HealthAnswer health_report(const ReplicatorStats& s, const DbProbe& probe, uint64_t node_id,
                           bool detailed, int64_t now_ms,
                           const std::optional<SnapshotTransferStatus>& transfer) {
  HealthAnswer a;
  // A start-up restore: the node does not replicate yet (503), but says why and how far it is,
  // so whoever watches a long restore sees it move.
  const bool restoring = transfer && transfer->phase == "restoring";
  const std::vector<std::string> problems = health_problems(s, probe, restoring);
  const std::vector<std::string> warnings = health_warnings(s, probe, now_ms);
  a.healthy = problems.empty();
  a.body["status"] = restoring          ? "starting"
                     : !a.healthy       ? "unhealthy"
                     : warnings.empty() ? "healthy"
                                        : "degraded";
  if (!detailed) return a;
  nlohmann::json& j = a.body;
  j["problems"] = problems;
  j["warnings"] = warnings;
  j["node_id"] = node_id;
  j["uptime_seconds"] = (now_ms - s.started_ms) / 1000;
  j["db_connected"] = probe.db_connected;
  j["nats_connected"] = s.nats_connected.load();
  j["cdc_installed"] = probe.cdc_installed;
  j["tables_tracked"] = probe.tables_tracked;
  j["last_replicated_event_timestamp"] = rfc3339_or_null(s.last_applied_ms);
  j["last_published_event_timestamp"] = rfc3339_or_null(s.last_published_ms);
  j["version"] = build::kVersion;

  // Ours.
  j["pending_changes"] = s.pending_rows.load();
  j["dead_letters"] = s.dead_letters_stored.load();
  j["dead_letters_bytes"] = s.dead_letters_bytes.load();
  j["dead_letters_pruned"] = s.dead_letters_pruned.load();
  nlohmann::json streams = nlohmann::json::object();
  for (const auto& [name, p] : s.streams()) streams[name] = stream_json(p, now_ms);
  j["streams"] = std::move(streams);
  j["schema"] = schema_json(s);
  const auto server = s.nats_server();
  if (server.embedded) {
    nlohmann::json n;
    n["pid"] = server.pid;
    n["restarts"] = server.restarts;
    n["client_url"] = server.client_url;
    j["nats_server"] = std::move(n);
  } else {
    j["nats_server"] = nullptr;  // external NATS ([nats] urls)
  }
  nlohmann::json snap;
  snap["last"] = rfc3339_or_null(s.last_snapshot_ms);
  snap["size_bytes"] = s.last_snapshot_bytes.load();
  snap["duration_ms"] = s.last_snapshot_duration_ms.load();
  snap["phase"] = nullptr;  // no transfer under way
  if (transfer) snap.update(snapshot_transfer_json(*transfer));
  j["snapshot"] = std::move(snap);
  nlohmann::json clocks;
  clocks["max_drift_seconds"] = static_cast<double>(s.max_clock_drift_ms) / 1000.0;
  nlohmann::json skew = nlohmann::json::object();
  for (const auto& [origin, k] : s.clock_skews())
    skew[std::to_string(origin)] = static_cast<double>(k.ahead_ms) / 1000.0;
  clocks["skew_seconds"] = std::move(skew);  // by origin node: how far its clock seems ahead
  clocks["lowered"] = s.clock_lowered.load();
  clocks["versions_beyond_bound"] = s.versions_beyond_bound.load();
  j["clock"] = std::move(clocks);
  return a;
}

HealthChecker::HealthChecker(std::string db_path, uint64_t node_id, const ReplicatorStats& stats)
    : db_path_(std::move(db_path)), node_id_(node_id), stats_(stats) {}

HealthChecker::~HealthChecker() = default;

DbProbe HealthChecker::probe() {
  std::lock_guard<std::mutex> lock(mu_);
  DbProbe p;
  try {
    if (!db_) {
      db_ = Db::open(db_path_, SQLITE_OPEN_READONLY);
      db_->set_busy_timeout(1000);
    }
    db_->query_int("SELECT count(*) FROM sqlite_schema");
    p.db_connected = true;
    if (db_->query_int("SELECT count(*) FROM sqlite_schema WHERE type='table' AND "
                       "name='__harmony_tables'") == 0)
      return p;
    const auto tables = captured_tables(*db_);
    p.tables_tracked = static_cast<int64_t>(tables.size());
    p.cdc_installed = !tables.empty();
    for (const auto& t : tables) p.cdc_installed = p.cdc_installed && triggers_installed(*db_, t);
    p.app_trigger_warnings = app_trigger_warnings(*db_);
  } catch (const std::exception&) {
    db_.reset();  // reopened on the next probe
  }
  return p;
}

HealthAnswer HealthChecker::check(bool detailed) {
  return health_report(stats_, probe(), node_id_, detailed, wall_clock_ms(),
                       snapshot_transfer_status());
}

}  // namespace harmony
