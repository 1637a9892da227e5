// Operations output without HTTP: the Prometheus text rendering (parsed back line by line),
// the health answer, bind-address parsing and the schema registry's consistency report.
#include <httplib.h>
#include <catch2/catch.hpp>

#include <map>
#include <regex>
#include <set>
#include <sstream>

#include "replicator/health.hpp"
#include "replicator/http_server.hpp"
#include "replicator/metrics.hpp"
#include "replicator/schema_registry.hpp"
#include "shared/error.hpp"
#include "tests/support/support.hpp"

using namespace harmony;

namespace {

struct Sample {
  std::string name;
  std::map<std::string, std::string> labels;
  double value = 0;
};

// A strict reader of the text exposition format: every sample line must parse, every sample
// must belong to a family announced by # HELP and # TYPE.
struct Exposition {
  std::vector<Sample> samples;
  std::map<std::string, std::string> types;  // family -> type

  explicit Exposition(const std::string& text) {
    static const std::regex help(R"(^# HELP ([a-zA-Z_:][a-zA-Z0-9_:]*) .+$)");
    static const std::regex type(
        R"(^# TYPE ([a-zA-Z_:][a-zA-Z0-9_:]*) (counter|gauge|histogram|summary|untyped)$)");
    static const std::regex sample(
        R"(^([a-zA-Z_:][a-zA-Z0-9_:]*)\{((?:[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\]|\\.)*",?)*)\} (\S+)$)");
    static const std::regex label(R"re(([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)")re");
    std::set<std::string> helped;
    std::istringstream in(text);
    for (std::string line; std::getline(in, line);) {
      std::smatch m;
      if (std::regex_match(line, m, help)) {
        helped.insert(m[1]);
      } else if (std::regex_match(line, m, type)) {
        INFO(line);
        REQUIRE(helped.count(m[1]));
        types[m[1]] = m[2];
      } else {
        INFO(line);
        REQUIRE(std::regex_match(line, m, sample));
        Sample s;
        s.name = m[1];
        const std::string labels = m[2];
        for (std::sregex_iterator it(labels.begin(), labels.end(), label), end; it != end; ++it)
          s.labels[(*it)[1]] = (*it)[2];
        const std::string v = m[3];
        s.value = v == "+Inf" ? INFINITY : v == "NaN" ? NAN : std::stod(v);
        std::string family = s.name;
        for (const char* suffix : {"_bucket", "_sum", "_count"})
          if (!types.count(family) && family.size() > strlen(suffix) && family.ends_with(suffix))
            family = family.substr(0, family.size() - strlen(suffix));
        REQUIRE(types.count(family));
        samples.push_back(std::move(s));
      }
    }
  }
  // The value of the one sample with this name and these labels (besides node_id).
  double value(const std::string& name, const std::map<std::string, std::string>& want = {}) {
    const Sample* found = nullptr;
    for (const auto& s : samples) {
      if (s.name != name) continue;
      bool match = true;
      for (const auto& [k, v] : want) match = match && s.labels.count(k) && s.labels.at(k) == v;
      if (!match) continue;
      INFO(name);
      REQUIRE(found == nullptr);
      found = &s;
    }
    INFO(name);
    REQUIRE(found != nullptr);
    return found->value;
  }
};

}  // namespace

TEST_CASE("metrics render as Prometheus text and follow the counters", "[metrics]") {
  ReplicatorStats stats;
  MetricsOptions o;
  o.node_id = 7;
  const int64_t now = wall_clock_ms();
  Exposition before(render_metrics(stats, o, now));
  CHECK(before.types.at("harmonylite_published") == "counter");
  CHECK(before.types.at("harmonylite_pending_publish") == "gauge");
  CHECK(before.types.at("harmonylite_publish_latency_seconds") == "histogram");
  CHECK(before.value("harmonylite_published") == 0);
  CHECK(before.value("harmonylite_schema_mismatch_paused") == 0);
  for (const auto& s : before.samples) CHECK(s.labels.at("node_id") == "7");

  stats.rows_published += 5;
  stats.batches_published += 2;
  stats.rows_applied += 11;
  stats.batches_applied += 3;
  stats.rows_skipped_older += 4;
  stats.rows_dead_lettered += 1;
  stats.pending_rows = 9;
  stats.publish_latency.observe(0.003);
  stats.publish_latency.observe(0.2);
  stats.publish_latency.observe(99);  // beyond the last bucket
  stats.apply_latency.observe(0.0005);
  stats.replication_delay.observe(0.04);
  stats.last_snapshot_ms = now - 30000;
  stats.last_snapshot_bytes = 4096;
  stats.last_snapshot_duration_ms = 1500;
  StreamProgress p;
  p.position = 10;
  p.last_seq = 15;
  p.paused = true;
  p.pause_reason = "schema mismatch: table Books ...";
  stats.set_stream("harmonylite-changes-1", p);
  stats.set_stream("odd\"name\\", StreamProgress{});
  Exposition after(render_metrics(stats, o, now + 2000));
  CHECK(after.value("harmonylite_published") == 5);
  CHECK(after.value("harmonylite_batches_published_total") == 2);
  CHECK(after.value("harmonylite_rows_applied_total") == 11);
  CHECK(after.value("harmonylite_batches_applied_total") == 3);
  CHECK(after.value("harmonylite_rows_skipped_older_total") == 4);
  CHECK(after.value("harmonylite_rows_dead_lettered_total") == 1);
  CHECK(after.value("harmonylite_pending_publish") == 9);
  CHECK(after.value("harmonylite_publish_latency_seconds_count") == 3);
  CHECK(after.value("harmonylite_publish_latency_seconds_sum") == Approx(99.203));
  CHECK(after.value("harmonylite_publish_latency_seconds_bucket", {{"le", "0.005"}}) == 1);
  CHECK(after.value("harmonylite_publish_latency_seconds_bucket", {{"le", "0.25"}}) == 2);
  CHECK(after.value("harmonylite_publish_latency_seconds_bucket", {{"le", "5"}}) == 2);
  CHECK(after.value("harmonylite_publish_latency_seconds_bucket", {{"le", "+Inf"}}) == 3);
  CHECK(after.value("harmonylite_apply_latency_seconds_count") == 1);
  CHECK(after.value("harmonylite_replication_delay_seconds_bucket", {{"le", "0.05"}}) == 1);
  const std::map<std::string, std::string> stream{{"stream", "harmonylite-changes-1"}};
  CHECK(after.value("harmonylite_stream_position", stream) == 10);
  CHECK(after.value("harmonylite_stream_last_sequence", stream) == 15);
  CHECK(after.value("harmonylite_stream_lag_messages", stream) == 5);
  CHECK(after.value("harmonylite_stream_lag_seconds", stream) >= 1.9);
  CHECK(after.value("harmonylite_stream_paused", stream) == 1);
  CHECK(after.value("harmonylite_schema_mismatch_paused") == 1);
  CHECK(after.value("harmonylite_stream_position", {{"stream", "odd\\\"name\\\\"}}) == 0);
  CHECK(after.value("harmonylite_snapshot_age_seconds") == Approx(32));
  CHECK(after.value("harmonylite_snapshot_size_bytes") == 4096);
  CHECK(after.value("harmonylite_snapshot_duration_seconds") == Approx(1.5));
  CHECK(after.value("harmonylite_build_info") == 1);

  // Buckets are cumulative and end with +Inf == _count, for every histogram.
  for (const auto& [family, type] : after.types) {
    if (type != "histogram") continue;
    double last = 0;
    for (const auto& s : after.samples)
      if (s.name == family + "_bucket") {
        CHECK(s.value >= last);
        last = s.value;
      }
    CHECK(last == after.value(family + "_count"));
  }
}

TEST_CASE("metric names take namespace and subsystem from the config", "[metrics]") {
  MetricsOptions o;
  CHECK(metric_name(o, "published") == "harmonylite_published");
  o.subsystem = "books";
  CHECK(metric_name(o, "published") == "harmonylite_books_published");
  o.namespace_ = "";
  CHECK(metric_name(o, "published") == "books_published");
  ReplicatorStats stats;
  o.namespace_ = "acme";
  Exposition e(render_metrics(stats, o, wall_clock_ms()));
  for (const auto& s : e.samples) CHECK(s.name.rfind("acme_books_", 0) == 0);
  CHECK(escape_label_value("a\"b\\c\nd") == "a\\\"b\\\\c\\nd");
}

TEST_CASE("health answer: 200 only with database, NATS and capture, HarmonyLite's fields",
          "[metrics][health]") {
  ReplicatorStats stats;
  DbProbe probe{true, true, 2};
  stats.nats_connected = true;
  const int64_t now = wall_clock_ms();
  auto a = health_report(stats, probe, 3, true, now + 5000);
  CHECK(a.healthy);
  const auto& j = a.body;
  CHECK(j["status"] == "healthy");
  CHECK(j["node_id"] == 3);
  CHECK(j["uptime_seconds"].get<int64_t>() >= 4);
  CHECK(j["db_connected"] == true);
  CHECK(j["nats_connected"] == true);
  CHECK(j["cdc_installed"] == true);
  CHECK(j["tables_tracked"] == 2);
  CHECK(j["last_replicated_event_timestamp"].is_null());  // never: null, not year 1
  CHECK(j["last_published_event_timestamp"].is_null());
  CHECK(j["version"].is_string());
  for (const char* k : {"pending_changes", "dead_letters", "streams", "schema", "nats_server"})
    CHECK(j.contains(k));

  stats.last_published_ms = 1700000000123;
  StreamProgress p;
  p.position = 3;
  p.last_seq = 5;
  stats.set_stream("s-1", p);
  stats.set_schema({{"Books", {"aaa", {"bbb"}}}});
  stats.set_nats_server({true, 4242, 1, "nats://127.0.0.1:4222"});
  a = health_report(stats, probe, 3, true, now);
  CHECK(a.body["last_published_event_timestamp"] == "2023-11-14T22:13:20.123Z");
  CHECK(a.body["streams"]["s-1"]["lag_messages"] == 2);
  CHECK(a.body["schema"]["tables"]["Books"]["hash"] == "aaa");
  CHECK(a.body["schema"]["tables"]["Books"]["previous"] == "bbb");
  CHECK(a.body["schema"]["status"] == "ok");
  CHECK(a.body["nats_server"]["pid"] == 4242);
  CHECK(a.body["nats_server"]["restarts"] == 1);

  stats.nats_connected = false;
  a = health_report(stats, probe, 3, true, now);
  CHECK_FALSE(a.healthy);
  CHECK(a.body["status"] == "unhealthy");
  stats.nats_connected = true;
  CHECK_FALSE(health_report(stats, DbProbe{true, false, 0}, 3, true, now).healthy);
  CHECK_FALSE(health_report(stats, DbProbe{false, false, 0}, 3, true, now).healthy);
  // Not detailed: the status only.
  a = health_report(stats, probe, 3, false, now);
  CHECK(a.body.size() == 1);
  CHECK(a.body["status"] == "healthy");
}

TEST_CASE("bind addresses parse like HarmonyLite's, bad ones name the key", "[metrics]") {
  CHECK(parse_bind_address(":3010", "k") == std::pair<std::string, int>{"0.0.0.0", 3010});
  CHECK(parse_bind_address("127.0.0.1:8090", "k") ==
        std::pair<std::string, int>{"127.0.0.1", 8090});
  CHECK(parse_bind_address("[::1]:80", "k") == std::pair<std::string, int>{"::1", 80});
  CHECK(parse_bind_address("localhost:0", "k").second == 0);
  for (const char* bad : {"8090", "host:", "host:x", "host:70000", "host:12ab"}) {
    INFO(bad);
    try {
      parse_bind_address(bad, "[health_check] bind");
      FAIL("accepted");
    } catch (const Error& e) {
      CHECK(std::string(e.what()).find("[health_check] bind") != std::string::npos);
    }
  }
}

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

TEST_CASE("the HTTP server answers on its paths and names the key when it cannot bind",
          "[metrics]") {
  const int port = harmony::test::free_port();
  const std::string bind = "127.0.0.1:" + std::to_string(port);
  HttpServer server(bind, "[health_check] bind");
  server.handle("/health", [] { return HttpResponse{503, "application/json", "{}"}; });
  server.handle("/metrics", [] { return HttpResponse{200, "text/plain", "x 1\n"}; });
  server.start();
  CHECK(server.port() == port);
  httplib::Client cli("127.0.0.1", port);
  auto r = cli.Get("/health");
  REQUIRE(r);
  CHECK(r->status == 503);
  CHECK(r->body == "{}");
  CHECK(r->get_header_value("Content-Type") == "application/json");
  r = cli.Post("/health", "", "text/plain");  // any method, as HarmonyLite
  REQUIRE(r);
  CHECK(r->status == 503);
  r = cli.Get("/metrics");
  REQUIRE(r);
  CHECK(r->body == "x 1\n");
  r = cli.Get("/other");
  REQUIRE(r);
  CHECK(r->status == 404);

  HttpServer clash(bind, "[prometheus] bind");
  clash.handle("/metrics", [] { return HttpResponse{}; });
  try {
    clash.start();
    FAIL("bound a port in use");
  } catch (const Error& e) {
    CHECK(std::string(e.what()).find("[prometheus] bind") != std::string::npos);
  }
  server.stop();
  CHECK_FALSE(cli.Get("/health"));
}
