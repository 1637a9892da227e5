// `harmonylite -status` with real nodes: three nodes answer with their figures; with one stopped,
// the table lists the two live ones and the stopped one (known from the origins of the rows it
// wrote) as not answering, and the exit code says so.
#include <catch2/catch.hpp>

#include <cstdlib>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "tests/support/cluster.hpp"

using namespace harmony;
using namespace harmony::test;

namespace {

CommandResult status(const TestCluster& c, int i, bool json) {
  std::vector<std::string> argv{harmonylite_path(), "-config", c.config(i), "-status"};
  if (json) argv.push_back("-json");
  return run_command(argv, 30s);
}

// The output also carries any log line on stderr: the JSON is from the first '{' to the last '}'.
nlohmann::json parse_json_output(const std::string& output) {
  const auto from = output.find('{'), to = output.rfind('}');
  if (from == std::string::npos || to == std::string::npos) return nlohmann::json();
  return nlohmann::json::parse(output.substr(from, to - from + 1), nullptr, false);
}

const nlohmann::json* node_of(const nlohmann::json& j, uint64_t id) {
  for (const auto& n : j["nodes"])
    if (n["node"] == id) return &n;
  return nullptr;
}

}  // namespace

TEST_CASE("harmonylite -status shows every node, and a stopped one as not answering", "[status]") {
  ClusterOptions o;
  o.replicas = 3;  // the streams keep a quorum when node 3 stops
  o.extra_config = "[snapshot]\nenabled = false\n";
  TestCluster c(o);
  c.start_all();
  for (int i = 0; i < c.size(); ++i) REQUIRE(c.wait_ready(i));
  INFO(c.all_logs());
  for (int i = 0; i < c.size(); ++i)
    c.exec(i, fmt::format("INSERT INTO Books (title, author) VALUES ('t{}', 'a');", i));
  REQUIRE(c.wait_converged());

  auto all = status(c, 0, false);
  INFO(all.output);
  CHECK(all.exit_code == 0);
  CHECK(all.output.find("3 of 3 known node(s) answered; all healthy") != std::string::npos);
  // Every node is known (each wrote a row): the command does not wait out its 2 s window.
  const auto answered = parse_json_output(status(c, 0, true).output);
  CHECK(answered["ok"] == true);
  CHECK(answered["waited_ms"].get<int64_t>() < 1500);

  REQUIRE(c.stop(2) == 0);
  // Nodes 1 and 2 stay healthy (quorum 2 of 3); node 3 is known from the row it wrote.
  CommandResult table, js;
  nlohmann::json j;
  const bool settled = wait_until(
      [&] {
        js = status(c, 0, true);
        j = parse_json_output(js.output);
        if (j.is_discarded() || j.is_null()) return false;
        const auto* n1 = node_of(j, 1);
        const auto* n2 = node_of(j, 2);
        return n1 && n2 && (*n1)["health"] == "healthy" && (*n2)["health"] == "healthy";
      },
      30s, 100ms);
  INFO(js.output);
  REQUIRE(settled);
  CHECK(js.exit_code == 1);
  CHECK(j["ok"] == false);
  REQUIRE(j["nodes"].size() == 3);
  const auto& n1 = *node_of(j, 1);
  CHECK(n1["answered"] == true);
  CHECK(n1["address"].get<std::string>().rfind("nats://", 0) == 0);
  CHECK(n1["pending_rows"] == 0);
  CHECK(n1["held_rows"] == 0);
  REQUIRE(n1["streams"].size() == 1);
  CHECK(n1["streams"][0]["position"].get<uint64_t>() >= 2);  // the other two nodes' rows
  CHECK(n1["streams"][0]["lag_messages"] == 0);
  const auto& n3 = *node_of(j, 3);
  CHECK(n3["answered"] == false);
  CHECK(n3["health"] == "not answering");
  CHECK(n3["last_write_seen_ms"].get<int64_t>() > 0);

  table = status(c, 1, false);
  INFO(table.output);
  CHECK(table.exit_code == 1);
  CHECK(table.output.find("NOT ANSWERING") != std::string::npos);
  CHECK(table.output.find("2 of 3 known node(s) answered; NOT all healthy") != std::string::npos);
  if (const char* dir = std::getenv("HARMONY_OPS_SAMPLES"))
    write_file(std::string(dir) + "/status.txt", table.output);
}
