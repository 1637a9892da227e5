// Finding tables written by application triggers on captured tables (see app_triggers.hpp):
// a small tokenizer for the CREATE TRIGGER text SQLite keeps in sqlite_schema, and the
// recognition of the four writing statements and of the __harmony_mute guard.
#include "shared/app_triggers.hpp"

#include <fmt/format.h>

#include <cctype>

#include "shared/capture_registry.hpp"
#include "shared/names.hpp"
#include "shared/schema.hpp"

namespace harmony {

namespace {

struct Token {
  enum Kind { Word, Ident, String, Punct } kind;  // Ident: "quoted", `quoted` or [quoted]
  std::string text;                               // unquoted for Ident
  bool is(std::string_view keyword) const { return kind == Word && same_ident(text, keyword); }
  bool punct(char c) const { return kind == Punct && text.size() == 1 && text[0] == c; }
  bool name() const { return kind == Word || kind == Ident; }
};

// Splits SQL into tokens; comments and whitespace are dropped. Unterminated quotes or comments
// end the text (SQLite stored it, so it was valid; this only guards against reading past it).
std::vector<Token> tokenize(const std::string& sql) {
  std::vector<Token> out;
  size_t i = 0;
  const size_t n = sql.size();
  auto quoted = [&](char close, Token::Kind kind) {
    std::string text;
    ++i;
    while (i < n) {
      if (sql[i] == close) {
        if (close != ']' && i + 1 < n && sql[i + 1] == close) {  // doubled quote
          text += close;
          i += 2;
          continue;
        }
        ++i;
        break;
      }
      text += sql[i++];
    }
    out.push_back({kind, std::move(text)});
  };
  while (i < n) {
    const char c = sql[i];
    if (std::isspace(static_cast<unsigned char>(c))) {
      ++i;
    } else if (c == '-' && i + 1 < n && sql[i + 1] == '-') {
      while (i < n && sql[i] != '\n') ++i;
    } else if (c == '/' && i + 1 < n && sql[i + 1] == '*') {
      const size_t end = sql.find("*/", i + 2);
      i = end == std::string::npos ? n : end + 2;
    } else if (c == '\'') {
      quoted('\'', Token::String);
    } else if (c == '"') {
      quoted('"', Token::Ident);
    } else if (c == '`') {
      quoted('`', Token::Ident);
    } else if (c == '[') {
      quoted(']', Token::Ident);
    } else if (std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '$' ||
               static_cast<unsigned char>(c) >= 0x80) {
      const size_t start = i;
      while (i < n && (std::isalnum(static_cast<unsigned char>(sql[i])) || sql[i] == '_' ||
                       sql[i] == '$' || static_cast<unsigned char>(sql[i]) >= 0x80))
        ++i;
      out.push_back({Token::Word, sql.substr(start, i - start)});
    } else {
      out.push_back({Token::Punct, std::string(1, c)});
      ++i;
    }
  }
  return out;
}

using Range = std::pair<size_t, size_t>;  // [first, last) into the token vector

// True when the range holds `NOT EXISTS ( ... FROM __harmony_mute ... )` and no OR at the same
// parenthesis depth could make the condition true anyway. Anything else (EXISTS without NOT,
// the mute table elsewhere, an OR beside it) is not taken as a guard.
bool has_mute_guard(const std::vector<Token>& t, Range r) {
  int depth = 0;
  std::vector<int> guard_depths;
  std::vector<int> or_depths;
  for (size_t i = r.first; i < r.second; ++i) {
    if (t[i].punct('(')) ++depth;
    if (t[i].punct(')')) --depth;
    if (t[i].is("OR")) or_depths.push_back(depth);
    if (!(t[i].is("NOT") && i + 2 < r.second && t[i + 1].is("EXISTS") && t[i + 2].punct('(')))
      continue;
    int inner = 0;
    for (size_t j = i + 2; j < r.second; ++j) {
      if (t[j].punct('(')) ++inner;
      if (t[j].punct(')') && --inner == 0) break;
      if (t[j].name() && same_ident(t[j].text, names::kMute) && t[j - 1].is("FROM"))
        guard_depths.push_back(depth);
    }
  }
  for (int g : guard_depths) {
    bool or_beside = false;
    for (int o : or_depths) or_beside = or_beside || o == g;
    if (!or_beside) return true;
  }
  return false;
}

// The table name at t[i] (the last part of schema.table); empty when there is none.
std::string name_at(const std::vector<Token>& t, size_t i, size_t end) {
  if (i >= end || !t[i].name()) return {};
  if (i + 2 < end && t[i + 1].punct('.') && t[i + 2].name()) return t[i + 2].text;
  return t[i].text;
}

// The table one body statement writes, or empty.
std::string statement_target(const std::vector<Token>& t, Range r) {
  size_t i = r.first;
  if (i >= r.second) return {};
  auto skip_or_conflict = [&](size_t k) {  // INSERT OR IGNORE / UPDATE OR REPLACE ...
    return k + 1 < r.second && t[k].is("OR") ? k + 2 : k;
  };
  if (t[i].is("INSERT")) {
    i = skip_or_conflict(i + 1);
    return i < r.second && t[i].is("INTO") ? name_at(t, i + 1, r.second) : std::string();
  }
  if (t[i].is("REPLACE"))
    return i + 1 < r.second && t[i + 1].is("INTO") ? name_at(t, i + 2, r.second) : std::string();
  if (t[i].is("UPDATE")) {
    i = skip_or_conflict(i + 1);
    return i < r.second && !t[i].is("SET") ? name_at(t, i, r.second) : std::string();
  }
  if (t[i].is("DELETE"))
    return i + 1 < r.second && t[i + 1].is("FROM") ? name_at(t, i + 2, r.second) : std::string();
  return {};
}

}  // namespace

TriggerBody parse_trigger_writes(const std::string& sql) {
  TriggerBody out;
  const std::vector<Token> t = tokenize(sql);
  // CREATE [TEMP] TRIGGER [IF NOT EXISTS] name ... ON table [FOR EACH ROW] [WHEN expr] BEGIN.
  // The name and the table may be keywords SQLite accepts as names ("begin"), so BEGIN is
  // looked for only after ON and the table name.
  size_t i = 0;
  while (i < t.size() && !t[i].is("TRIGGER")) ++i;
  i += 2;  // past TRIGGER and (at least) the first token of the name
  while (i < t.size() && !t[i].is("ON")) ++i;
  i += 2;  // past ON and the table name
  if (i < t.size() && t[i].punct('.')) i += 2;
  size_t when = t.size();
  while (i < t.size() && !t[i].is("BEGIN")) {
    if (t[i].is("WHEN") && when == t.size()) when = i;
    ++i;
  }
  if (i >= t.size()) return out;
  const bool when_guard = when < i && has_mute_guard(t, {when, i});
  size_t end = t.size();
  while (end > i + 1 && !t[end - 1].is("END")) --end;
  if (end > i + 1) --end;  // the trigger's END
  for (size_t s = i + 1; s < end;) {
    size_t e = s;
    while (e < end && !t[e].punct(';')) ++e;
    std::string target = statement_target(t, {s, e});
    if (!target.empty()) {
      const bool guarded = when_guard || has_mute_guard(t, {s, e});
      bool seen = false;
      for (auto& [name, g] : out.targets)
        if (same_ident(name, target)) {
          seen = true;
          g = g && guarded;  // one unguarded write is enough to diverge
        }
      if (!seen) out.targets.emplace_back(std::move(target), guarded);
    }
    s = e + 1;
  }
  return out;
}

std::vector<AppTriggerWrite> app_trigger_writes(Db& db) {
  std::vector<AppTriggerWrite> out;
  if (db.query_int(fmt::format("SELECT count(*) FROM sqlite_schema WHERE type = 'table' AND "
                               "name = '{}'",
                               names::kTables)) == 0)
    return out;
  const std::vector<CapturedTable> captured = captured_tables(db);
  auto is_captured = [&](const std::string& name) {
    for (const auto& c : captured)
      if (same_ident(c.name, name)) return true;
    return false;
  };
  auto s = db.prepare(
      "SELECT name, tbl_name, sql FROM sqlite_schema WHERE type = 'trigger' AND sql IS NOT NULL "
      "ORDER BY name");
  while (s.step()) {
    const std::string trigger = s.column_text(0);
    const std::string source = s.column_text(1);
    if (names::is_reserved(trigger) || !is_captured(source)) continue;  // ours, or not captured
    for (auto& [target, guarded] : parse_trigger_writes(s.column_text(2)).targets) {
      if (names::is_reserved(target)) continue;
      AppTriggerWrite w;
      w.trigger = trigger;
      w.source = source;
      w.target = target;
      w.target_captured = is_captured(target);
      w.guarded = guarded;
      out.push_back(std::move(w));
    }
  }
  return out;
}

std::string describe_divergence(const AppTriggerWrite& w) {
  return fmt::format(
      "trigger {} on replicated table {} writes replicated table {}: it also fires when rows "
      "from other nodes are applied here, so {} diverges between nodes. Either guard the trigger "
      "with WHEN NOT EXISTS (SELECT 1 FROM {}) (the replicator fills that table while it applies) "
      "and keep {} replicated, or add {} to exclude_tables so each node fills it locally "
      "(docs/operations.md, \"Tables written by triggers\")",
      w.trigger, w.source, w.target, w.target, names::kMute, w.target, w.target);
}

std::vector<std::string> app_trigger_warnings(Db& db) {
  std::vector<std::string> out;
  for (const auto& w : app_trigger_writes(db))
    if (w.diverges()) out.push_back(describe_divergence(w));
  return out;
}

}  // namespace harmony
