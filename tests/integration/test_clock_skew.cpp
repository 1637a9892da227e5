// Clock skew between nodes (issue 15 case 6), with three real nodes: node 3's clock runs 2 min
// ahead, the drift bound is the default minute. Its rows are held by the others (not applied,
// not dropped) and do not drag their clocks; every node exports the skew and says so in /health;
// once node 3's clock is fixed its stored clock comes back within the bound, and once the others'
// clocks reach the held rows they apply and the cluster converges.
//
// The skew uses the test hook HARMONY_TEST_CLOCK_OFFSET_MS (shared/clock.hpp) for node 3's
// replicator, and node 3's stored clock (__harmony_meta 'hlc') set 2 min ahead, as a host whose
// clock ran ahead leaves it. The application's own connection (the sqlite3 shell) keeps the
// host's clock: the versions node 3 issues come from its stored clock.
#include <fmt/format.h>
#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <cmath>
#include <map>
#include <sstream>
#include <string>

#include "shared/clock.hpp"
#include "shared/hlc.hpp"
#include "tests/support/cluster.hpp"
#include "tests/support/http.hpp"
#include "tests/support/support.hpp"

using namespace harmony;
using namespace harmony::test;
using namespace std::chrono_literals;

namespace {

constexpr int64_t kSkewMs = 120'000;  // node 3's clock: 2 min ahead
const std::map<std::string, std::string> kTwoMinutesAhead{
    {"HARMONY_TEST_CLOCK_OFFSET_MS", std::to_string(kSkewMs)}};

nlohmann::json health(int port) {
  const HttpResult r = http_get(port, "/health");
  INFO(r.body);
  REQUIRE(r.status != 0);
  return nlohmann::json::parse(r.body);
}

// The value of the sample `name` whose labels contain `label`; NaN when absent.
double metric(int port, const std::string& name, const std::string& label) {
  const HttpResult r = http_get(port, "/metrics");
  std::istringstream in(r.body);
  for (std::string line; std::getline(in, line);) {
    if (line.rfind(name + "{", 0) != 0) continue;
    const auto close = line.rfind('}');
    if (line.substr(0, close).find(label) == std::string::npos) continue;
    return std::stod(line.substr(close + 2));
  }
  return std::nan("");
}

bool has_warning(const nlohmann::json& h, const std::string& part) {
  if (!h.contains("warnings")) return false;
  for (const auto& w : h["warnings"])
    if (w.get<std::string>().find(part) != std::string::npos) return true;
  return false;
}

// How far node i's stored clock is ahead of the host's clock (this test process has no offset).
int64_t stored_clock_ahead_ms(TestCluster& c, int i) {
  return hlc_physical_ms(c.query_int(i, "SELECT value FROM __harmony_meta WHERE key = 'hlc'")) -
         wall_clock_ms();
}

int64_t held(TestCluster& c, int i) {
  return c.query_int(i, "SELECT count(*) FROM __harmony_held");
}

int64_t has_book(TestCluster& c, int i, int id) {
  return c.query_int(i, fmt::format("SELECT count(*) FROM Books WHERE id = {}", id));
}

}  // namespace

TEST_CASE("a node 2 min ahead: its rows are held, the skew is shown, no clock is dragged",
          "[clock]") {
  TestCluster c;
  std::vector<int> metrics_port;
  for (int i = 0; i < c.size(); ++i) {
    metrics_port.push_back(free_port());
    c.set_node_sections(i, fmt::format("[prometheus]\nenable = true\nbind = \"127.0.0.1:{}\"\n"
                                       "[snapshot]\nenabled = false\n",
                                       metrics_port.back()));
  }
  // Node 3's stored clock, left 2 min ahead by its clock.
  c.exec(2, fmt::format("CREATE TABLE IF NOT EXISTS __harmony_meta (key TEXT PRIMARY KEY, value) "
                        "WITHOUT ROWID; INSERT INTO __harmony_meta VALUES ('hlc', {})",
                        hlc_from_ms(wall_clock_ms() + kSkewMs)));
  c.start(0);
  c.start(1);
  c.start(2, {}, kTwoMinutesAhead);
  for (int i = 0; i < c.size(); ++i) REQUIRE(c.wait_ready(i));
  INFO(c.all_logs());

  // A row from node 3 is held by nodes 1 and 2 (2 min > the 60 s bound), never dropped.
  c.exec(2, "INSERT INTO Books VALUES (100, 'from the future', 'n3', 2025)");
  const bool held_on_both = wait_until([&] { return held(c, 0) == 1 && held(c, 1) == 1; }, 20s);
  INFO("node 1: held " << held(c, 0) << ", row applied " << has_book(c, 0, 100)
                       << ", its stored clock " << stored_clock_ahead_ms(c, 0) << " ms ahead");
  CHECK(held_on_both);
  CHECK(has_book(c, 0, 100) == 0);
  CHECK(has_book(c, 1, 100) == 0);
  CHECK(c.query_int(0, "SELECT count(*) FROM __harmony_dead_letters") == 0);
  // Not dragged: nodes 1 and 2 issue nothing beyond their clock + bound.
  CHECK(stored_clock_ahead_ms(c, 0) <= kDefaultMaxClockDriftMs);
  CHECK(stored_clock_ahead_ms(c, 1) <= kDefaultMaxClockDriftMs);

  // A row from node 1 reaches node 3 (behind is plausible) and gives node 3 its sample.
  c.exec(0, "INSERT INTO Books VALUES (1, 'now', 'n1', 2025)");
  REQUIRE(wait_until([&] { return has_book(c, 2, 1) == 1; }, 20s));

  // The skew is measured and exported, on both sides, and /health says so.
  double seen_by_1 = 0, seen_by_3 = 0;
  CHECK(wait_until(
      [&] {
        seen_by_1 = metric(metrics_port[0], "harmonylite_clock_skew_seconds", "node=\"3\"");
        seen_by_3 = metric(metrics_port[2], "harmonylite_clock_skew_seconds", "node=\"1\"");
        return seen_by_1 > 100 && seen_by_3 < -100;
      },
      10s));
  INFO("clock_skew_seconds: node 3 seen by node 1 " << seen_by_1 << ", node 1 seen by node 3 "
                                                    << seen_by_3);
  CHECK(seen_by_1 <= kSkewMs / 1000 + 5);
  CHECK(metric(metrics_port[0], "harmonylite_max_clock_drift_seconds", "") == 60);
  const auto h1 = health(c.health_port(0));
  CHECK(h1["status"] == "degraded");
  CHECK(has_warning(h1, "clock skew: node 3's clock is"));
  CHECK(h1["clock"]["skew_seconds"]["3"].get<double>() > 100);
  CHECK(has_warning(health(c.health_port(2)), "clock skew: rows from node 1 arrive"));
  CHECK(c.log(0).find("clock skew: node 3's clock is") != std::string::npos);

  // Node 3's clock is fixed: its stored clock comes back within the bound, loudly, and its new
  // rows apply on the others at once.
  REQUIRE(c.stop(2) == 0);
  c.start(2);
  REQUIRE(c.wait_ready(2));
  c.exec(2, "INSERT INTO Books VALUES (101, 'fixed', 'n3', 2025)");
  CHECK(wait_until([&] { return has_book(c, 0, 101) == 1 && has_book(c, 1, 101) == 1; }, 20s));
  CHECK(stored_clock_ahead_ms(c, 2) <= kDefaultMaxClockDriftMs);
  CHECK(c.log(2).find("clock: the stored clock") != std::string::npos);
  CHECK(metric(metrics_port[2], "harmonylite_clock_lowered_total", "") >= 1);
  CHECK(has_warning(health(c.health_port(2)), "clock: the stored clock was found"));
  CHECK(has_book(c, 0, 100) == 0);  // row 100 is still 2 min ahead: still held

  // Time passes (nodes 1 and 2 restart 65 s later, as the hook plays it): row 100 is within the
  // bound now and the held row applies.
  for (int i : {0, 1}) {
    REQUIRE(c.stop(i) == 0);
    c.start(i, {}, {{"HARMONY_TEST_CLOCK_OFFSET_MS", "65000"}});
  }
  for (int i : {0, 1}) REQUIRE(c.wait_ready(i));
  CHECK(wait_until([&] { return has_book(c, 0, 100) == 1 && has_book(c, 1, 100) == 1; }, 20s));
  CHECK(wait_until([&] { return held(c, 0) == 0 && held(c, 1) == 0; }, 15s));
  CHECK(c.wait_converged());
}
