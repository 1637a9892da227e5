// Prometheus text rendering of the replicator's counters (see metrics.hpp). HarmonyLite's own
// metric names (published, pending_publish, schema_mismatch_paused) are kept so existing
// dashboards work; everything else follows the Prometheus conventions (_total for counters,
// base units: seconds and bytes).
#include "replicator/ops/metrics.hpp"

#include <cmath>

#include <fmt/format.h>

#include "harmony_version.hpp"

namespace harmony {
namespace {

class Writer {
 public:
  Writer(const MetricsOptions& o) : o_(o), node_(fmt::format("node_id=\"{}\"", o.node_id)) {}

  // One metric family with a single series (only the node_id label).
  void single(const std::string& name, const char* type, const char* help, double value) {
    family(name, type, help);
    series(name, "", value);
  }
  void family(const std::string& name, const char* type, const char* help) {
    out_ += fmt::format("# HELP {} {}\n# TYPE {} {}\n", metric_name(o_, name), help,
                        metric_name(o_, name), type);
  }
  // `labels` are extra labels already formatted: stream="x".
  void series(const std::string& name, const std::string& labels, double value,
              const std::string& suffix = "") {
    out_ += fmt::format("{}{}{{{}{}{}}} {}\n", metric_name(o_, name), suffix, node_,
                        labels.empty() ? "" : ",", labels, number(value));
  }
  void histogram(const std::string& name, const char* help, const Histogram::Snapshot& h) {
    family(name, "histogram", help);
    for (size_t i = 0; i < h.bounds.size(); ++i)
      series(name, fmt::format("le=\"{}\"", number(h.bounds[i])),
             static_cast<double>(h.cumulative[i]), "_bucket");
    series(name, "le=\"+Inf\"", static_cast<double>(h.count), "_bucket");
    series(name, "", h.sum, "_sum");
    series(name, "", static_cast<double>(h.count), "_count");
  }
  static std::string number(double v) {
    if (std::isnan(v)) return "NaN";
    if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
    if (v == std::floor(v) && std::fabs(v) < 9.0e15) return fmt::format("{}", int64_t(v));
    return fmt::format("{}", v);
  }
  std::string take() { return std::move(out_); }

 private:
  const MetricsOptions& o_;
  std::string node_;
  std::string out_;
};

double d(int64_t v) {
  return static_cast<double>(v);
}

}  // namespace

std::string metric_name(const MetricsOptions& o, const std::string& name) {
  std::string out;
  for (const auto* part : {&o.namespace_, &o.subsystem, &name}) {
    if (part->empty()) continue;
    if (!out.empty()) out += '_';
    out += *part;
  }
  return out;
}

std::string escape_label_value(const std::string& v) {
  std::string out;
  for (char c : v) {
    if (c == '\\')
      out += "\\\\";
    else if (c == '"')
      out += "\\\"";
    else if (c == '\n')
      out += "\\n";
    else
      out += c;
  }
  return out;
}

namespace {

// Publishing: rows and batches sent, failures, what waits, latency.
void write_publishing(Writer& w, const ReplicatorStats& s) {
  w.single("published", "counter", "Rows published to JetStream (acknowledged).",
           d(s.rows_published));
  w.single("batches_published_total", "counter", "Batches published to JetStream (acknowledged).",
           d(s.batches_published));
  w.single("publish_failures_total", "counter",
           "Publish attempts that failed and will be retried (nothing is dropped).",
           d(s.publish_failures));
  w.single("pending_publish", "gauge", "Local changes captured but not yet published.",
           d(s.pending_rows));
  w.single("last_published_timestamp_seconds", "gauge",
           "Unix time of this node's last acknowledged publish (0 = never).",
           d(s.last_published_ms) / 1000.0);
  w.histogram("publish_latency_seconds",
              "Time to publish one batch until JetStream acknowledged every part.",
              s.publish_latency.snapshot());
}

// Applying: received rows written, skipped, dead-lettered; stream checks; latencies.
void write_applying(Writer& w, const ReplicatorStats& s, int64_t now_ms) {
  w.single("rows_applied_total", "counter", "Received rows written to this database.",
           d(s.rows_applied));
  w.single("batches_applied_total", "counter", "Received batches applied.", d(s.batches_applied));
  w.single("rows_skipped_older_total", "counter",
           "Received rows skipped because the local version was newer (last writer wins).",
           d(s.rows_skipped_older));
  w.single("rows_dead_lettered_total", "counter", "Received rows moved to __harmony_dead_letters.",
           d(s.rows_dead_lettered));
  w.single("batches_dead_lettered_total", "counter",
           "Received messages that could not be decoded, moved to __harmony_dead_letters.",
           d(s.batches_dead_lettered));
  w.single("batches_skipped_own_total", "counter",
           "This node's own batches seen in the streams and skipped.", d(s.batches_skipped_own));
  w.single("stream_messages_checked_total", "counter",
           "Messages read from the streams and compared with the stream leader's copy.",
           d(s.stream_messages_checked));
  w.single("stream_messages_repaired_total", "counter",
           "Messages this node read differently from the stream leader's copy (diverged stream "
           "replicas), re-applied from the leader.",
           d(s.stream_messages_repaired));
  w.single("stream_audit_leader_reads_total", "counter",
           "Requests the stream audit sent to the stream leader (the audit's cost; 0 with "
           "[replication_log] stream_audit = false).",
           d(s.stream_audit_leader_reads));
  w.single("stream_audit_leader_bytes_total", "counter",
           "Message payload bytes the stream leader returned to the stream audit.",
           d(s.stream_audit_leader_bytes));
  w.single("anti_entropy_rounds_total", "counter",
           "Anti-entropy rounds run (content digests compared with every peer that answered).",
           d(s.anti_entropy_rounds));
  w.single("anti_entropy_rows_compared_total", "counter",
           "Row versions of differing digest buckets compared with a peer's.",
           d(s.anti_entropy_rows_compared));
  w.single("anti_entropy_rows_repaired_total", "counter",
           "Rows fetched from a peer by anti-entropy and applied (last writer wins).",
           d(s.anti_entropy_rows_repaired));
  w.single("anti_entropy_last_difference_timestamp_seconds", "gauge",
           "Unix time of the last anti-entropy round that found a difference (0 = never).",
           d(s.anti_entropy_last_difference_ms) / 1000.0);
  w.single("tombstones", "gauge",
           "Tombstones (deleted rows' versions) in __harmony_rows after the last GC pass.",
           d(s.tombstones));
  w.single("tombstones_pruned_total", "counter",
           "Tombstones pruned below the horizon every member has applied past.",
           d(s.tombstones_pruned));
  w.single("dead_letters", "gauge", "Rows currently in __harmony_dead_letters.",
           d(s.dead_letters_stored));
  w.single("rows_held_total", "counter",
           "Received rows that could not be applied when they arrived and were held "
           "(__harmony_held) to be applied later.",
           d(s.rows_held));
  w.single("values_left_out_total", "counter",
           "Received values of columns this node has dropped, left out when applying.",
           d(s.values_left_out));
  w.single("conflicts_total", "counter",
           "Rows recorded in the conflict log (__harmony_conflicts): concurrent changes that "
           "last-writer-wins or a UNIQUE race made lose.",
           d(s.conflicts));
  w.single("dead_letters_bytes", "gauge",
           "Bytes of payload, reason, stream and table name in __harmony_dead_letters.",
           d(s.dead_letters_bytes));
  w.single("dead_letters_pruned_total", "counter",
           "Rows removed from __harmony_dead_letters by [dead_letters] max_rows, max_bytes or "
           "max_age.",
           d(s.dead_letters_pruned));
  w.single("last_applied_timestamp_seconds", "gauge",
           "Unix time of this node's last apply of a received batch (0 = never).",
           d(s.last_applied_ms) / 1000.0);
  w.histogram("apply_latency_seconds", "Duration of one apply transaction (many batches).",
              s.apply_latency.snapshot());
  w.single("apply_write_lock_seconds_total", "counter",
           "Time this replicator held a write transaction on the database (fold and apply): "
           "other writers wait meanwhile, the sqlite3 shell fails with 'database is locked'.",
           s.write_lock.total_seconds());
  w.single("apply_write_lock_share", "gauge",
           "Share (0..1) of the last complete 10 s interval this replicator held a write "
           "transaction on the database.",
           s.write_lock.share(now_ms));
  w.histogram("replication_delay_seconds",
              "Origin write (HLC physical time) to local commit, per applied batch (newest row).",
              s.replication_delay.snapshot());
}

// Per stream: position, lag, pauses, delay; the schema pause HarmonyLite's dashboards know.
void write_streams(Writer& w, const ReplicatorStats& s, int64_t now_ms) {
  const auto streams = s.streams();
  bool held = false;
  for (const auto& [name, p] : streams) held = held || p.held_rows > 0;
  auto per_stream = [&](const std::string& metric, const char* type, const char* help, auto value) {
    w.family(metric, type, help);
    for (const auto& [name, p] : streams)
      w.series(metric, fmt::format("stream=\"{}\"", escape_label_value(name)), value(p));
  };
  per_stream("stream_position", "gauge", "Last stream sequence handled by this node.",
             [](const StreamProgress& p) { return static_cast<double>(p.position); });
  per_stream("stream_last_sequence", "gauge", "Last sequence in the stream.",
             [](const StreamProgress& p) { return static_cast<double>(p.last_seq); });
  per_stream("stream_lag_messages", "gauge", "Messages in the stream not yet handled here.",
             [](const StreamProgress& p) {
               return p.last_seq > p.position ? static_cast<double>(p.last_seq - p.position) : 0.0;
             });
  per_stream("stream_lag_seconds", "gauge",
             "How long this node has been behind the stream's end (0 = caught up).",
             [&](const StreamProgress& p) {
               return p.last_seq > p.position && p.caught_up_ms > 0
                          ? std::max<double>(0, d(now_ms - p.caught_up_ms) / 1000.0)
                          : 0.0;
             });
  per_stream("stream_paused", "gauge",
             "1 while the stream reads nothing (missing sequences, or too many rows held).",
             [](const StreamProgress& p) { return p.paused ? 1.0 : 0.0; });
  per_stream("stream_replication_delay_seconds", "gauge",
             "Origin write to local apply of the last applied batch of this stream.",
             [](const StreamProgress& p) {
               return static_cast<double>(std::max<int64_t>(0, p.delay_ms)) / 1000.0;
             });
  per_stream("stream_held_rows", "gauge",
             "Rows of this stream held until they can be applied (__harmony_held).",
             [](const StreamProgress& p) { return static_cast<double>(p.held_rows); });
  per_stream("stream_held_bytes", "gauge",
             "Payload bytes of this stream's held rows (bounded by max_held_bytes).",
             [](const StreamProgress& p) { return static_cast<double>(p.held_bytes); });
  per_stream("stream_held_oldest_seconds", "gauge",
             "Age of the oldest held row of this stream (0 = none).", [&](const StreamProgress& p) {
               return p.held_since_ms > 0
                          ? std::max<double>(0, d(now_ms - p.held_since_ms) / 1000.0)
                          : 0.0;
             });
  // HarmonyLite's dashboards know this name: here it means "rows wait for a schema change".
  w.single("schema_mismatch_paused", "gauge",
           "1 while received rows are held on this node (a table or column it does not have "
           "yet, a version too far ahead, a constraint).",
           held ? 1 : 0);
}

// Snapshots this node saved: when, how big, how long, how many failed.
void write_snapshots(Writer& w, const ReplicatorStats& s, int64_t now_ms) {
  const int64_t snap_ms = s.last_snapshot_ms;
  w.single("snapshot_last_timestamp_seconds", "gauge",
           "Unix time the last snapshot was saved by this node (0 = none).", d(snap_ms) / 1000.0);
  if (snap_ms > 0)
    w.single("snapshot_age_seconds", "gauge", "Age of the last snapshot saved by this node.",
             std::max<double>(0, d(now_ms - snap_ms) / 1000.0));
  w.single("snapshot_size_bytes", "gauge", "Size of the last snapshot saved by this node.",
           d(s.last_snapshot_bytes));
  w.single("snapshot_duration_seconds", "gauge", "Time the last snapshot save took.",
           d(s.last_snapshot_duration_ms) / 1000.0);
  w.single("snapshots_saved_total", "counter", "Snapshots saved by this node.",
           d(s.snapshots_saved));
  w.single("snapshot_failures_total", "counter", "Snapshot saves that failed.",
           d(s.snapshot_failures));
}

// The process: connections, capture, tables, embedded server, start time, build.
// Clocks: the drift bound, how far each origin's clock seems ahead of ours, what the bound did.
void write_clocks(Writer& w, const ReplicatorStats& s) {
  w.single("max_clock_drift_seconds", "gauge",
           "The drift bound (max_clock_drift): rows further ahead of this node's clock are held, "
           "and no local version is issued beyond it.",
           static_cast<double>(s.max_clock_drift_ms) / 1000.0);
  w.family("clock_skew_seconds", "gauge",
           "How far an origin node's clock seems ahead of this node's (negative: behind), from "
           "received row versions: the largest sample of the last 30 to 60 s, less delivery "
           "delay.");
  for (const auto& [origin, k] : s.clock_skews())
    w.series("clock_skew_seconds", fmt::format("node=\"{}\"", origin),
             static_cast<double>(k.ahead_ms) / 1000.0);
  w.single("clock_lowered_total", "counter",
           "Folds that found the stored clock beyond this host's clock + drift bound and lowered "
           "it.",
           d(s.clock_lowered));
  w.single("versions_beyond_bound_total", "counter",
           "Local versions issued beyond this host's clock + drift bound (rows whose previous "
           "version already was).",
           d(s.versions_beyond_bound));
}

void write_process(Writer& w, const ReplicatorStats& s) {
  w.single("db_connected", "gauge", "1 when the database answered the last check.",
           s.db_ok ? 1 : 0);
  w.single("nats_connected", "gauge", "1 while connected to NATS.", s.nats_connected ? 1 : 0);
  w.single("cdc_installed", "gauge", "1 when change capture is installed.",
           s.capture_installed ? 1 : 0);
  w.single("tables_tracked", "gauge", "Tables replicated by this node.", d(s.tables_tracked));
  const auto server = s.nats_server();
  if (server.embedded)
    w.single("nats_server_restarts_total", "counter",
             "Times the embedded nats-server was restarted after it died.", d(server.restarts));
  w.single("start_time_seconds", "gauge", "Unix time this process started.",
           d(s.started_ms) / 1000.0);
  w.family("build_info", "gauge", "Version of this harmonylite (value is always 1).");
  w.series("build_info",
           fmt::format("version=\"{}\",commit=\"{}\"", escape_label_value(build::kVersion),
                       escape_label_value(build::kGitCommit)),
           1);
}

}  // namespace

std::string render_metrics(const ReplicatorStats& s, const MetricsOptions& o, int64_t now_ms) {
  Writer w(o);
  write_publishing(w, s);
  write_applying(w, s, now_ms);
  write_streams(w, s, now_ms);
  write_snapshots(w, s, now_ms);
  write_clocks(w, s);
  write_process(w, s);
  return w.take();
}

}  // namespace harmony
