// Prometheus metrics: renders ReplicatorStats in the Prometheus text exposition format
// (version 0.0.4) for GET /metrics. Pure text rendering, testable without HTTP; the server is
// replicator/ops/http_server.hpp.
//
// Why hand-written: Debian ships no prometheus-cpp, and the text format (HELP/TYPE lines,
// name{labels} value, histogram _bucket/_sum/_count) is small and stable; a few dozen lines
// here cost less than vendoring a client library and its build.
#pragma once
#include <cstdint>
#include <string>

#include "replicator/common/stats.hpp"

namespace harmony {

struct MetricsOptions {
  std::string namespace_ = "harmonylite";  // [prometheus] namespace
  std::string subsystem;                   // [prometheus] subsystem
  uint64_t node_id = 0;                    // constant label node_id on every series
};

// "<namespace>_<subsystem>_<name>", empty parts left out (as Prometheus clients build names).
std::string metric_name(const MetricsOptions& options, const std::string& name);

// The whole exposition. `now_ms` is the wall clock used for ages and lag in seconds.
std::string render_metrics(const ReplicatorStats& stats, const MetricsOptions& options,
                           int64_t now_ms);

// Escapes a label value (backslash, double quote, newline).
std::string escape_label_value(const std::string& value);

}  // namespace harmony
