// The soak verdict (tests/support/soak_check) with tombstone GC: a key absent everywhere with no
// row version is a delete pruned below the horizon only when a node's last write to it is a
// delete and no node's last write is an update newer than the horizon; otherwise it is lost.
#include <catch2/catch.hpp>

#include "shared/hlc.hpp"
#include "tests/support/soak_check.hpp"

using namespace harmony;
using namespace harmony::test;

namespace {

constexpr int64_t kHorizonMs = 1'000'000;

// Two nodes whose only key ("kv", "1") has no version and no row; node 1 deleted it at
// `delete_ms`, node 2's last write is an update at `update_ms`.
std::vector<SoakNodeState> nodes_after(int64_t delete_ms, int64_t update_ms) {
  std::vector<SoakNodeState> nodes(2);
  const SoakKey key{"kv", "1"};
  for (auto& n : nodes) n.tombstone_horizon = hlc_from_ms(kHorizonMs);
  nodes[0].events[key] = {{1, "n1w0t1s0", "D", delete_ms, 0}};
  nodes[1].events[key] = {{1, "n2w0t1s0", "U", update_ms, 0}};
  return nodes;
}

}  // namespace

TEST_CASE("soak verdict: a delete pruned below the horizon is not a lost row", "[soak]") {
  const auto r = check_soak(nodes_after(kHorizonMs - 500, kHorizonMs - 1000), {}, {});
  CHECK(r.violations.empty());
  CHECK(r.rows_lost == 0);
  CHECK(r.pruned_deletes == 1);
}

TEST_CASE("soak verdict: an update newer than the horizon cannot hide behind a pruned delete",
          "[soak]") {
  const auto r = check_soak(nodes_after(kHorizonMs - 500, kHorizonMs + 5000), {}, {});
  CHECK(r.rows_lost == 1);
  CHECK(r.pruned_deletes == 0);
}

TEST_CASE("soak verdict: without a horizon a key with no version is lost", "[soak]") {
  auto nodes = nodes_after(kHorizonMs - 500, kHorizonMs - 1000);
  for (auto& n : nodes) n.tombstone_horizon = 0;
  CHECK(check_soak(nodes, {}, {}).rows_lost == 1);
}

TEST_CASE("soak verdict: a tombstone one node has not pruned yet is not a divergence", "[soak]") {
  auto nodes = nodes_after(kHorizonMs - 500, kHorizonMs - 1000);
  // Node 2 still holds the delete's tombstone, below its horizon: prunable at its next pass.
  nodes[1].versions[{"kv", "1"}] = {hlc_from_ms(kHorizonMs - 500), 1, true, false};
  const auto r = check_soak(nodes, {}, {});
  CHECK(r.nodes_diverged == 0);
  CHECK(r.rows_lost == 0);
  // Above its horizon it is a real difference (node 1 lacks a delete node 2 has).
  nodes[1].tombstone_horizon = hlc_from_ms(kHorizonMs - 600);
  CHECK(check_soak(nodes, {}, {}).nodes_diverged == 1);
}
