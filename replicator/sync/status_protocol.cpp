// The cluster status message: built from counters, CBOR encoding, bounded decoding (see
// status_protocol.hpp).
#include "replicator/sync/status_protocol.hpp"

#include <algorithm>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "replicator/wire/codec.hpp"

namespace harmony {

namespace {

using json = nlohmann::json;

std::string cut(std::string s) {
  if (s.size() > kMaxStatusText) s.resize(kMaxStatusText);
  return s;
}

const json& need(const json& obj, const char* name) {
  auto it = obj.find(name);
  if (it == obj.end()) throw DecodeError(fmt::format("status: missing field \"{}\"", name));
  return *it;
}
int64_t need_i64(const json& obj, const char* name) {
  const json& j = need(obj, name);
  if (j.is_number_unsigned() && j.get<uint64_t>() <= static_cast<uint64_t>(INT64_MAX))
    return static_cast<int64_t>(j.get<uint64_t>());
  if (j.is_number_integer() && !j.is_number_unsigned()) return j.get<int64_t>();
  throw DecodeError(fmt::format("status: {} is not a 64-bit integer", name));
}
uint64_t need_u64(const json& obj, const char* name) {
  const json& j = need(obj, name);
  if (j.is_number_unsigned()) return j.get<uint64_t>();
  if (j.is_number_integer() && j.get<int64_t>() >= 0)
    return static_cast<uint64_t>(j.get<int64_t>());
  throw DecodeError(fmt::format("status: {} is not a non-negative integer", name));
}
std::string need_text(const json& obj, const char* name) {
  const json& j = need(obj, name);
  if (!j.is_string()) throw DecodeError(fmt::format("status: {} is not a string", name));
  return cut(j.get<std::string>());
}
bool need_bool(const json& obj, const char* name) {
  const json& j = need(obj, name);
  if (!j.is_boolean()) throw DecodeError(fmt::format("status: {} is not a boolean", name));
  return j.get<bool>();
}
const json& need_array(const json& obj, const char* name, size_t max) {
  const json& j = need(obj, name);
  if (!j.is_array()) throw DecodeError(fmt::format("status: {} is not an array", name));
  if (j.size() > max)
    throw DecodeError(
        fmt::format("status: {} holds {} entries, more than {}", name, j.size(), max));
  return j;
}

}  // namespace

NodeStatus node_status(const ReplicatorStats& stats, uint64_t node, const std::string& address,
                       int64_t now_ms) {
  NodeStatus s;
  s.node = node;
  s.address = cut(address);
  s.now_ms = now_ms;
  s.pending_rows = stats.pending_rows.load();
  s.conflicts = stats.conflicts.load();
  s.dead_letters = stats.dead_letters_stored.load();
  s.last_published_ms = stats.last_published_ms.load();
  s.last_applied_ms = stats.last_applied_ms.load();
  std::vector<std::string> problems;
  if (!stats.db_ok.load()) problems.push_back("database not reachable");
  if (!stats.nats_connected.load()) problems.push_back("NATS not connected");
  if (!stats.capture_installed.load()) problems.push_back("capture not installed");
  for (const auto& [name, p] : stats.streams()) {
    if (s.streams.size() >= kMaxStatusStreams) break;
    StreamStatus st;
    st.name = cut(name);
    st.position = p.position;
    st.last_seq = p.last_seq;
    // The same figure as the stream_lag_seconds metric.
    st.lag_ms = p.last_seq > p.position && p.caught_up_ms > 0
                    ? std::max<int64_t>(0, now_ms - p.caught_up_ms)
                    : 0;
    st.paused = p.paused;
    st.held_rows = p.held_rows;
    s.held_rows += p.held_rows;
    if (p.paused) problems.push_back(cut(fmt::format("{} paused: {}", name, p.pause_reason)));
    s.streams.push_back(std::move(st));
  }
  for (const auto& [origin, k] : stats.clock_skews()) {
    if (s.skews.size() >= kMaxStatusOrigins) break;
    s.skews.push_back({origin, k.ahead_ms});
  }
  s.healthy = problems.empty();
  for (const auto& p : problems) s.problem += (s.problem.empty() ? "" : "; ") + p;
  s.problem = cut(s.problem);
  return s;
}

std::string encode_status(const NodeStatus& s) {
  json streams = json::array();
  for (const auto& st : s.streams)
    streams.push_back({{"name", st.name},
                       {"pos", st.position},
                       {"last", st.last_seq},
                       {"lag_ms", st.lag_ms},
                       {"paused", st.paused},
                       {"held", st.held_rows}});
  json skews = json::array();
  for (const auto& k : s.skews) skews.push_back({{"node", k.node}, {"ahead_ms", k.ahead_ms}});
  const json j = {{"node", s.node},
                  {"addr", s.address},
                  {"now_ms", s.now_ms},
                  {"healthy", s.healthy},
                  {"problem", s.problem},
                  {"pending", s.pending_rows},
                  {"held", s.held_rows},
                  {"conflicts", s.conflicts},
                  {"dead_letters", s.dead_letters},
                  {"last_pub_ms", s.last_published_ms},
                  {"last_apply_ms", s.last_applied_ms},
                  {"streams", std::move(streams)},
                  {"skews", std::move(skews)}};
  const std::vector<uint8_t> cbor = json::to_cbor(j);
  return std::string(cbor.begin(), cbor.end());
}

NodeStatus decode_status(std::string_view bytes) {
  if (bytes.size() > kMaxStatusBytes)
    throw DecodeError(
        fmt::format("status of {} bytes exceeds {} bytes", bytes.size(), kMaxStatusBytes));
  DecodeLimits limits;
  limits.max_decoded_bytes = kMaxStatusBytes;
  limits.max_total_bytes = kMaxStatusBytes;
  limits.max_value_bytes = kMaxStatusBytes;
  limits.max_values = 16 * (kMaxStatusStreams + kMaxStatusOrigins) + 64;
  limits.max_depth = 5;  // map > streams > stream > value, one level of slack
  const json j = parse_bounded_cbor(bytes, limits);
  if (!j.is_object()) throw DecodeError("status is not a map");
  NodeStatus s;
  s.node = need_u64(j, "node");
  s.address = need_text(j, "addr");
  s.now_ms = need_i64(j, "now_ms");
  s.healthy = need_bool(j, "healthy");
  s.problem = need_text(j, "problem");
  s.pending_rows = need_i64(j, "pending");
  s.held_rows = need_i64(j, "held");
  s.conflicts = need_i64(j, "conflicts");
  s.dead_letters = need_i64(j, "dead_letters");
  s.last_published_ms = need_i64(j, "last_pub_ms");
  s.last_applied_ms = need_i64(j, "last_apply_ms");
  for (const auto& st : need_array(j, "streams", kMaxStatusStreams)) {
    if (!st.is_object()) throw DecodeError("status: a stream is not a map");
    s.streams.push_back({need_text(st, "name"), need_u64(st, "pos"), need_u64(st, "last"),
                         need_i64(st, "lag_ms"), need_bool(st, "paused"), need_i64(st, "held")});
  }
  for (const auto& k : need_array(j, "skews", kMaxStatusOrigins)) {
    if (!k.is_object()) throw DecodeError("status: a skew is not a map");
    s.skews.push_back({need_u64(k, "node"), need_i64(k, "ahead_ms")});
  }
  return s;
}

}  // namespace harmony
