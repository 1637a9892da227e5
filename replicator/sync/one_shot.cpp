// See one_shot.hpp.
#include "replicator/sync/one_shot.hpp"

#include <spdlog/spdlog.h>

#include "replicator/common/database.hpp"
#include "replicator/common/runtime_info.hpp"
#include "replicator/nats/nats_config.hpp"
#include "shared/meta_store.hpp"

namespace harmony {

std::optional<OneShotSync> connect_one_shot(const Config& config, const std::string& flag,
                                            const std::string& needs_nats_for) {
  OneShotSync out;
  out.node = config.node_id;
  if (!out.node) {
    Db db = open_database(config.db_path);
    out.node = node_id(db);
  }
  ConnectOptions connect = connect_options(config, out.node);
  connect.name = "harmonylite" + flag;
  if (connect.urls.empty()) {
    auto running = running_replicator(config.db_path);
    if (!running || running->nats_url.empty()) {
      spdlog::error(
          "{} needs NATS to reach {}: [nats] urls is empty and no harmonylite replicator is "
          "running on {} (a running node provides its embedded NATS server)",
          flag, needs_nats_for, config.db_path);
      return std::nullopt;
    }
    connect.urls = {running->nats_url};
  }
  out.conn = NatsConnection::connect_once(connect);
  out.options.db_path = config.db_path;
  out.options.node = out.node;
  out.options.subject_prefix = config.nats.subject_prefix + "-sync";
  if (!config.nats.cluster_key_file.empty())
    out.options.cluster_key = std::make_shared<const ClusterKey>(load_cluster_key(
        config.nats.cluster_key_file, config.nats.cluster_key_mode != "sign-only"));
  return out;
}

}  // namespace harmony
