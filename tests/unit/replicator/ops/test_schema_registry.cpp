// The cluster schema registry's entries and consistency report
// (replicator/ops/schema_registry.cpp), without NATS.
#include <catch2/catch.hpp>

#include "replicator/ops/schema_registry.hpp"

using namespace harmony;

TEST_CASE("schema registry entries and the consistency report", "[metrics][schema]") {
  auto entry = [](uint64_t node, std::map<std::string, std::string> tables,
                  std::map<std::string, std::string> previous = {}) {
    RegistryEntry e;
    e.node_id = node;
    e.tables = std::move(tables);
    e.previous = std::move(previous);
    e.version = "0.1.0";
    e.updated_at = "2025-01-01T00:00:00.000Z";
    return e;
  };
  const auto round =
      registry_entry_from_json(to_json(entry(4, {{"Books", "h1"}}, {{"Books", "h0"}})));
  CHECK(round.node_id == 4);
  CHECK(round.tables.at("Books") == "h1");
  CHECK(round.previous.at("Books") == "h0");
  const auto made = make_registry_entry(9, {{"Books", {"h2", {"h1", "h0"}}}}, 1700000000000);
  CHECK(made.tables.at("Books") == "h2");
  CHECK(made.previous.at("Books") == "h1");
  CHECK(made.updated_at == "2023-11-14T22:13:20.000Z");

  CHECK(check_consistency({entry(1, {{"Books", "h1"}}), entry(2, {{"books", "h1"}})}).consistent);
  CHECK_FALSE(check_consistency({}).consistent);
  auto r = check_consistency({entry(1, {{"Books", "h1"}}, {{"Books", "h0"}}),
                              entry(2, {{"Books", "h0"}, {"Authors", "a"}})});
  CHECK_FALSE(r.consistent);
  REQUIRE(r.findings.size() == 2);
  std::string all = r.findings[0] + "\n" + r.findings[1];
  CHECK(all.find("table Authors") != std::string::npos);
  CHECK(all.find("not replicated on node 1") != std::string::npos);
  CHECK(all.find("rolling upgrade in progress") != std::string::npos);
  CHECK(all.find("node 2 still has the schema node 1 had before") != std::string::npos);
}
