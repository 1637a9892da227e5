// -verify (see verify_command.hpp).
#include "replicator/sync/verify_command.hpp"

#include <chrono>
#include <cstdio>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "replicator/sync/anti_entropy.hpp"
#include "replicator/sync/one_shot.hpp"

namespace harmony {

int run_verify(const Config& config) {
  auto sync = connect_one_shot(config, "-verify", "the other nodes");
  if (!sync) return 2;
  const uint64_t node = sync->node;
  AntiEntropyOptions& o = sync->options;
  o.max_repair_rows = config.anti_entropy.max_repair_rows_per_round;
  o.digest_check_rounds = 0;
  o.scrub_rows = config.anti_entropy.scrub_rows;
  o.max_drift_ms = config.max_clock_drift_ms;
  RoundReport report;
  double rebuild_s = 0, round_s = 0;
  {
    using Clock = std::chrono::steady_clock;
    AntiEntropy ae(o, sync->conn->get(), nullptr);
    const auto t0 = Clock::now();
    ae.rebuild();  // a digest left wrong by edits behind the replicator's back is fixed first
    const auto t1 = Clock::now();
    report = ae.round(true);
    rebuild_s = std::chrono::duration<double>(t1 - t0).count();
    round_s = std::chrono::duration<double>(Clock::now() - t1).count();
  }
  std::printf("node %llu, %zu peer(s) answered:", static_cast<unsigned long long>(node),
              report.peers.size());
  for (uint64_t p : report.peers) std::printf(" %llu", static_cast<unsigned long long>(p));
  std::printf("\n%-24s %10s %-16s %6s %8s %11s %8s\n", "table", "rows", "digest", "peers", "differ",
              "differences", "repaired");
  for (const auto& t : report.tables)
    std::printf("%-24s %10lld %016llx %6lld %8lld %11lld %8lld\n", t.name.c_str(),
                static_cast<long long>(t.rows), static_cast<unsigned long long>(t.root),
                static_cast<long long>(t.peers_compared), static_cast<long long>(t.peers_differing),
                static_cast<long long>(t.differences), static_cast<long long>(t.repaired));
  std::printf("bytes exchanged: %lld sent, %lld received (message bodies)\n",
              static_cast<long long>(report.bytes_sent),
              static_cast<long long>(report.bytes_received));
  // Apart, because the rebuild (one scan per table, more after edits of {rows}) is this
  // command's start-up, not what a replicator's periodic round costs.
  std::printf("time: digest rebuild %.2f s, round %.2f s\n", rebuild_s, round_s);
  for (const auto& p : report.problems) std::printf("problem: %s\n", p.c_str());
  if (report.peers.empty()) {
    std::printf("no peer answered: nothing compared\n");
    return 3;
  }
  const bool agree = !report.differences() && report.problems.empty();
  std::printf("%s\n", agree ? "all reachable nodes agree" : "nodes differ");
  return agree ? 0 : 1;
}

}  // namespace harmony
