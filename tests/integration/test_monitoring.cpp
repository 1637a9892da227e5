// The monitoring kit (examples/monitoring/) against a live node: every metric name that the
// Grafana dashboard's panel queries and the Prometheus alert rules use must be one the
// replicator really exports, as seen in a /metrics scrape of a real harmonylite process.
#include <catch2/catch.hpp>

#include <regex>
#include <set>
#include <sstream>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "tests/support/cluster.hpp"
#include "tests/support/http.hpp"

using namespace harmony;
using namespace harmony::test;

namespace {

// The metric names a PromQL expression reads: identifiers left after removing label matchers
// ({...}), range and offset selectors ([5m]), strings, the label lists of by/without/on/
// ignoring/group_left/group_right (...), function calls (name followed by "("), keywords and
// numbers.
std::set<std::string> promql_metric_names(std::string expr) {
  static const std::regex strings(R"("([^"\\]|\\.)*")");
  static const std::regex matchers(R"(\{[^}]*\})");
  static const std::regex ranges(R"(\[[^\]]*\])");
  static const std::regex label_lists(
      R"(\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\))");
  static const std::regex calls(R"(\b[a-zA-Z_][a-zA-Z0-9_]*\s*\()");
  static const std::regex ident(R"([a-zA-Z_:][a-zA-Z0-9_:]*)");
  static const std::set<std::string> keywords{
      "and", "or",       "unless",     "bool",        "offset", "by", "without",
      "on",  "ignoring", "group_left", "group_right", "inf",    "nan"};
  expr = std::regex_replace(expr, strings, " ");
  expr = std::regex_replace(expr, matchers, " ");
  expr = std::regex_replace(expr, ranges, " ");
  expr = std::regex_replace(expr, label_lists, " ");
  expr = std::regex_replace(expr, calls, " (");
  std::set<std::string> out;
  for (std::sregex_iterator it(expr.begin(), expr.end(), ident), end; it != end; ++it) {
    const std::string name = it->str();
    if (!keywords.count(name)) out.insert(name);
  }
  return out;
}

// Every name a scrape offers: sample names, and the families announced by "# TYPE" (a family
// can be present without samples yet, e.g. clock_skew_seconds before any origin was seen),
// with a histogram's _bucket, _sum and _count.
std::set<std::string> scraped_names(const std::string& text) {
  std::set<std::string> out;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) {
    if (line.rfind("# TYPE ", 0) == 0) {
      std::istringstream words(line.substr(7));
      std::string name, type;
      words >> name >> type;
      out.insert(name);
      if (type == "histogram")
        for (const char* s : {"_bucket", "_sum", "_count"}) out.insert(name + s);
    } else if (!line.empty() && line[0] != '#') {
      out.insert(line.substr(0, line.find_first_of("{ ")));
    }
  }
  return out;
}

// The expressions of the dashboard's panels (targets[].expr) and of the alert rules' "expr:"
// lines (one line each in alerts.yml: the test says so if one is not).
std::vector<std::string> kit_expressions() {
  std::vector<std::string> exprs;
  const auto dash = nlohmann::json::parse(
      read_file(source_dir() + "/examples/monitoring/grafana-dashboard.json"));
  for (const auto& panel : dash.at("panels"))
    for (const auto& target : panel.value("targets", nlohmann::json::array()))
      exprs.push_back(target.at("expr").get<std::string>());
  std::istringstream rules(read_file(source_dir() + "/examples/monitoring/alerts.yml"));
  for (std::string line; std::getline(rules, line);) {
    const auto at = line.find("expr:");
    if (at == std::string::npos || line.find_first_not_of(' ') != at) continue;
    const auto start = line.find_first_not_of(' ', at + 5);
    INFO(line);
    // Block scalars (| or >) would put the expression on the following lines.
    REQUIRE((start != std::string::npos && line[start] != '|' && line[start] != '>'));
    exprs.push_back(line.substr(start));
  }
  return exprs;
}

}  // namespace

TEST_CASE("promql_metric_names strips functions, labels and ranges", "[monitoring]") {
  CHECK(
      promql_metric_names(
          R"(histogram_quantile(0.99, sum by (node_id, le) (rate(harmonylite_x_bucket{node_id=~"$node"}[5m]))))") ==
      std::set<std::string>{"harmonylite_x_bucket"});
  CHECK(promql_metric_names("max by (instance) (a_b) > on (instance) group_left() (0.5 * c) or "
                            "d == 0 and increase(e[1h]) > 32 * 1024") ==
        std::set<std::string>{"a_b", "c", "d", "e"});
}

TEST_CASE("monitoring kit uses only metric names a live node exports", "[monitoring]") {
  TestCluster c(ClusterOptions{.nodes = 1});
  const int port = free_port();
  c.set_node_sections(0, fmt::format("[prometheus]\nenable = true\nbind = \"127.0.0.1:{}\"\n"
                                     "[snapshot]\nenabled = false\n",
                                     port));
  c.start(0);
  REQUIRE(c.wait_ready(0));
  INFO(c.all_logs());
  HttpResult r;
  REQUIRE(wait_until(
      [&] {
        r = http_get(port, "/metrics");
        return r.status == 200;
      },
      20s, 100ms));
  const auto scraped = scraped_names(r.body);
  REQUIRE(scraped.size() > 50);

  const auto exprs = kit_expressions();
  CHECK(exprs.size() >= 40);  // 29 panel queries and 13 rules: both files were read
  std::set<std::string> used, missing;
  for (const auto& e : exprs)
    for (const auto& name : promql_metric_names(e)) {
      used.insert(name);
      if (!scraped.count(name)) missing.insert(name);
    }
  INFO("names used by the kit: " << used.size());
  for (const auto& name : missing) UNSCOPED_INFO("not exported: " << name);
  CHECK(missing.empty());
  // The areas the kit promises each have a metric.
  for (const char* needed :
       {"harmonylite_stream_lag_seconds", "harmonylite_stream_held_rows",
        "harmonylite_stream_paused", "harmonylite_publish_failures_total",
        "harmonylite_clock_skew_seconds", "harmonylite_rows_dead_lettered_total",
        "harmonylite_anti_entropy_rows_repaired_total"})
    CHECK(used.count(needed) == 1);
}
