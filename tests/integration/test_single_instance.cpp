// One replicator per database file (issue 15 case 7). Two harmonylite processes on one file
// would each run their own nats-server and publisher on the same change logs, splitting the
// application's writes between two streams. The second must be refused at start with a message
// naming the file and the process that holds it, while the first keeps replicating.
#include <catch2/catch.hpp>

#include <climits>
#include <string>

#include <fmt/format.h>

#include "tests/support/cluster.hpp"
#include "tests/support/support.hpp"

using namespace harmony;
using namespace harmony::test;

TEST_CASE("single instance: a second harmonylite on the same database is refused at start",
          "[single_instance][startup]") {
  ClusterOptions o;
  o.nodes = 2;
  TestCluster c(o);
  for (int i = 0; i < 2; ++i) c.set_node_sections(i, "[snapshot]\nenabled = false\n");
  c.start_all();
  INFO(c.all_logs());
  REQUIRE(c.wait_ready(0));
  REQUIRE(c.wait_ready(1));

  // A second replicator on node 1's file, with everything else of its own (server store, no
  // endpoints), so that nothing but the shared database stands in its way.
  TempDir second("second");
  const std::string config = second.file("second.toml");
  write_file(config, fmt::format("db_path = \"{}\"\n[snapshot]\nenabled = false\n"
                                 "[nats]\nstore_dir = \"{}\"\n[health_check]\nenable = false\n",
                                 c.db(0), second.file("nats")));
  const auto started = std::chrono::steady_clock::now();
  const CommandResult r = run_command({harmonylite_path(), "-config", config}, 15s);
  const auto took = std::chrono::duration_cast<std::chrono::milliseconds>(
      std::chrono::steady_clock::now() - started);
  INFO("second instance (exit " << r.exit_code << ", " << took.count() << " ms): " << r.output);
  CHECK(r.exit_code != INT_MIN);  // it did not keep running
  CHECK(r.exit_code != 0);
  CHECK(took < 5s);
  CHECK(r.output.find(c.db(0)) != std::string::npos);
  CHECK(r.output.find(fmt::format("pid {}", c.process(0)->pid())) != std::string::npos);
  CHECK(r.output.find("already") != std::string::npos);

  // The first is unharmed: still running and replicating both ways.
  CHECK(c.running(0));
  c.exec(0, "INSERT INTO Books (id, title, author) VALUES (1, 'after', 'first')");
  c.exec(1, "INSERT INTO Books (id, title, author) VALUES (2, 'from', 'peer')");
  CHECK(c.wait_converged());
  CHECK(c.query_int(0, "SELECT count(*) FROM Books") == 2);
  CHECK(c.query_int(1, "SELECT count(*) FROM Books") == 2);
  CHECK(c.stop(0) == 0);
  CHECK(c.stop(1) == 0);
}

TEST_CASE("single instance: the lock of a killed replicator does not keep its successor out",
          "[single_instance][startup]") {
  ClusterOptions o;
  o.nodes = 1;
  TestCluster c(o);
  c.set_node_sections(0, "[snapshot]\nenabled = false\n");
  c.start(0);
  INFO(c.all_logs());
  REQUIRE(c.wait_ready(0));
  c.kill9(0);  // the kernel drops the flock with the process; the lock file stays behind
  c.start(0);
  CHECK(c.wait_ready(0));
  CHECK(c.stop(0) == 0);
}
