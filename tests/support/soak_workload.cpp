// Soak workload: schema, generated values and statements, application writers (see
// soak_workload.hpp).
#include "tests/support/soak_workload.hpp"

#include <sqlite3.h>

#include <cctype>
#include <climits>
#include <cmath>
#include <cstring>
#include <limits>

#include <fmt/format.h>

#include "shared/hlc.hpp"
#include "shared/sqlite_db.hpp"
#include "tests/support/support.hpp"

namespace harmony::test {

namespace {

using Rng = std::mt19937_64;

int64_t uniform(Rng& rng, int64_t lo, int64_t hi) {  // inclusive
  return std::uniform_int_distribution<int64_t>(lo, hi)(rng);
}
bool chance(Rng& rng, double p) {
  return std::uniform_real_distribution<double>(0, 1)(rng) < p;
}
template <typename T>
const T& pick(Rng& rng, const std::vector<T>& v) {
  return v[static_cast<size_t>(uniform(rng, 0, static_cast<int64_t>(v.size()) - 1))];
}

// Text primary keys of `docs` and general odd text: quotes, SQL syntax, control characters,
// Unicode of every width, and five invalid UTF-8 sequences.
const std::vector<std::string>& odd_strings() {
  static const std::vector<std::string> v = {
      "alpha", "Alpha", "ALPHA", "it's", "''", "\"dq\"", "back\\slash", "semi;colon",
      "-- not a comment", "/* nor this */", "new\nline", "cr\rlf\r\n", "tab\there", "sp ace",
      "  padded  ", "", "0", "1", "1.0", "NULL", "%_", "?1", "x'00'", "'); DROP TABLE kv; --",
      "\xc3\xbcn\xc3\xaf"
      "c\xc3\xb6"
      "d\xc3\xa9",
      "\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e", "\xd7\xa2\xd7\x91\xd7\xa8\xd7\x99\xd7\xaa",
      "e\xcc\x81 combining", "\xf0\x9f\x98\x80", "\xe2\x80\x8bzero-width", "\xc3\x9f",
      "\xe1\xba\x9e", "go\n/\n.quit",
      // invalid UTF-8: truncated, stray bytes, UTF-16 surrogate, overlong, truncated at the end
      "\xc3\x28", "\xff\xfe\xfd", "\xed\xa0\x80surrogate", "\xc0\xafoverlong", "trunc\xe2\x82",
      std::string(300, 'k')};
  return v;
}

const std::vector<std::string>& pair_names() {
  static const std::vector<std::string> v = {"x", "y", "Z", "\xc3\xa4", "\xc3\x28", ""};
  return v;
}

// Strictly valid UTF-8 without NUL (what a quoted literal in the shell can carry).
bool valid_utf8(const std::string& s) {
  size_t i = 0;
  while (i < s.size()) {
    auto c = static_cast<unsigned char>(s[i]);
    if (c == 0) return false;
    size_t n = c < 0x80 ? 0 : (c >> 5) == 6 ? 1 : (c >> 4) == 14 ? 2 : (c >> 3) == 30 ? 3 : 9;
    if (n == 9 || i + n >= s.size()) return false;
    uint32_t cp = n == 0 ? c : c & (0x3fu >> n);
    for (size_t k = 1; k <= n; ++k) {
      auto cc = static_cast<unsigned char>(s[i + k]);
      if ((cc >> 6) != 2) return false;
      cp = (cp << 6) | (cc & 0x3f);
    }
    if ((n == 1 && cp < 0x80) || (n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000) ||
        cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
      return false;
    i += n + 1;
  }
  return true;
}

void append_utf8(std::string& out, uint32_t cp) {
  if (cp < 0x80) {
    out.push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out.push_back(static_cast<char>(0xc0 | (cp >> 6)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3f)));
  } else if (cp < 0x10000) {
    out.push_back(static_cast<char>(0xe0 | (cp >> 12)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3f)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3f)));
  } else {
    out.push_back(static_cast<char>(0xf0 | (cp >> 18)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3f)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3f)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3f)));
  }
}

std::string random_chars(Rng& rng, size_t n, const char* alphabet) {
  std::string out(n, ' ');
  size_t len = std::strlen(alphabet);
  for (auto& c : out)
    c = alphabet[static_cast<size_t>(uniform(rng, 0, static_cast<int64_t>(len) - 1))];
  return out;
}

std::string odd_text(Rng& rng, const WorkloadOptions& o) {
  if (chance(rng, o.huge_text_fraction))  // ~6 bits per byte: zstd cannot shrink it much
    return random_chars(rng, static_cast<size_t>(uniform(rng, 300'000, 800'000)),
                        "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789+/");
  if (chance(rng, o.long_text_fraction)) {
    std::string s;
    size_t n = static_cast<size_t>(uniform(rng, 2'000, 50'000));
    while (s.size() < n) s += pick(rng, odd_strings()) + " ";
    return s;
  }
  switch (uniform(rng, 0, 9)) {
    case 0:
    case 1:
      return pick(rng, odd_strings());
    case 2:
    case 3:
      return random_chars(rng, static_cast<size_t>(uniform(rng, 0, 60)),
                          "abc XYZ 019 '\"\\;-/*%_?\t\n\r`$@!#&()[]{}<>=+|~^");
    case 4: {
      std::string s;
      for (int64_t i = uniform(rng, 1, 20); i > 0; --i) {
        uint32_t cp;
        do cp = static_cast<uint32_t>(uniform(rng, 1, 0x10ffff));
        while (cp >= 0xd800 && cp <= 0xdfff);
        append_utf8(s, cp);
      }
      return s;
    }
    case 5: {
      std::string s(1, '\xff');  // certainly invalid UTF-8
      for (int64_t i = uniform(rng, 0, 40); i > 0; --i)
        s.push_back(static_cast<char>(uniform(rng, 1, 255)));
      return s;
    }
    case 6:
      return "";
    default:
      return fmt::format("value {}", uniform(rng, 0, 1'000'000));
  }
}

Value blob_value(Rng& rng) {
  int64_t k = uniform(rng, 0, 99);
  if (k < 10) return Null{};
  if (k < 20) return Blob{""};
  std::string s;
  if (k < 80) {
    s.resize(static_cast<size_t>(uniform(rng, 1, 64)));
    for (auto& c : s) c = chance(rng, 0.3) ? '\0' : static_cast<char>(uniform(rng, 0, 255));
  } else if (k < 95) {
    s.resize(static_cast<size_t>(uniform(rng, 65, 4096)));
    for (auto& c : s) c = static_cast<char>(uniform(rng, 0, 255));
  } else {
    s.assign(static_cast<size_t>(uniform(rng, 1, 100)), '\0');
  }
  return Blob{s};
}

int64_t int_value(Rng& rng) {
  switch (uniform(rng, 0, 7)) {
    case 0:
      return std::numeric_limits<int64_t>::min();
    case 1:
      return std::numeric_limits<int64_t>::max();
    case 2:
      return 0;
    case 3:
      return -1;
    default:
      return uniform(rng, -1'000'000'000'000, 1'000'000'000'000);
  }
}

// Any storage class, for the column without affinity. The shell gets only REALs whose decimal
// form parses back exactly (k/8); bound values include -0.0, subnormals and infinities.
Value any_value(Rng& rng, bool shell, const WorkloadOptions& o) {
  switch (uniform(rng, 0, 5)) {
    case 0:
      return Null{};
    case 1:
      return int_value(rng);
    case 2: {
      if (shell) return static_cast<double>(uniform(rng, -80000, 80000)) / 8.0;
      static const std::vector<double> special = {-0.0,
                                                  0.0,
                                                  1e308,
                                                  -1e-308,
                                                  5e-324,
                                                  std::numeric_limits<double>::infinity(),
                                                  -std::numeric_limits<double>::infinity(),
                                                  0.1,
                                                  2.0,
                                                  -3.5};
      if (chance(rng, 0.5)) return pick(rng, special);
      return std::normal_distribution<double>(0, 1e6)(rng);
    }
    case 3:
      return Text{odd_text(rng, o)};
    default:
      return blob_value(rng);
  }
}

Value text_or_blob(Rng& rng, const WorkloadOptions& o) {
  if (chance(rng, 0.05)) return blob_value(rng);  // a BLOB in a TEXT column stays a BLOB
  if (chance(rng, 0.05)) return Null{};
  return Text{odd_text(rng, o)};
}

std::string hex(const std::string& bytes) {
  static const char* digits = "0123456789ABCDEF";
  std::string out;
  out.reserve(bytes.size() * 2);
  for (unsigned char c : bytes) {
    out.push_back(digits[c >> 4]);
    out.push_back(digits[c & 15]);
  }
  return out;
}

// Replaces ?N placeholders (outside quoted literals) with SQL literals of args.
std::string render(const std::string& sql, const std::vector<Value>& args) {
  std::string out;
  out.reserve(sql.size() + 64);
  bool quoted = false;
  for (size_t i = 0; i < sql.size(); ++i) {
    char c = sql[i];
    if (c == '\'') quoted = !quoted;
    if (!quoted && c == '?' && i + 1 < sql.size() &&
        std::isdigit(static_cast<unsigned char>(sql[i + 1]))) {
      size_t j = i + 1;
      while (j < sql.size() && std::isdigit(static_cast<unsigned char>(sql[j]))) ++j;
      size_t n = std::stoul(sql.substr(i + 1, j - i - 1));
      out += sql_literal(args.at(n - 1));
      i = j - 1;
      continue;
    }
    out.push_back(c);
  }
  return out;
}

SoakTable table_named(const std::string& name) {
  for (const auto& t : soak_tables())
    if (t.name == name) return t;
  throw std::runtime_error("no soak table " + name);
}

// The registry of replicated tables (soak_tables()); writers read it from their threads while
// the harness adds tables created during the run.
std::mutex& tables_mutex() {
  static std::mutex mu;
  return mu;
}
std::vector<SoakTable>& tables_registry() {
  static std::vector<SoakTable> tables = {
      {"kv", "'i:' || k", "'i:' || k1"},
      {"docs", "'t:' || hex(id)", "'t:' || hex(k1)"},
      {"pairs", "'i:' || a || '|t:' || hex(b)", "'i:' || k1 || '|t:' || hex(k2)"},
  };
  return tables;
}

bool is_schema_error(const std::string& error) {
  for (const char* e : {"no such column", "has no column named", "no such table"})
    if (error.find(e) != std::string::npos) return true;
  return false;
}

// soak_log lines for the rows of `table` carrying write id ?1 (written by the statement before).
Workload::Step log_written(const std::string& table, const std::string& wid, int64_t t_ms,
                           int writer) {
  return {fmt::format("INSERT INTO soak_log(wid, tbl, key, op, t_ms, writer) SELECT ?1, '{0}', "
                      "{1}, 'U', ?2, ?3 FROM {0} WHERE wid = ?1",
                      table, table_named(table).key_expr),
          {Text{wid}, t_ms, int64_t{writer}}};
}

// soak_log lines for the rows of `table` matching `where` (literals), before they are deleted or
// moved to another key.
Workload::Step log_removed(const std::string& table, const std::string& where,
                           const std::string& wid, int64_t t_ms, int writer) {
  return {fmt::format("INSERT INTO soak_log(wid, tbl, key, op, t_ms, writer) SELECT ?1, '{0}', "
                      "{1}, 'D', ?2, ?3 FROM {0} WHERE {2}",
                      table, table_named(table).key_expr, where),
          {Text{wid}, t_ms, int64_t{writer}}};
}

}  // namespace

std::vector<SoakTable> soak_tables() {
  std::lock_guard lk(tables_mutex());
  return tables_registry();
}

void add_soak_table(const SoakTable& table) {
  std::lock_guard lk(tables_mutex());
  tables_registry().push_back(table);
}

void reset_soak_tables() {
  std::lock_guard lk(tables_mutex());
  tables_registry().resize(3);
}

SoakTable created_soak_table(const std::string& name) {
  return {name, "'i:' || id", "'i:' || k1"};
}

std::string created_table_ddl(const std::string& name) {
  return fmt::format("CREATE TABLE {} (id INTEGER PRIMARY KEY, wid TEXT NOT NULL, v)", name);
}

bool is_added_column(const std::string& column) {
  return column.size() >= 2 && column[0] == 'x' &&
         std::isdigit(static_cast<unsigned char>(column[1]));
}

std::string logical_column(const std::string& column) {
  if (!is_added_column(column)) return column;
  return column.substr(0, column.find("_r"));
}

NodeSchema load_node_schema(void* handle) {
  NodeSchema schema;
  Db db = Db::borrow(static_cast<sqlite3*>(handle));
  for (const auto& t : soak_tables()) {
    auto cols = db.prepare("SELECT name FROM pragma_table_info(?1)");
    cols.bind(1, t.name);
    bool exists = false;
    std::vector<std::string> added;
    while (cols.step()) {
      exists = true;
      if (is_added_column(cols.column_text(0))) added.push_back(cols.column_text(0));
    }
    if (!exists) continue;
    if (t.name != "kv" && t.name != "docs" && t.name != "pairs")
      schema.created_tables.push_back(t.name);
    if (!added.empty()) schema.added[t.name] = std::move(added);
  }
  return schema;
}

std::string soak_schema() {
  return "CREATE TABLE kv (k INTEGER PRIMARY KEY, wid TEXT NOT NULL, val TEXT, data BLOB, "
         "n INTEGER);"
         "CREATE TABLE docs (id TEXT PRIMARY KEY, wid TEXT NOT NULL, body TEXT, data BLOB) "
         "WITHOUT ROWID;"
         "CREATE TABLE pairs (a INTEGER NOT NULL, b TEXT NOT NULL, wid TEXT NOT NULL, v, "
         "PRIMARY KEY (a, b));"
         "CREATE TABLE soak_log (seq INTEGER PRIMARY KEY AUTOINCREMENT, wid TEXT NOT NULL, "
         "tbl TEXT NOT NULL, key TEXT NOT NULL, op TEXT NOT NULL, t_ms INTEGER NOT NULL, "
         "writer INTEGER NOT NULL);";
}

uint64_t value_hash(const Value& v) {
  uint64_t h = 1469598103934665603ull;
  auto feed = [&](const void* p, size_t n) {
    auto b = static_cast<const unsigned char*>(p);
    for (size_t i = 0; i < n; ++i) h = (h ^ b[i]) * 1099511628211ull;
  };
  std::visit(
      [&](const auto& x) {
        using T = std::decay_t<decltype(x)>;
        if constexpr (std::is_same_v<T, Null>) {
          feed("N", 1);
        } else if constexpr (std::is_same_v<T, int64_t>) {
          feed("I", 1);
          feed(&x, sizeof x);
        } else if constexpr (std::is_same_v<T, double>) {
          feed("R", 1);
          feed(&x, sizeof x);
        } else {
          feed(std::is_same_v<T, Text> ? "T" : "B", 1);
          uint64_t n = x.bytes.size();
          feed(&n, sizeof n);
          feed(x.bytes.data(), x.bytes.size());
        }
      },
      v);
  return h;
}

std::string sql_literal(const Value& v) {
  return std::visit(
      [](const auto& x) -> std::string {
        using T = std::decay_t<decltype(x)>;
        if constexpr (std::is_same_v<T, Null>) {
          return "NULL";
        } else if constexpr (std::is_same_v<T, int64_t>) {
          if (x == std::numeric_limits<int64_t>::min()) return "(-9223372036854775807-1)";
          return std::to_string(x);
        } else if constexpr (std::is_same_v<T, double>) {
          if (std::isinf(x)) return x > 0 ? "9e999" : "-9e999";
          std::string s = fmt::format("{:.17g}", x);
          if (s.find_first_of(".en") == std::string::npos) s += ".0";
          return s;
        } else if constexpr (std::is_same_v<T, Text>) {
          // The sqlite3 shell reads scripts line by line and turns "\r\n" into "\n": text
          // with a carriage return goes as hex, like invalid UTF-8.
          if (valid_utf8(x.bytes) && x.bytes.find('\r') == std::string::npos)
            return quote_literal(x.bytes);
          return "CAST(X'" + hex(x.bytes) + "' AS TEXT)";
        } else {
          return "X'" + hex(x.bytes) + "'";
        }
      },
      v);
}

std::string describe_value(const Value& v, size_t max_chars) {
  std::string s = sql_literal(v);
  if (s.size() > max_chars) s = s.substr(0, max_chars) + fmt::format("...({} chars)", s.size());
  return s;
}

Workload::Workload(WorkloadOptions options, uint64_t seed, std::vector<std::string> dbs,
                   std::string scratch_dir)
    : options_(std::move(options)),
      seed_(seed),
      dbs_(std::move(dbs)),
      scratch_(std::move(scratch_dir)) {}

Workload::~Workload() {
  stop();
}

void Workload::start() {
  for (int n = 0; n < static_cast<int>(dbs_.size()); ++n)
    for (int w = 0; w < options_.writers_per_node; ++w) {
      // Writers alternate between plain connections and connections that loaded libharmony.
      Kind kind = w % 2 == 0 ? Kind::Plain : Kind::Extension;
      uint64_t s = seed_ * 1000003u + static_cast<uint64_t>(n * 1000 + w);
      threads_.emplace_back([this, n, w, kind, s] { writer_loop(n, w, kind, s); });
    }
}

void Workload::stop() {
  stop_ = true;
  for (auto& t : threads_)
    if (t.joinable()) t.join();
}

void Workload::set_added_columns(Rng& rng, Op& op, const std::string& table,
                                 const NodeSchema& schema, bool shell) {
  auto it = schema.added.find(table);
  if (it == schema.added.end()) return;
  std::string sets;
  std::vector<Value> args = {Text{op.wid}};
  for (const auto& col : it->second) {
    if (!chance(rng, 0.6)) continue;
    Value v = any_value(rng, shell, options_);
    args.push_back(v);
    sets += fmt::format("{}{} = ?{}", sets.empty() ? "" : ", ", col, args.size());
    op.sets.emplace_back(col, v);
  }
  if (sets.empty()) return;
  op.steps.push_back({fmt::format("UPDATE {} SET {} WHERE wid = ?1", table, sets), args});
}

Workload::Op Workload::make_op(Rng& rng, const std::string& wid, int writer, int64_t t_ms,
                               bool shell, const NodeSchema& schema) {
  const auto& o = options_;
  Op op;
  op.wid = wid;
  const Value w = Text{wid};
  // A table created during the run, once this node has it.
  if (!schema.created_tables.empty() && chance(rng, 0.2)) {
    const std::string& t = pick(rng, schema.created_tables);
    const int64_t id = uniform(rng, 0, o.created_table_keys - 1);
    const int64_t kind = uniform(rng, 0, 99);
    if (kind < 60) {
      Value v = any_value(rng, shell, o);
      op.steps.push_back({fmt::format("INSERT INTO {} (id, wid, v) VALUES (?1, ?2, ?3) ON "
                                      "CONFLICT(id) DO UPDATE SET wid = excluded.wid, v = "
                                      "excluded.v",
                                      t),
                          {id, w, v}});
      op.sets = {{"v", v}};
    } else if (kind < 80) {
      Value v = any_value(rng, shell, o);
      op.steps.push_back(
          {fmt::format("UPDATE {} SET wid = ?1, v = ?2 WHERE id = ?3", t), {w, v, id}});
      op.sets = {{"v", v}};
    } else {
      op.steps.push_back(log_removed(t, fmt::format("id = {}", id), wid, t_ms, writer));
      op.steps.push_back({fmt::format("DELETE FROM {} WHERE id = ?1", t), {id}});
      return op;
    }
    set_added_columns(rng, op, t, schema, shell);
    op.steps.push_back(log_written(t, wid, t_ms, writer));
    return op;
  }
  const int64_t table = uniform(rng, 0, 99);
  if (table < 50) {  // kv: INTEGER PRIMARY KEY (rowid alias)
    const int64_t k = uniform(rng, 0, o.kv_keys - 1);
    const int64_t kind = uniform(rng, 0, 99);
    if (kind < 30) {
      Value val = text_or_blob(rng, o), data = blob_value(rng), n = int_value(rng);
      const char* verb = kind < 20   ? "INSERT"
                         : kind < 25 ? "INSERT OR REPLACE"
                                     : "INSERT OR IGNORE";
      std::string tail = kind < 20 ? " ON CONFLICT(k) DO UPDATE SET wid = excluded.wid, val = "
                                     "excluded.val, data = excluded.data, n = excluded.n"
                                   : "";
      op.steps.push_back({fmt::format("{} INTO kv (k, wid, val, data, n) VALUES (?1, ?2, ?3, ?4, "
                                      "?5){}",
                                      verb, tail),
                          {k, w, val, data, n}});
      op.sets = {{"val", val}, {"data", data}, {"n", n}};
    } else if (kind < 50) {
      Value val = text_or_blob(rng, o);
      op.steps.push_back({"UPDATE kv SET wid = ?1, val = ?2 WHERE k = ?3", {w, val, k}});
      op.sets = {{"val", val}};
    } else if (kind < 57) {
      op.steps.push_back(
          {"UPDATE kv SET wid = ?1, n = coalesce(n, 0) / 2 + 1 WHERE k BETWEEN ?2 "
           "AND ?3",
           {w, k, k + uniform(rng, 1, 5)}});
    } else if (kind < 80) {
      int64_t hi = kind < 74 ? k : k + uniform(rng, 1, 4);
      std::string where = fmt::format("k BETWEEN {} AND {}", k, hi);
      op.steps.push_back(log_removed("kv", where, wid, t_ms, writer));
      op.steps.push_back({"DELETE FROM kv WHERE k BETWEEN ?1 AND ?2", {k, hi}});
      return op;  // nothing carries the write id
    } else {
      // Primary-key change; OR REPLACE overwrites a row already at the new key.
      int64_t to = uniform(rng, 0, o.kv_keys - 1);
      if (to == k) to = (k + 1) % o.kv_keys;
      op.steps.push_back(log_removed("kv", fmt::format("k = {}", k), wid, t_ms, writer));
      op.steps.push_back({fmt::format("UPDATE OR REPLACE kv SET {} = ?1, wid = ?2 WHERE k = ?3",
                                      kind < 92 ? "k" : "rowid"),
                          {to, w, k}});
    }
    set_added_columns(rng, op, "kv", schema, shell);
    op.steps.push_back(log_written("kv", wid, t_ms, writer));
  } else if (table < 80) {  // docs: TEXT PRIMARY KEY, WITHOUT ROWID
    const Value id = Text{pick(rng, odd_strings())};
    const int64_t kind = uniform(rng, 0, 99);
    if (kind < 35) {
      Value body = text_or_blob(rng, o), data = blob_value(rng);
      bool replace = kind >= 25;
      op.steps.push_back(
          {fmt::format("{} INTO docs (id, wid, body, data) VALUES (?1, ?2, ?3, ?4){}",
                       replace ? "REPLACE" : "INSERT",
                       replace ? ""
                               : " ON CONFLICT(id) DO UPDATE SET wid = excluded.wid, body = "
                                 "excluded.body, data = excluded.data"),
           {id, w, body, data}});
      op.sets = {{"body", body}, {"data", data}};
    } else if (kind < 60) {
      Value data = blob_value(rng);
      op.steps.push_back({"UPDATE docs SET wid = ?1, data = ?2 WHERE id = ?3", {w, data, id}});
      op.sets = {{"data", data}};
    } else if (kind < 82) {
      op.steps.push_back(log_removed("docs", "id = " + sql_literal(id), wid, t_ms, writer));
      op.steps.push_back({"DELETE FROM docs WHERE id = ?1", {id}});
      return op;
    } else {
      Value to = Text{pick(rng, odd_strings())};
      if (std::get<Text>(to).bytes == std::get<Text>(id).bytes) to = Text{"moved"};
      op.steps.push_back(log_removed("docs", "id = " + sql_literal(id), wid, t_ms, writer));
      op.steps.push_back(
          {"UPDATE OR REPLACE docs SET id = ?1, wid = ?2 WHERE id = ?3", {to, w, id}});
    }
    set_added_columns(rng, op, "docs", schema, shell);
    op.steps.push_back(log_written("docs", wid, t_ms, writer));
  } else {  // pairs: composite key (a, b), a column without affinity
    const int64_t a = uniform(rng, 0, o.pair_keys - 1);
    const Value b = Text{pick(rng, pair_names())};
    const int64_t kind = uniform(rng, 0, 99);
    if (kind < 40) {
      Value v = any_value(rng, shell, o);
      op.steps.push_back(
          {"INSERT INTO pairs (a, b, wid, v) VALUES (?1, ?2, ?3, ?4) ON CONFLICT "
           "(a, b) DO UPDATE SET wid = excluded.wid, v = excluded.v",
           {a, b, w, v}});
      op.sets = {{"v", v}};
    } else if (kind < 55) {
      Value v = any_value(rng, shell, o);
      op.steps.push_back({"UPDATE pairs SET wid = ?1, v = ?2 WHERE a = ?3", {w, v, a}});
      op.sets = {{"v", v}};
    } else if (kind < 75) {
      std::string where = fmt::format("a = {} AND b = {}", a, sql_literal(b));
      op.steps.push_back(log_removed("pairs", where, wid, t_ms, writer));
      op.steps.push_back({"DELETE FROM pairs WHERE a = ?1 AND b = ?2", {a, b}});
      return op;
    } else {
      // Change one part of the composite key.
      std::string where = fmt::format("a = {} AND b = {}", a, sql_literal(b));
      op.steps.push_back(log_removed("pairs", where, wid, t_ms, writer));
      if (kind < 88) {
        Value to = Text{pick(rng, pair_names())};
        if (std::get<Text>(to).bytes == std::get<Text>(b).bytes) to = Text{"moved"};
        op.steps.push_back({"UPDATE OR REPLACE pairs SET b = ?1, wid = ?2 WHERE a = ?3 AND b = ?4",
                            {to, w, a, b}});
      } else {
        int64_t to = (a + uniform(rng, 1, o.pair_keys - 1)) % o.pair_keys;
        op.steps.push_back({"UPDATE OR REPLACE pairs SET a = ?1, wid = ?2 WHERE a = ?3 AND b = ?4",
                            {to, w, a, b}});
      }
    }
    set_added_columns(rng, op, "pairs", schema, shell);
    op.steps.push_back(log_written("pairs", wid, t_ms, writer));
  }
  return op;
}

void Workload::record(const Txn& txn, bool committed) {
  std::lock_guard lk(mu_);
  for (size_t i = 0; i < txn.ops.size(); ++i) {
    const Op& op = txn.ops[i];
    auto& e = expected_[op.wid];
    for (const auto& [col, v] : op.sets) e.emplace_back(col, value_hash(v));
    bool in_savepoint =
        static_cast<int>(i) >= txn.savepoint_from && static_cast<int>(i) < txn.savepoint_to;
    if (!committed || in_savepoint) not_committed_.insert(op.wid);
  }
}

void Workload::finish_txn(const Txn& txn, bool commit, const std::string& error,
                          const std::string& context) {
  record(txn, error.empty() && commit);
  if (error.empty()) {
    ++(commit ? counters_.committed : counters_.rolled_back);
    return;
  }
  ++counters_.failed;
  if (error.find("database is locked") != std::string::npos) {
    ++counters_.locked;
  } else if (options_.schema_changes && is_schema_error(error)) {
    ++counters_.schema_errors;
    std::lock_guard lk(mu_);
    if (schema_errors_.size() < 10) schema_errors_.push_back(fmt::format("{}: {}", context, error));
  } else {
    ++counters_.errors;
    note_error(fmt::format("{}: {}", context, error));
  }
}

void Workload::note_error(const std::string& what) {
  std::lock_guard lk(mu_);
  if (errors_.size() < 20) errors_.push_back(what);
}

std::string Workload::run_in_process(void* handle, const Txn& txn) {
  Db db = Db::borrow(static_cast<sqlite3*>(handle));
  try {
    db.exec(txn.immediate ? "BEGIN IMMEDIATE" : "BEGIN");
    for (size_t i = 0; i < txn.ops.size(); ++i) {
      if (static_cast<int>(i) == txn.savepoint_from) db.exec("SAVEPOINT soak_sp");
      for (const auto& step : txn.ops[i].steps) {
        Stmt s = db.prepare(step.sql);
        for (size_t a = 0; a < step.args.size(); ++a) s.bind(static_cast<int>(a + 1), step.args[a]);
        s.run();
        ++counters_.statements;
      }
      if (static_cast<int>(i) + 1 == txn.savepoint_to)
        db.exec("ROLLBACK TO soak_sp; RELEASE soak_sp");
    }
    db.exec(txn.commit ? "COMMIT" : "ROLLBACK");
    return "";
  } catch (const std::exception& e) {
    if (db.in_transaction())
      sqlite3_exec(static_cast<sqlite3*>(handle), "ROLLBACK", nullptr, nullptr, nullptr);
    return e.what();
  }
}

std::string Workload::run_in_shell(int node, const Txn& txn, const std::string& tag) {
  std::string script = txn.immediate ? "BEGIN IMMEDIATE;\n" : "BEGIN;\n";
  for (size_t i = 0; i < txn.ops.size(); ++i) {
    if (static_cast<int>(i) == txn.savepoint_from) script += "SAVEPOINT soak_sp;\n";
    for (const auto& step : txn.ops[i].steps) script += render(step.sql, step.args) + ";\n";
    if (static_cast<int>(i) + 1 == txn.savepoint_to)
      script += "ROLLBACK TO soak_sp;\nRELEASE soak_sp;\n";
  }
  script += txn.commit ? "COMMIT;\n" : "ROLLBACK;\n";
  std::string path = fmt::format("{}/{}.sql", scratch_, tag);
  write_file(path, script);
  auto r = run_command(
      {"sqlite3", "-batch", "-bail", "-cmd", fmt::format(".timeout {}", options_.busy_timeout_ms),
       dbs_.at(static_cast<size_t>(node)), ".read " + path},
      120s);
  std::remove(path.c_str());
  counters_.statements += static_cast<int64_t>(txn.ops.size());
  if (r.exit_code == 0) return "";
  return r.output.empty() ? fmt::format("sqlite3 exited with {}", r.exit_code) : r.output;
}

void Workload::writer_loop(int node, int writer, Kind kind, uint64_t seed) {
  Rng rng(seed);
  sqlite3* handle = nullptr;
  const std::string& path = dbs_.at(static_cast<size_t>(node));
  if (sqlite3_open_v2(path.c_str(), &handle, SQLITE_OPEN_READWRITE, nullptr) != SQLITE_OK) {
    note_error(fmt::format("writer n{}w{}: cannot open {}", node + 1, writer, path));
    sqlite3_close_v2(handle);
    ++done_writers_;
    return;
  }
  struct Close {
    sqlite3* h;
    ~Close() { sqlite3_close_v2(h); }
  } close{handle};
  sqlite3_busy_timeout(handle, options_.busy_timeout_ms);
  sqlite3_extended_result_codes(handle, 1);
  if (kind == Kind::Extension) {
    sqlite3_enable_load_extension(handle, 1);
    char* err = nullptr;
    if (sqlite3_load_extension(handle, extension_path().c_str(), nullptr, &err) != SQLITE_OK) {
      note_error(fmt::format("writer n{}w{}: cannot load {}: {}", node + 1, writer,
                             extension_path(), err ? err : "?"));
      sqlite3_free(err);
    }
  } else {
    // Capture must not need anything but plain SQL.
    sqlite3_exec(handle, "PRAGMA trusted_schema = OFF", nullptr, nullptr, nullptr);
  }

  NodeSchema schema;
  int64_t schema_version = -1;
  for (int64_t txn_no = 0; !stop_; ++txn_no) {
    // Statements follow this node's current schema: re-read it when it changed.
    try {
      Db db = Db::borrow(handle);
      int64_t v = db.query_int("PRAGMA schema_version");
      if (v != schema_version) {
        schema = load_node_schema(handle);
        schema_version = v;
      }
    } catch (const std::exception& e) {
      note_error(fmt::format("writer n{}w{}: reading the schema: {}", node + 1, writer, e.what()));
    }
    if (options_.transactions_per_writer > 0 && txn_no >= options_.transactions_per_writer) break;
    bool shell = chance(rng, options_.shell_fraction);
    int statements = chance(rng, options_.multi_fraction)
                         ? static_cast<int>(uniform(rng, 2, options_.max_statements))
                         : 1;
    const int64_t t_ms = wall_clock_ms();
    Txn txn;
    txn.immediate = chance(rng, 0.7);
    txn.commit = !chance(rng, options_.rollback_fraction);
    for (int s = 0; s < statements; ++s)
      txn.ops.push_back(make_op(rng, fmt::format("n{}w{}t{}s{}", node + 1, writer, txn_no, s),
                                node * 100 + writer, t_ms, shell, schema));
    if (statements >= 3 && chance(rng, options_.savepoint_fraction)) {
      txn.savepoint_from = static_cast<int>(uniform(rng, 0, statements - 2));
      txn.savepoint_to = static_cast<int>(uniform(rng, txn.savepoint_from + 1, statements));
    }
    ++counters_.transactions;
    std::string error;
    if (shell) {
      ++counters_.shell_runs;
      error = run_in_shell(node, txn, fmt::format("n{}w{}t{}", node + 1, writer, txn_no));
    } else {
      ++(kind == Kind::Extension ? counters_.extension_txns : counters_.plain_txns);
      error = run_in_process(handle, txn);
      if (kind == Kind::Extension && error.empty() && chance(rng, 0.01)) {
        // The extension's own functions, from an application connection, mid-run.
        sqlite3_exec(handle, "SELECT harmony_status(), harmony_checksum('kv')", nullptr, nullptr,
                     nullptr);
      }
    }
    finish_txn(
        txn, txn.commit, error,
        fmt::format("n{}w{} txn {}{}", node + 1, writer, txn_no, shell ? " (sqlite3 shell)" : ""));
    auto think =
        std::chrono::milliseconds(uniform(rng, options_.think_min_ms, options_.think_max_ms));
    for (auto until = std::chrono::steady_clock::now() + think;
         !stop_ && std::chrono::steady_clock::now() < until;)
      std::this_thread::sleep_for(std::min<std::chrono::milliseconds>(think, 50ms));
  }
  ++done_writers_;
}

void Workload::long_transaction(int node, std::chrono::milliseconds hold, uint64_t seed,
                                bool commit) {
  Rng rng(seed);
  static std::atomic<int> serial{0};
  const int writer = 90 + serial++ % 10;
  const int64_t t_ms = wall_clock_ms();
  Txn txn;
  txn.immediate = true;
  txn.commit = commit;
  sqlite3* handle = nullptr;
  sqlite3_open_v2(dbs_.at(static_cast<size_t>(node)).c_str(), &handle, SQLITE_OPEN_READWRITE,
                  nullptr);
  struct Close {
    sqlite3* h;
    ~Close() { sqlite3_close_v2(h); }
  } close{handle};
  sqlite3_busy_timeout(handle, 30000);
  sqlite3_extended_result_codes(handle, 1);
  std::string error;
  Db db = Db::borrow(handle);
  int statements = static_cast<int>(uniform(rng, 1, 4));
  int64_t no = uniform(rng, 0, INT32_MAX);
  ++counters_.long_txns;
  ++counters_.transactions;
  try {
    const NodeSchema schema = load_node_schema(handle);
    for (int s = 0; s < statements; ++s)
      txn.ops.push_back(make_op(rng, fmt::format("n{}L{}t{}s{}", node + 1, writer, no, s),
                                node * 100 + writer, t_ms, false, schema));
    db.exec("BEGIN IMMEDIATE");
    for (const auto& op : txn.ops)
      for (const auto& step : op.steps) {
        Stmt s = db.prepare(step.sql);
        for (size_t a = 0; a < step.args.size(); ++a) s.bind(static_cast<int>(a + 1), step.args[a]);
        s.run();
        ++counters_.statements;
      }
    std::this_thread::sleep_for(hold);  // the write lock is held all along
    db.exec(commit ? "COMMIT" : "ROLLBACK");
  } catch (const std::exception& e) {
    error = e.what();
    sqlite3_exec(handle, "ROLLBACK", nullptr, nullptr, nullptr);
  }
  finish_txn(txn, commit, error, fmt::format("long transaction on node {}", node + 1));
}

std::unordered_map<std::string, std::vector<std::pair<std::string, uint64_t>>> Workload::expected()
    const {
  std::lock_guard lk(mu_);
  return expected_;
}

std::set<std::string> Workload::not_committed() const {
  std::lock_guard lk(mu_);
  return not_committed_;
}

std::vector<std::string> Workload::error_samples() const {
  std::lock_guard lk(mu_);
  return errors_;
}

std::vector<std::string> Workload::schema_error_samples() const {
  std::lock_guard lk(mu_);
  return schema_errors_;
}

const char* Workload::ddl_via_name(DdlVia via) {
  switch (via) {
    case DdlVia::Shell:
      return "sqlite3 shell";
    case DdlVia::Plain:
      return "plain connection";
    case DdlVia::Extension:
      return "connection with the extension loaded";
  }
  return "?";
}

std::string Workload::run_ddl(int node, const std::string& ddl, DdlVia via,
                              const std::string& table, int rows, uint64_t seed) {
  static std::atomic<int> serial{0};
  const int writer = 80 + serial++ % 10;
  const int64_t t_ms = wall_clock_ms();
  Txn txn;
  for (int r = 0; r < rows; ++r) {
    Op op;
    op.wid = fmt::format("n{}C{}s{}", node + 1, seed % 1000000, r);
    Value v = Text{fmt::format("right after CREATE on node {}", node + 1)};
    op.steps.push_back({fmt::format("INSERT INTO {} (id, wid, v) VALUES (?1, ?2, ?3)", table),
                        {int64_t{r}, Text{op.wid}, v}});
    op.sets = {{"v", v}};
    op.steps.push_back(log_written(table, op.wid, t_ms, node * 100 + writer));
    txn.ops.push_back(std::move(op));
  }
  const std::string what =
      fmt::format("schema change on node {} ({})", node + 1, ddl_via_name(via));
  if (via == DdlVia::Shell) {
    // DDL and the rows in one shell run: the rows commit right after the CREATE.
    std::string script = ddl + ";\n";
    if (!txn.ops.empty()) {
      script += "BEGIN IMMEDIATE;\n";
      for (const auto& op : txn.ops)
        for (const auto& step : op.steps) script += render(step.sql, step.args) + ";\n";
      script += "COMMIT;\n";
    }
    std::string path = fmt::format("{}/ddl-{}.sql", scratch_, writer);
    write_file(path, script);
    auto r = run_command(
        {"sqlite3", "-batch", "-bail", "-cmd", fmt::format(".timeout {}", options_.busy_timeout_ms),
         dbs_.at(static_cast<size_t>(node)), ".read " + path},
        120s);
    std::remove(path.c_str());
    std::string error =
        r.exit_code == 0 ? "" : (r.output.empty() ? fmt::format("exit {}", r.exit_code) : r.output);
    if (!txn.ops.empty()) {
      ++counters_.transactions;
      ++counters_.shell_runs;
      finish_txn(txn, true, error, what);
    }
    return error;
  }
  sqlite3* handle = nullptr;
  sqlite3_open_v2(dbs_.at(static_cast<size_t>(node)).c_str(), &handle, SQLITE_OPEN_READWRITE,
                  nullptr);
  struct Close {
    sqlite3* h;
    ~Close() { sqlite3_close_v2(h); }
  } close{handle};
  sqlite3_busy_timeout(handle, options_.busy_timeout_ms);
  sqlite3_extended_result_codes(handle, 1);
  if (via == DdlVia::Extension) {
    sqlite3_enable_load_extension(handle, 1);
    char* err = nullptr;
    if (sqlite3_load_extension(handle, extension_path().c_str(), nullptr, &err) != SQLITE_OK) {
      std::string e = fmt::format("cannot load {}: {}", extension_path(), err ? err : "?");
      sqlite3_free(err);
      return e;
    }
  }
  char* err = nullptr;
  if (sqlite3_exec(handle, ddl.c_str(), nullptr, nullptr, &err) != SQLITE_OK) {
    std::string e = err ? err : "?";
    sqlite3_free(err);
    return e;
  }
  if (txn.ops.empty()) return "";
  ++counters_.transactions;
  ++(via == DdlVia::Extension ? counters_.extension_txns : counters_.plain_txns);
  std::string error = run_in_process(handle, txn);
  finish_txn(txn, true, error, what);
  return error;
}

}  // namespace harmony::test
