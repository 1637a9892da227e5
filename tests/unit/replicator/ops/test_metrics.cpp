// The Prometheus text rendering (replicator/ops/metrics.cpp), parsed back line by line by a
// strict reader of the exposition format.
#include <catch2/catch.hpp>

#include <map>
#include <regex>
#include <set>
#include <sstream>

#include "replicator/ops/metrics.hpp"
#include "shared/clock.hpp"
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
  p.pause_reason = "sequences 11..12 are missing";
  p.held_rows = 3;
  p.held_since_ms = now - 8000;
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
  CHECK(after.value("harmonylite_schema_mismatch_paused") == 1);  // rows held
  CHECK(after.value("harmonylite_stream_held_rows", stream) == 3);
  CHECK(after.value("harmonylite_stream_held_oldest_seconds", stream) == Approx(10));
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

// Issue 18: how long this process holds the database's write lock (fold and apply), as a
// counter and as the share of the last complete interval, which is what makes a busy replica
// refuse the stock shell's writes ("database is locked").
TEST_CASE("the write-lock duty cycle is a counter and the share of the last interval",
          "[metrics][write_lock]") {
  ReplicatorStats stats;
  MetricsOptions o;
  constexpr int64_t kI = WriteLockMeter::kIntervalMs;
  const int64_t t0 = (wall_clock_ms() / kI + 1) * kI;  // the start of an interval
  Exposition none(render_metrics(stats, o, t0));
  CHECK(none.types.at("harmonylite_apply_write_lock_seconds_total") == "counter");
  CHECK(none.types.at("harmonylite_apply_write_lock_share") == "gauge");
  CHECK(none.value("harmonylite_apply_write_lock_seconds_total") == 0);
  CHECK(none.value("harmonylite_apply_write_lock_share") == 0);

  // 2.5 s held during one interval: a quarter of it, shown once that interval is complete.
  stats.write_lock.add(std::chrono::milliseconds(1500), t0 + 100);
  stats.write_lock.add(std::chrono::milliseconds(1000), t0 + kI - 1);
  Exposition during(render_metrics(stats, o, t0 + kI - 1));
  CHECK(during.value("harmonylite_apply_write_lock_seconds_total") == Approx(2.5));
  CHECK(during.value("harmonylite_apply_write_lock_share") == 0);  // nothing complete yet
  stats.write_lock.add(std::chrono::milliseconds(200), t0 + kI + 5);
  Exposition next(render_metrics(stats, o, t0 + kI + 10));
  CHECK(next.value("harmonylite_apply_write_lock_seconds_total") == Approx(2.7));
  CHECK(next.value("harmonylite_apply_write_lock_share") == Approx(0.25));
  // The interval after: 0.2 s of 10 s.
  Exposition later(render_metrics(stats, o, t0 + 2 * kI + 1));
  CHECK(later.value("harmonylite_apply_write_lock_share") == Approx(200.0 / kI));
  // A quiet replica: no transaction in the last complete interval reads 0, not an old share.
  Exposition quiet(render_metrics(stats, o, t0 + 5 * kI));
  CHECK(quiet.value("harmonylite_apply_write_lock_share") == 0);
  CHECK(quiet.value("harmonylite_apply_write_lock_seconds_total") == Approx(2.7));
}
