// Runtime information of a running replicator (see runtime_info.hpp).
#include "replicator/common/runtime_info.hpp"

#include <signal.h>
#include <unistd.h>

#include <filesystem>
#include <string_view>

#include <fmt/format.h>

#include "shared/files.hpp"
#include "shared/meta_store.hpp"

namespace harmony {

namespace {

constexpr std::string_view kExecutableName = "harmonylite";
constexpr const char* kPidKey = "runtime_pid";
constexpr const char* kNatsUrlKey = "runtime_nats_url";

// The file name of the program `pid` runs: its executable, or argv[0] when /proc/<pid>/exe cannot
// be read (another user's process).
std::string program_name(int64_t pid) {
  const std::string proc = fmt::format("/proc/{}", pid);
  std::error_code ec;
  const auto exe = std::filesystem::read_symlink(proc + "/exe", ec);
  if (!ec) {
    std::string name = exe.filename().string();
    // A binary replaced while it runs (an upgrade, a rebuild) reads as "harmonylite (deleted)".
    constexpr std::string_view kDeleted = " (deleted)";
    if (name.ends_with(kDeleted)) name.resize(name.size() - kDeleted.size());
    return name;
  }
  const std::string cmdline = read_whole_file(proc + "/cmdline").value_or("");
  const std::string argv0 = cmdline.substr(0, cmdline.find('\0'));
  return std::filesystem::path(argv0).filename().string();
}

// A live process running the harmonylite executable. Only the program counts, not its
// arguments: after kill -9 the recorded pid may be reused by, say, `sqlite3 harmonylite-1.db`.
bool pid_is_harmonylite(int64_t pid) {
  if (pid <= 0 || kill(static_cast<pid_t>(pid), 0) != 0) return false;
  return program_name(pid) == kExecutableName;
}

}  // namespace

void record_runtime_info(Db& db, const std::string& nats_url) {
  meta_set(db, kPidKey, static_cast<int64_t>(getpid()));
  meta_set(db, kNatsUrlKey, Text{nats_url});
}

void clear_runtime_info(Db& db) {
  meta_set(db, kPidKey, int64_t{0});
}

std::optional<RuntimeInfo> running_replicator(const std::string& db_path) {
  try {
    Db db = Db::open(db_path, SQLITE_OPEN_READONLY);
    if (db.query_int("SELECT count(*) FROM sqlite_schema WHERE name='__harmony_meta'") == 0)
      return std::nullopt;
    RuntimeInfo info;
    info.pid = meta_get_int(db, kPidKey, 0);
    if (auto url = meta_get(db, kNatsUrlKey); url && std::holds_alternative<Text>(*url))
      info.nats_url = std::get<Text>(*url).bytes;
    if (!pid_is_harmonylite(info.pid) || info.pid == getpid()) return std::nullopt;
    return info;
  } catch (const std::exception&) {
    return std::nullopt;
  }
}

}  // namespace harmony
