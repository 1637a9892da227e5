// harmonylite entry point: flags, config, then one of the modes (-version, -help, -cleanup,
// -save-snapshot, -schema-status, -schema-status-cluster, -held, -drop-held, -verify, -status,
// replication).
// Exit codes: 0 ok, 1 runtime error (message logged), 2 bad flag or config.
#include <cstdio>
#include <iostream>

#include <spdlog/spdlog.h>

#include "replicator/common/database.hpp"
#include "replicator/common/log.hpp"
#include "replicator/config/config.hpp"
#include "replicator/config/flags.hpp"
#include "replicator/config/version_info.hpp"
#include "replicator/nats/nats_client.hpp"
#include "replicator/node/replicator.hpp"
#include "replicator/ops/held_command.hpp"
#include "replicator/ops/schema_registry.hpp"
#include "replicator/ops/status_command.hpp"
#include "replicator/snapshot/snapshot_service.hpp"
#include "replicator/sync/verify_command.hpp"
#include "shared/error.hpp"

int main(int argc, char** argv) {
  using namespace harmony;
  configure_sqlite_library();
  CliOptions cli;
  try {
    cli = parse_flags(argc, argv);
  } catch (const UsageError& e) {
    std::fprintf(stderr, "%s\n\n%s", e.what(), usage_text().c_str());
    return 2;
  }
  if (cli.help) {
    std::fputs(usage_text().c_str(), stdout);
    return 0;
  }
  Config config;
  std::vector<std::string> warnings;
  try {
    if (!cli.config_path.empty()) config = load_config(cli.config_path, warnings);
  } catch (const ConfigError& e) {
    std::fprintf(stderr, "%s\n", e.what());
    return 2;
  }
  if (cli.version) {
    std::fputs(version_report(config.nats.server_binary).c_str(), stdout);
    return 0;
  }
  if (cli.node_id) config.node_id = *cli.node_id;
  setup_logging(config.logging.verbose, config.logging.format, config.node_id);
  for (const auto& w : warnings) spdlog::warn("{}", w);
  if (cli.config_path.empty())
    spdlog::warn("no -config given: using defaults (db_path {})", config.db_path);
  if (!cli.pprof.empty()) spdlog::warn("-pprof is accepted for compatibility and ignored");
  int rc = 1;
  try {
    if (cli.cleanup)
      rc = run_cleanup(config, cli.force);
    else if (cli.save_snapshot)
      rc = run_save_snapshot(config);
    else if (cli.schema_status)
      rc = run_schema_status(config);
    else if (cli.schema_status_cluster)
      rc = run_schema_status_cluster(config);
    else if (cli.held)
      rc = run_list_held(config);
    else if (!cli.drop_held.empty())
      rc = run_drop_held(config, cli.drop_held);
    else if (cli.verify)
      rc = run_verify(config);
    else if (cli.status)
      rc = run_status(config, cli.json);
    else
      rc = run_replicator(config, cli);
  } catch (const Error& e) {
    spdlog::error("{}", e.what());
    rc = 1;
  } catch (const std::exception& e) {
    spdlog::error("unexpected error: {}", e.what());
    rc = 1;
  }
  nats_library_close();
  return rc;
}
