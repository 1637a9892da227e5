// The short randomized convergence run of the default suite ([soak]): three real harmonylite
// processes on loopback with an embedded nats-server cluster and R3 streams, two writers per node
// (a plain connection and one that loaded libharmony, plus sqlite3 shell transactions), a few
// hundred random transactions on overlapping keys, one kill -9 of a replicator and one of a
// nats-server; then every node must hold the same content and no committed write may be lost.
// A second case (about 45 s) rolls schema changes and restarts a node with a skewed clock.
// The long version with every fault is build/harmony_soak (scripts/soak.sh).
#include <catch2/catch.hpp>

#include <cstdlib>
#include <sstream>

#include "tests/support/soak.hpp"

using namespace harmony::test;

TEST_CASE(
    "random writes on three nodes converge without loss through kill -9 of a replicator "
    "and of a nats-server",
    "[soak]") {
  SoakOptions o;
  // A failure prints the seed; HARMONY_SOAK_SEED=<seed> repeats that schedule and those writes.
  const char* seed = std::getenv("HARMONY_SOAK_SEED");
  o.seed = seed ? std::strtoull(seed, nullptr, 10) : 20261128;
  o.nodes = 3;
  o.duration = std::chrono::seconds(30);
  o.workload.writers_per_node = 2;
  o.workload.think_min_ms = 100;
  o.workload.think_max_ms = 300;
  o.fault_sequence = {FaultKind::KillReplicator, FaultKind::KillNats};
  o.fault_gap_min = std::chrono::seconds(4);
  o.fault_gap_max = std::chrono::seconds(7);
  o.replicator_down_min = std::chrono::seconds(1);
  o.replicator_down_max = std::chrono::seconds(3);
  o.converge_timeout = std::chrono::seconds(60);
  std::ostringstream timeline;
  o.out = &timeline;

  SoakReport r = run_soak(o);
  INFO(timeline.str() << "\n" << r.summary());
  CHECK(r.faults[FaultKind::KillReplicator] == 1);
  CHECK(r.faults[FaultKind::KillNats] == 1);
  CHECK(r.committed > 100);
  CHECK(r.shell_runs > 0);
  CHECK(r.app_errors == 0);
  CHECK(r.problems.empty());
  REQUIRE(r.converged);
  CHECK(r.check.nodes_diverged == 0);
  CHECK(r.check.rows_lost == 0);
  CHECK(r.check.violations.empty());
  CHECK(r.check.dead_letters == 0);
  CHECK(r.passed());
}

TEST_CASE(
    "random writes on three nodes converge without loss through rolling schema changes and a "
    "replicator with a skewed clock",
    "[soak]") {
  SoakOptions o;
  const char* seed = std::getenv("HARMONY_SOAK_SEED");
  o.seed = seed ? std::strtoull(seed, nullptr, 10) : 20261203;
  o.nodes = 3;
  o.duration = std::chrono::seconds(30);
  o.workload.writers_per_node = 2;
  o.workload.think_min_ms = 100;
  o.workload.think_max_ms = 300;
  o.fault_sequence = {FaultKind::SchemaChange, FaultKind::ClockSkew, FaultKind::SchemaChange};
  o.fault_gap_min = std::chrono::seconds(2);
  o.fault_gap_max = std::chrono::seconds(4);
  o.schema_gap_min = std::chrono::milliseconds(0);
  o.schema_gap_max = std::chrono::seconds(3);
  // Behind by 5 min: the node holds every row of the others until its clock is right again (a
  // skew ahead beyond the drift bound would need minutes to become plausible: the long run's).
  o.skews_ms = {-300'000};
  o.skew_min = std::chrono::seconds(2);
  o.skew_max = std::chrono::seconds(4);
  o.converge_timeout = std::chrono::seconds(60);
  std::ostringstream timeline;
  o.out = &timeline;

  SoakReport r = run_soak(o);
  INFO(timeline.str() << "\n" << r.summary());
  CHECK(r.faults[FaultKind::SchemaChange] == 2);
  CHECK(r.faults[FaultKind::ClockSkew] == 1);
  CHECK(r.committed > 100);
  CHECK(r.app_errors == 0);
  CHECK(r.problems.empty());
  REQUIRE(r.converged);
  CHECK(r.check.nodes_diverged == 0);
  CHECK(r.check.rows_lost == 0);
  CHECK(r.check.violations.empty());
  CHECK(r.check.dead_letters == 0);
  CHECK(r.check.held == 0);
  CHECK(r.passed());
}
