// spdlog configuration (see log.hpp). The JSON sink escapes messages with nlohmann::json so a
// log line is always one valid JSON object, whatever the message contains.
#include "replicator/common/log.hpp"

#include <cstdio>
#include <mutex>

#include <fmt/chrono.h>
#include <spdlog/sinks/base_sink.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <nlohmann/json.hpp>

namespace harmony {
namespace {

class JsonSink : public spdlog::sinks::base_sink<std::mutex> {
 public:
  explicit JsonSink(uint64_t node) : node_(node) {}

 protected:
  void sink_it_(const spdlog::details::log_msg& msg) override {
    nlohmann::json j;
    auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(msg.time.time_since_epoch());
    j["time"] =
        fmt::format("{:%Y-%m-%dT%H:%M:%S}.{:03d}Z",
                    fmt::gmtime(std::chrono::system_clock::to_time_t(msg.time)), ms.count() % 1000);
    j["level"] = spdlog::level::to_string_view(msg.level).data();
    if (node_) j["node_id"] = node_;
    j["msg"] = std::string(msg.payload.data(), msg.payload.size());
    std::string line = j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
    line.push_back('\n');
    std::fwrite(line.data(), 1, line.size(), stderr);
  }
  void flush_() override { std::fflush(stderr); }

 private:
  uint64_t node_;
};

}  // namespace

void setup_logging(bool verbose, const std::string& format, uint64_t node_id) {
  std::shared_ptr<spdlog::logger> logger;
  if (format == "json") {
    logger = std::make_shared<spdlog::logger>("harmonylite", std::make_shared<JsonSink>(node_id));
  } else {
    auto sink = std::make_shared<spdlog::sinks::stderr_color_sink_mt>();
    std::string node = node_id ? fmt::format(" node={}", node_id) : "";
    sink->set_pattern("%Y-%m-%dT%H:%M:%S.%e %^%-5l%$" + node + " %v");
    logger = std::make_shared<spdlog::logger>("harmonylite", sink);
  }
  logger->set_level(verbose ? spdlog::level::debug : spdlog::level::info);
  logger->flush_on(spdlog::level::info);
  spdlog::set_default_logger(logger);
}

}  // namespace harmony
