// -status (see status_command.hpp).
#include "replicator/ops/status_command.hpp"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <optional>
#include <set>

#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <nlohmann/json.hpp>

#include "replicator/common/database.hpp"
#include "replicator/nats/nats_client.hpp"
#include "replicator/sync/anti_entropy.hpp"
#include "replicator/sync/one_shot.hpp"
#include "shared/capture_registry.hpp"
#include "shared/clock.hpp"
#include "shared/meta_store.hpp"

namespace harmony {

namespace {

// How long answers are gathered: each node answers from memory within milliseconds on a LAN;
// 2 s leaves room for a loaded host or a WAN link without making the command slow when a node
// is down (then the whole window is waited).
constexpr int64_t kStatusWindowMs = 2'000;
// Once every known node answered, nodes this database has not heard of yet (no rows from them)
// still get this long from the request: a LAN answer takes milliseconds.
constexpr int64_t kUnknownNodesGraceMs = 300;
// HLC versions carry wall-clock milliseconds above 16 bits of counter (shared/hlc.hpp).
constexpr int kHlcCounterBits = 16;

struct Row {
  uint64_t node = 0;
  bool answered = false;
  int64_t round_trip_ms = 0;
  int64_t last_write_ms = 0;       // newest version from this origin in our rows (0: none)
  std::optional<int64_t> skew_ms;  // how far ahead peers see its clock (largest magnitude)
  NodeStatus status;
};

// Origins of the rows this database holds, with the newest write from each: nodes that were in
// the cluster even if they do not answer now. One scan of each {rows} table (a one-shot command).
std::map<uint64_t, int64_t> known_origins(const Config& config) {
  std::map<uint64_t, int64_t> out;
  Db db = open_database(config.db_path);
  db.set_busy_timeout(5000);
  for (const auto& t : captured_tables(db)) {
    auto q = db.prepare(fmt::format("SELECT node, max(version) FROM {} GROUP BY node", t.rows));
    while (q.step()) {
      const auto node = static_cast<uint64_t>(q.column_int(0));
      const int64_t ms = q.column_int(1) >> kHlcCounterBits;
      if (node) out[node] = std::max(out[node], ms);
    }
  }
  return out;
}

std::string ago(int64_t then_ms, int64_t now_ms) {
  if (then_ms <= 0) return "never";
  const int64_t s = std::max<int64_t>(0, now_ms - then_ms) / 1000;
  if (s < 120) return fmt::format("{}s ago", s);
  if (s < 7200) return fmt::format("{}m ago", s / 60);
  return fmt::format("{}h ago", s / 3600);
}

nlohmann::json to_json(const Row& r, int64_t now_ms) {
  nlohmann::json j = {{"node", r.node}, {"answered", r.answered}};
  if (r.last_write_ms > 0) j["last_write_seen_ms"] = r.last_write_ms;
  if (r.skew_ms) j["clock_skew_ms"] = *r.skew_ms;
  if (!r.answered) {
    j["health"] = "not answering";
    return j;
  }
  const NodeStatus& s = r.status;
  j["address"] = s.address;
  j["last_seen_ms"] = now_ms;
  j["round_trip_ms"] = r.round_trip_ms;
  j["health"] = s.healthy ? "healthy" : "unhealthy";
  if (!s.problem.empty()) j["problem"] = s.problem;
  j["pending_rows"] = s.pending_rows;
  j["held_rows"] = s.held_rows;
  j["conflicts"] = s.conflicts;
  j["dead_letters"] = s.dead_letters;
  j["last_published_ms"] = s.last_published_ms;
  j["last_applied_ms"] = s.last_applied_ms;
  j["clock_offset_ms"] = s.now_ms - (now_ms - r.round_trip_ms / 2);
  nlohmann::json streams = nlohmann::json::array();
  for (const auto& st : s.streams)
    streams.push_back({{"stream", st.name},
                       {"position", st.position},
                       {"last_sequence", st.last_seq},
                       {"lag_messages", st.last_seq > st.position ? st.last_seq - st.position : 0},
                       {"lag_ms", st.lag_ms},
                       {"paused", st.paused},
                       {"held_rows", st.held_rows}});
  j["streams"] = std::move(streams);
  return j;
}

void print_table(const std::vector<Row>& rows, int64_t now_ms) {
  std::printf("%-20s %-28s %-10s %-13s %8s %6s %9s %7s %9s\n", "node", "address", "last seen",
              "health", "pending", "held", "conflicts", "dead", "skew");
  for (const auto& r : rows) {
    const std::string skew = r.skew_ms ? fmt::format("{}ms", *r.skew_ms) : "-";
    if (!r.answered) {
      std::printf("%-20llu %-28s %-10s %-13s %8s %6s %9s %7s %9s\n",
                  static_cast<unsigned long long>(r.node), "-", "-", "NOT ANSWERING", "-", "-", "-",
                  "-", skew.c_str());
      std::printf("    last write seen from it: %s\n", ago(r.last_write_ms, now_ms).c_str());
      continue;
    }
    const NodeStatus& s = r.status;
    std::printf("%-20llu %-28s %-10s %-13s %8lld %6lld %9lld %7lld %9s\n",
                static_cast<unsigned long long>(r.node), s.address.c_str(), "now",
                s.healthy ? "healthy" : "UNHEALTHY", static_cast<long long>(s.pending_rows),
                static_cast<long long>(s.held_rows), static_cast<long long>(s.conflicts),
                static_cast<long long>(s.dead_letters), skew.c_str());
    if (!s.problem.empty()) std::printf("    problem: %s\n", s.problem.c_str());
    for (const auto& st : s.streams)
      std::printf("    %-28s applied %llu of %llu, lag %llu msg / %llds, held %lld%s\n",
                  st.name.c_str(), static_cast<unsigned long long>(st.position),
                  static_cast<unsigned long long>(st.last_seq),
                  static_cast<unsigned long long>(
                      st.last_seq > st.position ? st.last_seq - st.position : 0),
                  static_cast<long long>(st.lag_ms / 1000), static_cast<long long>(st.held_rows),
                  st.paused ? ", PAUSED" : "");
  }
}

}  // namespace

int run_status(const Config& config, bool json) {
  std::map<uint64_t, int64_t> origins = known_origins(config);
  auto sync = connect_one_shot(config, "-status", "the nodes");
  if (!sync) return 2;
  const uint64_t node = sync->node;
  std::vector<std::string> problems;
  std::vector<StatusAnswer> answers;
  const int64_t asked_ms = wall_clock_ms();
  {
    AntiEntropy ae(sync->options, sync->conn->get(), nullptr);
    // Known nodes: this one and the origins of the rows it holds.
    std::set<uint64_t> known{node};
    for (const auto& [origin, ms] : origins) known.insert(origin);
    answers = ae.ask_status(kStatusWindowMs, known, kUnknownNodesGraceMs, problems);
  }
  const int64_t now_ms = wall_clock_ms();
  std::map<uint64_t, Row> rows;
  for (const auto& [origin, ms] : origins) rows[origin].last_write_ms = ms;
  rows[node];  // this node is known even before it wrote anything
  for (auto& a : answers) {
    Row& r = rows[a.node];
    r.answered = true;
    r.round_trip_ms = a.round_trip_ms;
    r.status = a.status;
    // Clock samples a node keeps of its origins also reveal nodes that never wrote here.
    for (const auto& k : a.status.skews) rows[k.node];
  }
  for (auto& [id, r] : rows) {
    r.node = id;
    for (const auto& a : answers)
      for (const auto& k : a.status.skews)
        if (k.node == id && (!r.skew_ms || std::llabs(k.ahead_ms) > std::llabs(*r.skew_ms)))
          r.skew_ms = k.ahead_ms;
  }
  std::vector<Row> list;
  for (auto& [id, r] : rows) list.push_back(std::move(r));
  bool all_good = !answers.empty();
  for (const auto& r : list) all_good = all_good && r.answered && r.status.healthy;

  if (json) {
    nlohmann::json out = {{"asked_by", node},
                          {"time_ms", now_ms},
                          {"waited_ms", now_ms - asked_ms},
                          {"ok", all_good}};
    out["nodes"] = nlohmann::json::array();
    for (const auto& r : list) out["nodes"].push_back(to_json(r, now_ms));
    out["problems"] = problems;
    std::printf("%s\n", out.dump(2).c_str());
  } else {
    print_table(list, now_ms);
    for (const auto& p : problems) std::printf("problem: %s\n", p.c_str());
    size_t answered = 0;
    for (const auto& r : list) answered += r.answered ? 1 : 0;
    std::printf("%zu of %zu known node(s) answered; %s\n", answered, list.size(),
                all_good ? "all healthy" : "NOT all healthy");
  }
  if (answers.empty()) return 3;
  return all_good ? 0 : 1;
}

}  // namespace harmony
