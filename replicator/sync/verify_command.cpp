// -verify (see verify_command.hpp).
#include "replicator/sync/verify_command.hpp"

#include <cstdio>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "replicator/common/database.hpp"
#include "replicator/common/runtime_info.hpp"
#include "replicator/nats/nats_client.hpp"
#include "replicator/nats/nats_config.hpp"
#include "replicator/sync/anti_entropy.hpp"
#include "shared/meta_store.hpp"

namespace harmony {

int run_verify(const Config& config) {
  uint64_t node = config.node_id;
  {
    Db db = open_database(config.db_path);
    if (!node) node = node_id(db);
  }
  ConnectOptions connect = connect_options(config, node);
  connect.name = "harmonylite-verify";
  if (connect.urls.empty()) {
    auto running = running_replicator(config.db_path);
    if (!running || running->nats_url.empty()) {
      spdlog::error(
          "-verify needs NATS to reach the other nodes: [nats] urls is empty and no harmonylite "
          "replicator is running on {} (a running node provides its embedded NATS server)",
          config.db_path);
      return 2;
    }
    connect.urls = {running->nats_url};
  }
  auto conn = NatsConnection::connect_once(connect);
  AntiEntropyOptions o;
  o.db_path = config.db_path;
  o.node = node;
  o.subject_prefix = config.nats.subject_prefix + "-sync";
  o.max_repair_rows = config.anti_entropy.max_repair_rows_per_round;
  o.digest_check_rounds = 0;
  o.max_drift_ms = config.max_clock_drift_ms;
  if (!config.nats.cluster_key_file.empty())
    o.cluster_key = std::make_shared<const ClusterKey>(load_cluster_key(
        config.nats.cluster_key_file, config.nats.cluster_key_mode != "sign-only"));
  RoundReport report;
  {
    AntiEntropy ae(o, conn->get(), nullptr);
    ae.rebuild();  // a digest left wrong by edits behind the replicator's back is fixed first
    report = ae.round(true);
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
