// Config loading (keys: docs/configuration.md): reads a HarmonyLite TOML file with toml++ into
// Config, warns about unknown keys, throws ConfigError naming key and file for wrong types, bad
// values and syntax errors.
#include "replicator/config/config.hpp"

#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <initializer_list>
#include <limits>
#include <optional>
#include <sstream>
#include <string_view>
#include <type_traits>
#include <utility>

#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <toml++/toml.h>

#include "replicator/common/address.hpp"

namespace harmony {

namespace {

constexpr int64_t kIntMax = std::numeric_limits<int>::max();
constexpr int64_t kIntMin = std::numeric_limits<int>::min();
constexpr int64_t kInt64Max = std::numeric_limits<int64_t>::max();

// A string as it appears in messages: double-quoted, control characters escaped.
std::string quote(std::string_view s) {
  std::string out = "\"";
  for (char c : s) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\t':
        out += "\\t";
        break;
      case '\r':
        out += "\\r";
        break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          out += fmt::format("\\x{:02x}", static_cast<unsigned char>(c));
        } else {
          out += c;
        }
    }
  }
  return out + "\"";
}

// What the user wrote, for "(got ...)".
std::string render(const toml::node& n) {
  if (const auto* s = n.as_string()) return quote(s->get());
  if (n.is_table()) return "a table";
  if (n.is_array_of_tables()) return "an array of tables";
  std::ostringstream os;
  n.visit([&](auto&& v) { os << v; });
  std::string text = os.str();
  if (text.size() > 80) text = text.substr(0, 77) + "...";
  return text;
}

std::string range_text(int64_t lo, int64_t hi) {
  if (lo == 0 && hi == kInt64Max) return "a non-negative integer";
  if (lo == 1 && hi == kInt64Max) return "a positive integer";
  return fmt::format("an integer between {} and {}", lo, hi);
}

// JetStream stream and object-store bucket names: letters, digits, '-' and '_'.
bool valid_name(std::string_view s) {
  if (s.empty()) return false;
  for (char c : s) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '_';
    if (!ok) return false;
  }
  return true;
}

// A NATS subject prefix: dot-separated non-empty tokens without whitespace or wildcards.
bool valid_subject_prefix(std::string_view s) {
  if (s.empty() || s.front() == '.' || s.back() == '.') return false;
  if (s.find("..") != std::string_view::npos) return false;
  for (char c : s) {
    if (c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '*' || c == '>') return false;
  }
  return true;
}

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return out;
}

// Reads one TOML table (a section) with typed accessors; every failure names the dotted key.
class Section {
 public:
  Section(const toml::table& table, std::string prefix, const std::string& file)
      : table_(table), prefix_(std::move(prefix)), file_(file) {}

  std::string key_name(std::string_view key) const {
    return prefix_.empty() ? std::string(key) : prefix_ + "." + std::string(key);
  }

  [[noreturn]] void fail(std::string_view key, std::string_view what, const toml::node& got) const {
    throw ConfigError{
        fmt::format("config error in {}: {} {} (got {})", file_, key_name(key), what, render(got))};
  }

  // Warns about every key not in `known` (sub-tables included) and leaves it alone.
  void warn_unknown(std::initializer_list<std::string_view> known,
                    std::vector<std::string>& warnings) const {
    for (auto&& [k, v] : table_) {
      bool found = false;
      for (std::string_view name : known) found = found || k.str() == name;
      if (!found) {
        warnings.push_back(
            fmt::format("unknown key '{}' in {} (ignored)", key_name(k.str()), file_));
      }
    }
  }

  bool has(std::string_view key) const { return table_.get(key) != nullptr; }
  const std::string& file() const { return file_; }

  // A sub-table, or nullopt when absent; anything but a table is an error.
  std::optional<Section> table(std::string_view key) const {
    const toml::node* n = table_.get(key);
    if (!n) return std::nullopt;
    if (!n->is_table()) fail(key, "must be a table", *n);
    return Section(*n->as_table(), key_name(key), file_);
  }

  void read(std::string_view key, bool& out) const {
    const toml::node* n = table_.get(key);
    if (!n) return;
    if (const auto* b = n->as_boolean()) {
      out = b->get();
    } else {
      fail(key, "must be true or false", *n);
    }
  }

  void read(std::string_view key, std::string& out, bool allow_empty = true) const {
    const toml::node* n = table_.get(key);
    if (!n) return;
    const auto* s = n->as_string();
    if (!s) fail(key, "must be a string", *n);
    if (!allow_empty && s->get().empty()) fail(key, "must not be empty", *n);
    out = s->get();
  }

  template <typename Int>
  void read(std::string_view key, Int& out, int64_t lo, int64_t hi,
            std::string_view unit = {}) const {
    static_assert(std::is_integral_v<Int> && !std::is_same_v<Int, bool>);
    const toml::node* n = table_.get(key);
    if (!n) return;
    const auto* i = n->as_integer();
    std::string what = "must be " + range_text(lo, hi);
    if (!unit.empty()) what += fmt::format(" ({})", unit);
    if (!i || i->get() < lo || i->get() > hi) fail(key, what, *n);
    out = static_cast<Int>(i->get());
  }

  // Durations are integer milliseconds, as in HarmonyLite.
  void read_ms(std::string_view key, int64_t& out) const {
    read(key, out, 0, kInt64Max, "milliseconds");
  }

  void read_choice(std::string_view key, std::string& out,
                   std::initializer_list<std::string_view> choices) const {
    const toml::node* n = table_.get(key);
    if (!n) return;
    const auto* s = n->as_string();
    bool ok = false;
    if (s) {
      for (std::string_view c : choices) ok = ok || s->get() == c;
    }
    if (!ok) {
      std::string list;
      size_t idx = 0;
      for (std::string_view c : choices) {
        if (idx > 0) list += (idx + 1 == choices.size()) ? " or " : ", ";
        list += quote(c);
        ++idx;
      }
      fail(key, "must be " + list, *n);
    }
    out = s->get();
  }

  void read(std::string_view key, std::vector<std::string>& out) const {
    const toml::node* n = table_.get(key);
    if (!n) return;
    const auto* a = n->as_array();
    if (!a) fail(key, "must be an array of strings", *n);
    std::vector<std::string> values;
    for (const toml::node& e : *a) {
      const auto* s = e.as_string();
      if (!s) fail(key, "must be an array of strings", *n);
      if (s->get().empty()) fail(key, "must not contain empty strings", *n);
      values.push_back(s->get());
    }
    out = std::move(values);
  }

  // host:port check for a string already read into `value`.
  void check_host_port(std::string_view key, bool allow_random_port) const {
    const toml::node* n = table_.get(key);
    if (!n || !n->is_string()) return;
    if (!parse_host_port(n->as_string()->get(), allow_random_port)) {
      fail(key,
           allow_random_port ? "must be host:port (port 0-65535, or -1 for a random port)"
                             : "must be host:port (port 0-65535)",
           *n);
    }
  }

  void check(std::string_view key, bool ok, std::string_view what) const {
    const toml::node* n = table_.get(key);
    if (n && !ok) fail(key, what, *n);
  }

  // check() for a key whose value is a secret: the message names the key, never the value.
  void check_secret(std::string_view key, bool ok, std::string_view what) const {
    if (table_.get(key) && !ok)
      throw ConfigError{fmt::format("config error in {}: {} {}", file_, key_name(key), what)};
  }

 private:
  const toml::table& table_;
  std::string prefix_;
  const std::string& file_;
};

std::string read_whole_file(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) {
    int err = errno;
    if (err == ENOENT) throw ConfigError{fmt::format("config error in {}: file not found", path)};
    throw ConfigError{
        fmt::format("config error in {}: cannot read file: {}", path, std::strerror(err))};
  }
  if (S_ISDIR(st.st_mode)) {
    throw ConfigError{fmt::format("config error in {}: is a directory, not a file", path)};
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    throw ConfigError{
        fmt::format("config error in {}: cannot read file: {}", path, std::strerror(errno))};
  }
  std::ostringstream os;
  os << in.rdbuf();
  if (in.bad()) throw ConfigError{fmt::format("config error in {}: cannot read file", path)};
  return os.str();
}

// toml++ 3.3 (Debian 12's) reaches __builtin_unreachable, i.e. undefined behaviour, when it
// tests some non-ASCII code points for whitespace (upstream marzer/tomlplusplus#190 and #295;
// found by tests/fuzz/fuzz_config): a non-ASCII character where TOML wants a key, a value or
// whitespace, or first on a line continued by a backslash inside a """ string. So the text is
// parsed first with every non-ASCII byte masked as '@', which is valid only inside strings and
// comments: that parse finds every misplaced character without toml++ ever classifying one.
std::string mask_non_ascii(const std::string& text) {
  std::string out = text;
  for (char& c : out)
    if (static_cast<unsigned char>(c) >= 0x80) c = '@';
  return out;
}

// Offset of a non-ASCII character opening a line continued by a backslash (the other case).
// Outside """ strings this is invalid TOML anyway, except in ''' strings, which toml++ reads
// safely; refusing those too is a small price for a simple check.
std::optional<size_t> continued_line_starts_non_ascii(const std::string& t) {
  for (size_t i = t.find('\\'); i != std::string::npos; i = t.find('\\', i + 1)) {
    size_t j = i + 1;
    while (j < t.size() && (t[j] == ' ' || t[j] == '\t')) ++j;
    if (j == t.size() || (t[j] != '\n' && t[j] != '\r')) continue;
    while (j < t.size() && (t[j] == ' ' || t[j] == '\t' || t[j] == '\n' || t[j] == '\r')) ++j;
    if (j < t.size() && static_cast<unsigned char>(t[j]) >= 0x80) return j;
  }
  return std::nullopt;
}

// Line `line` (1-based) of `text`, for syntax error messages.
std::string line_of(const std::string& text, size_t line) {
  size_t start = 0;
  for (size_t i = 1; i < line; ++i) {
    start = text.find('\n', start);
    if (start == std::string::npos) return {};
    ++start;
  }
  size_t end = text.find('\n', start);
  std::string out = text.substr(start, end == std::string::npos ? std::string::npos : end - start);
  if (!out.empty() && out.back() == '\r') out.pop_back();
  if (out.size() > 120) out = out.substr(0, 117) + "...";
  return out;
}

void load_replication_log(const Section& s, ReplicationLogConfig& r,
                          std::vector<std::string>& warnings) {
  s.warn_unknown({"shards", "max_entries", "replicas", "compress", "update_existing", "max_age",
                  "duplicate_window", "stream_audit"},
                 warnings);
  s.read("shards", r.shards, 1, 64);
  s.read("max_entries", r.max_entries, 1, kInt64Max);
  s.read("replicas", r.replicas, kIntMin, kIntMax);
  s.read("compress", r.compress);
  s.read("update_existing", r.update_existing);
  s.read_ms("max_age", r.max_age_ms);
  s.read_ms("duplicate_window", r.duplicate_window_ms);
  s.read("stream_audit", r.stream_audit);
  // HarmonyLite's rule: replicas < 1 means a majority of the shard count,
  // shards/2 + 1; JetStream allows at most 5 replicas, so larger values are capped at 5.
  if (r.replicas < 1) r.replicas = r.shards / 2 + 1;
  if (r.replicas > 5) r.replicas = 5;
}

// The bounds of a table kept for a person to read ([dead_letters], [conflicts]): max_rows at
// least 1, so a bound cannot be switched off by accident; max_age 0 means no age limit.
void read_row_and_age_limits(const Section& s, int64_t& max_rows, int64_t& max_age_ms) {
  s.read("max_rows", max_rows, 1, kInt64Max, "rows");
  s.read_ms("max_age", max_age_ms);
}

// ours: the bound on __harmony_dead_letters (issue 14 item 8); max_bytes at least 1 too.
void load_dead_letters(const Section& s, DeadLetterLimits& d, std::vector<std::string>& warnings) {
  s.warn_unknown({"max_rows", "max_bytes", "max_age"}, warnings);
  read_row_and_age_limits(s, d.max_rows, d.max_age_ms);
  s.read("max_bytes", d.max_bytes, 1, kInt64Max, "bytes");
}

// ours: the bound on the conflict log, __harmony_conflicts.
void load_conflicts(const Section& s, ConflictLimits& c, std::vector<std::string>& warnings) {
  s.warn_unknown({"max_rows", "max_age"}, warnings);
  read_row_and_age_limits(s, c.max_rows, c.max_age_ms);
}

// ours: [anti_entropy] (docs/anti-entropy.md). interval 0 switches rounds off.
void load_anti_entropy(const Section& s, AntiEntropyConfig& a, std::vector<std::string>& warnings) {
  s.warn_unknown({"interval", "max_repair_rows_per_round", "digest_check_rounds", "scrub_rows"},
                 warnings);
  s.read_ms("interval", a.interval_ms);
  s.read("max_repair_rows_per_round", a.max_repair_rows_per_round, 1, kInt64Max, "rows");
  s.read("digest_check_rounds", a.digest_check_rounds, 0, kInt64Max, "rounds");
  s.read("scrub_rows", a.scrub_rows, 0, kMaxScrubRows, "rows");
}

// ours: [tombstones] (docs/anti-entropy.md "Tombstones"). gc_interval 0 switches pruning off;
// member_retention is at least 1 ms (0 would drop every peer at once).
void load_tombstones(const Section& s, TombstonesConfig& t, std::vector<std::string>& warnings) {
  s.warn_unknown({"gc_interval", "member_retention"}, warnings);
  s.read_ms("gc_interval", t.gc_interval_ms);
  s.read("member_retention", t.member_retention_ms, 1, kInt64Max, "milliseconds");
}

void load_snapshot(const Section& s, SnapshotConfig& snap, std::vector<std::string>& warnings) {
  s.warn_unknown({"enabled", "interval", "leader_ttl", "store", "every_entries", "nats", "s3",
                  "webdav", "sftp", "file"},
                 warnings);
  s.read("enabled", snap.enabled);
  s.read_ms("interval", snap.interval_ms);
  s.read_ms("leader_ttl", snap.leader_ttl_ms);
  // HarmonyLite (logstream/snapshot_leader.go): leader_ttl = 0 means the 30 s default.
  if (snap.leader_ttl_ms == 0) snap.leader_ttl_ms = 30000;
  s.read_choice("store", snap.store, {"nats", "file", "s3", "webdav", "sftp"});
  s.read("every_entries", snap.every_entries, 0, kInt64Max);

  if (auto n = s.table("nats")) {
    n->warn_unknown({"replicas", "bucket"}, warnings);
    n->read("replicas", snap.nats.replicas, kIntMin, kIntMax);
    // Same normalisation as the stream replicas: at least 1 (JetStream treats 0 as 1), at most 5.
    if (snap.nats.replicas < 1) snap.nats.replicas = 1;
    if (snap.nats.replicas > 5) snap.nats.replicas = 5;
    n->read("bucket", snap.nats.bucket);
    n->check("bucket", snap.nats.bucket.empty() || valid_name(snap.nats.bucket),
             "must contain only letters, digits, '-' and '_'");
  }
  if (auto n = s.table("s3")) {
    n->warn_unknown({"endpoint", "path", "bucket", "use_ssl", "access_key", "secret",
                     "session_token", "region"},
                    warnings);
    n->read("endpoint", snap.s3.endpoint);
    n->read("path", snap.s3.path);
    n->read("bucket", snap.s3.bucket);
    n->read("use_ssl", snap.s3.use_ssl);
    n->read("access_key", snap.s3.access_key);
    n->read("secret", snap.s3.secret);
    n->read("session_token", snap.s3.session_token);
    n->read("region", snap.s3.region);
    n->check("region", !snap.s3.region.empty(), "must not be empty (default \"us-east-1\")");
  }
  if (auto n = s.table("webdav")) {
    n->warn_unknown({"url"}, warnings);
    n->read("url", snap.webdav.url);
  }
  if (auto n = s.table("sftp")) {
    n->warn_unknown({"url", "known_hosts", "insecure_ignore_host_key", "key_file"}, warnings);
    n->read("url", snap.sftp.url);
    n->read("known_hosts", snap.sftp.known_hosts);
    n->read("insecure_ignore_host_key", snap.sftp.insecure_ignore_host_key);
    n->read("key_file", snap.sftp.key_file);
  }
  if (auto n = s.table("file")) {
    n->warn_unknown({"dir"}, warnings);
    n->read("dir", snap.file.dir);  // relative paths stay relative to the working directory
  }
  // A store without its address would fail only at the first snapshot: say so at start-up.
  s.check("store", !snap.enabled || snap.store != "s3" || !snap.s3.endpoint.empty(),
          "needs [snapshot.s3] endpoint (host:port of the S3 server)");
  s.check("store", !snap.enabled || snap.store != "s3" || !snap.s3.bucket.empty(),
          "needs [snapshot.s3] bucket");
  s.check("store", !snap.enabled || snap.store != "webdav" || !snap.webdav.url.empty(),
          "needs [snapshot.webdav] url (http://host:port/path?dir=&login=&secret=)");
  s.check("store", !snap.enabled || snap.store != "sftp" || !snap.sftp.url.empty(),
          "needs [snapshot.sftp] url (sftp://user:password@host:port/path)");
  s.check("store", !snap.enabled || snap.store != "file" || !snap.file.dir.empty(),
          "needs [snapshot.file] dir (the directory snapshots are kept in)");
}

void load_nats(const Section& s, NatsConfig& n, std::vector<std::string>& warnings) {
  s.warn_unknown({"urls",
                  "subject_prefix",
                  "stream_prefix",
                  "server_config",
                  "seed_file",
                  "user_name",
                  "user_password",
                  "ca_file",
                  "cert_file",
                  "key_file",
                  "bind_address",
                  "connect_retries",
                  "reconnect_wait_seconds",
                  "server_binary",
                  "store_dir",
                  "cluster_user",
                  "cluster_password",
                  "cluster_insecure",
                  "tls_ca_file",
                  "tls_cert_file",
                  "tls_key_file",
                  "tls_verify",
                  "cluster_key_file",
                  "cluster_key_mode"},
                 warnings);
  s.read("urls", n.urls);
  s.read("subject_prefix", n.subject_prefix);
  s.check("subject_prefix", valid_subject_prefix(n.subject_prefix),
          "must be a NATS subject prefix (dot-separated tokens, no spaces or wildcards)");
  s.read("stream_prefix", n.stream_prefix);
  s.check("stream_prefix", valid_name(n.stream_prefix),
          "must be non-empty and contain only letters, digits, '-' and '_'");
  // Paths are kept as written: like HarmonyLite, relative ones resolve against the working
  // directory of the process, not the directory of the config file.
  s.read("server_config", n.server_config);
  s.read("seed_file", n.seed_file);
  s.read("user_name", n.user_name);
  s.read("user_password", n.user_password);
  s.read("ca_file", n.ca_file);
  s.read("cert_file", n.cert_file);
  s.read("key_file", n.key_file);
  s.read("bind_address", n.bind_address);
  s.check_host_port("bind_address", true);
  s.read("connect_retries", n.connect_retries, 0, kIntMax);
  s.read("reconnect_wait_seconds", n.reconnect_wait_seconds, 0, kIntMax, "seconds");
  s.read("server_binary", n.server_binary, /*allow_empty=*/false);
  s.read("store_dir", n.store_dir);
  // The file itself (permissions, length, hex) is checked when the node starts, by
  // load_cluster_key (replicator/wire/message_auth.cpp), which names the key in its errors too.
  s.read("cluster_key_file", n.cluster_key_file);
  s.read_choice("cluster_key_mode", n.cluster_key_mode, {"verify", "sign-only"});
  s.read("cluster_user", n.cluster_user);
  s.read("cluster_password", n.cluster_password);
  const bool both = n.cluster_user.empty() == n.cluster_password.empty();
  s.check("cluster_user", both, "needs cluster_password as well (set both or neither)");
  s.check_secret("cluster_password", both, "needs cluster_user as well (set both or neither)");
  s.read("cluster_insecure", n.cluster_insecure);
  s.read("tls_ca_file", n.tls_ca_file);
  s.read("tls_cert_file", n.tls_cert_file);
  s.read("tls_key_file", n.tls_key_file);
  s.read("tls_verify", n.tls_verify);
  // Routes verify their peers against the CA, and the replicator verifies its own server with
  // it: a certificate without its CA would be a TLS that checks nothing.
  const bool any_tls =
      !n.tls_ca_file.empty() || !n.tls_cert_file.empty() || !n.tls_key_file.empty();
  const bool all_tls =
      !n.tls_ca_file.empty() && !n.tls_cert_file.empty() && !n.tls_key_file.empty();
  for (const char* key : {"tls_ca_file", "tls_cert_file", "tls_key_file"})
    s.check(key, !any_tls || all_tls,
            "needs all of tls_ca_file, tls_cert_file and tls_key_file (the embedded server's TLS "
            "uses the three together)");
  s.check("tls_verify", !n.tls_verify || any_tls,
          "needs tls_ca_file, tls_cert_file and tls_key_file");
}

// The TOML document of `text`, or a ConfigError naming the line and column. The text is parsed
// with non-ASCII bytes masked before it is parsed as written (see mask_non_ascii).
toml::table parse_toml(const std::string& text, const std::string& path) {
  auto syntax_error = [&](size_t line, size_t column, std::string_view what) {
    const std::string quoted = line_of(text, line);
    return ConfigError{fmt::format(
        "config error in {}: TOML syntax error at line {}, column {}: {}{}", path, line, column,
        what, quoted.empty() ? "" : fmt::format(" (line {}: {})", line, quoted))};
  };
  auto parse = [&](const std::string& doc) {
    try {
      return toml::parse(std::string_view(doc), std::string_view(path));
    } catch (const toml::parse_error& e) {
      const auto& where = e.source().begin;
      // The masked text has one column per byte, so the position maps back exactly.
      size_t at = 0;
      for (size_t l = 1; l < where.line && at != std::string::npos; ++l) {
        at = text.find('\n', at);
        if (at != std::string::npos) ++at;
      }
      if (at != std::string::npos && where.column > 0) at += where.column - 1;
      const bool non_ascii = at < text.size() && static_cast<unsigned char>(text[at]) >= 0x80;
      throw syntax_error(where.line, where.column,
                         non_ascii ? "a non-ASCII character outside a quoted string or a comment"
                                   : e.description());
    }
  };
  parse(mask_non_ascii(text));
  if (auto at = continued_line_starts_non_ascii(text)) {
    const auto before = text.begin() + static_cast<std::ptrdiff_t>(*at);
    const size_t nl = *at == 0 ? std::string::npos : text.rfind('\n', *at - 1);
    throw syntax_error(1 + static_cast<size_t>(std::count(text.begin(), before, '\n')),
                       *at - (nl == std::string::npos ? 0 : nl + 1) + 1,
                       "a line continued with a backslash starts with a non-ASCII character, "
                       "which this build's TOML parser cannot read (join the lines)");
  }
  return parse(text);
}

// Keys at the top of the file (not in a [section]).
void load_top_level(const Section& top, Config& cfg, std::vector<std::string>& warnings) {
  // Packed by hand: clang-format puts one key per line once the list needs five lines.
  // clang-format off
  top.warn_unknown({"db_path", "seq_map_path", "node_id", "publish", "replicate",
                    "scan_max_changes", "apply_batch_rows", "max_held_rows", "max_held_bytes",
                    "cleanup_interval", "sleep_timeout", "polling_interval", "max_clock_drift",
                    "include_tables", "exclude_tables", "capture_existing_rows",
                    "replication_log", "dead_letters", "conflicts", "anti_entropy", "tombstones", "snapshot",
                    "nats", "logging", "prometheus", "health_check"},
                   warnings);
  // clang-format on
  top.read("db_path", cfg.db_path, /*allow_empty=*/false);  // kept as written (relative to cwd)
  // The compiled-in default lives in /tmp, where any local user can plant files: fine for a try
  // out, not as a silent choice for real data.
  // (Logged rather than added to `warnings`, which lists keys the file got wrong.)
  if (!top.has("db_path"))
    spdlog::warn(
        "db_path is not set in {}: using the compiled-in default {} (a shared temporary "
        "directory); set db_path for real use",
        top.file(), cfg.db_path);
  top.read("seq_map_path", cfg.seq_map_path);
  // TOML integers are signed 64-bit, so 2^63-1 is also the largest id a file can hold.
  top.read("node_id", cfg.node_id, 0, kInt64Max);
  top.read("publish", cfg.publish);
  top.read("replicate", cfg.replicate);
  top.read("scan_max_changes", cfg.scan_max_changes, 1, kInt64Max);
  top.read("apply_batch_rows", cfg.apply_batch_rows, 1, kInt64Max);
  top.read("max_held_rows", cfg.max_held_rows, 1, kInt64Max);
  top.read("max_held_bytes", cfg.max_held_bytes, 1, kInt64Max, "bytes");
  top.read_ms("cleanup_interval", cfg.cleanup_interval_ms);
  top.read_ms("sleep_timeout", cfg.sleep_timeout_ms);
  top.read_ms("polling_interval", cfg.polling_interval_ms);
  // At least 1 ms (0 would hold every row from a clock a millisecond ahead); at most the hard
  // sanity limit, beyond which a version is treated as corrupt anyway.
  top.read("max_clock_drift", cfg.max_clock_drift_ms, 1, kMaxClockAheadMs, "milliseconds");
  top.read("include_tables", cfg.include_tables);
  top.read("exclude_tables", cfg.exclude_tables);
  top.read("capture_existing_rows", cfg.capture_existing_rows);
  // SQLite table names are case-insensitive, so compare them that way.
  for (const auto& inc : cfg.include_tables) {
    for (const auto& exc : cfg.exclude_tables) {
      if (lower(inc) == lower(exc)) {
        throw ConfigError{
            fmt::format("config error in {}: include_tables and exclude_tables both name table {}",
                        cfg.source_path, quote(inc))};
      }
    }
  }
}

void load_logging(const Section& s, LoggingConfig& c, std::vector<std::string>& warnings) {
  s.warn_unknown({"verbose", "format"}, warnings);
  s.read("verbose", c.verbose);
  s.read_choice("format", c.format, {"console", "json"});
}

void load_prometheus(const Section& s, PrometheusConfig& c, std::vector<std::string>& warnings) {
  s.warn_unknown({"enable", "bind", "namespace", "subsystem"}, warnings);
  s.read("enable", c.enable);
  s.read("bind", c.bind);
  s.check_host_port("bind", false);
  s.read("namespace", c.namespace_);
  s.read("subsystem", c.subsystem);
}

void load_health_check(const Section& s, HealthCheckConfig& c, std::vector<std::string>& warnings) {
  s.warn_unknown({"enable", "bind", "path", "detailed"}, warnings);
  s.read("enable", c.enable);
  s.read("bind", c.bind);
  s.check_host_port("bind", false);
  s.read("path", c.path);
  s.check("path", !c.path.empty() && c.path.front() == '/', "must start with '/'");
  s.read("detailed", c.detailed);
}

}  // namespace

Config load_config(const std::string& path, std::vector<std::string>& warnings) {
  return parse_config_text(read_whole_file(path), path, warnings);
}

Config parse_config_text(const std::string& text, const std::string& path,
                         std::vector<std::string>& warnings) {
  toml::table root = parse_toml(text, path);
  Config cfg;
  cfg.source_path = path;
  Section top(root, "", path);
  load_top_level(top, cfg, warnings);
  if (auto s = top.table("replication_log"))
    load_replication_log(*s, cfg.replication_log, warnings);
  if (auto s = top.table("dead_letters")) load_dead_letters(*s, cfg.dead_letters, warnings);
  if (auto s = top.table("conflicts")) load_conflicts(*s, cfg.conflicts, warnings);
  if (auto s = top.table("anti_entropy")) load_anti_entropy(*s, cfg.anti_entropy, warnings);
  if (auto s = top.table("tombstones")) load_tombstones(*s, cfg.tombstones, warnings);
  if (auto s = top.table("snapshot")) load_snapshot(*s, cfg.snapshot, warnings);
  if (auto s = top.table("nats")) load_nats(*s, cfg.nats, warnings);
  if (auto s = top.table("logging")) load_logging(*s, cfg.logging, warnings);
  if (auto s = top.table("prometheus")) load_prometheus(*s, cfg.prometheus, warnings);
  if (auto s = top.table("health_check")) load_health_check(*s, cfg.health_check, warnings);
  return cfg;
}

TableSelection table_selection(const Config& config) {
  TableSelection s;
  s.include = config.include_tables;
  s.exclude = config.exclude_tables;
  s.capture_existing_rows = config.capture_existing_rows;
  return s;
}

}  // namespace harmony
