// Last-writer-wins apply of remote batches (see apply.hpp).
#include "shared/apply.hpp"

#include <algorithm>
#include <cstdint>
#include <string_view>
#include <variant>
#include "shared/content_digest.hpp"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "shared/dead_letters.hpp"
#include "shared/fold.hpp"
#include "shared/hlc.hpp"

namespace harmony {

ApplyStats& ApplyStats::operator+=(const ApplyStats& o) {
  applied += o.applied;
  skipped_older += o.skipped_older;
  dead_lettered += o.dead_lettered;
  held += o.held;
  values_left_out += o.values_left_out;
  max_hlc = std::max(max_hlc, o.max_hlc);
  conflicts += o.conflicts;
  unique_losers += o.unique_losers;
  return *this;
}

namespace {

// How a primary key column compares text, for checking a row's key against its values. Only
// these three are allowed in a captured table's key (schema.cpp, ineligibility).
enum class KeyCollation { Binary, NoCase, RTrim };

KeyCollation key_collation(const std::string& name) {
  if (same_ident(name, "NOCASE")) return KeyCollation::NoCase;
  if (same_ident(name, "RTRIM")) return KeyCollation::RTrim;
  return KeyCollation::Binary;
}

std::string_view without_trailing_spaces(std::string_view s) {
  while (!s.empty() && s.back() == ' ') s.remove_suffix(1);
  return s;
}

// Whether `key` (from row.key) and `value` (from row.values) name the same row under the key
// column's collation, as SQLite's `=` on that column would. The sender reads both from one row,
// but the row-version table may keep an earlier spelling of a NOCASE/RTRIM key (outbox.cpp), so
// text is compared as the collation does. Storage classes must match: both come from the same
// SQLite value on the sender, and a TEXT '5' key with an INTEGER 5 value would record the
// version under a key the row does not have.
bool same_key_value(const Value& key, const Value& value, KeyCollation coll) {
  if (key.index() != value.index()) return false;
  if (const auto* k = std::get_if<Text>(&key)) {
    const std::string_view a = k->bytes, b = std::get<Text>(value).bytes;
    switch (coll) {
      case KeyCollation::Binary:
        return a == b;
      case KeyCollation::RTrim:
        return without_trailing_spaces(a) == without_trailing_spaces(b);
      case KeyCollation::NoCase:
        // SQLite's NOCASE folds ASCII letters only.
        return same_ident(a, b);
    }
    return false;
  }
  if (const auto* k = std::get_if<double>(&key)) return *k == std::get<double>(value);
  return key == value;  // NULL, INTEGER, BLOB: exact
}

// A value for a dead letter's reason: short, and without the raw bytes a peer chose.
std::string describe(const Value& v) {
  constexpr size_t kMaxShownBytes = 32;  // enough to recognise a key, short in a reason
  if (is_null(v)) return "NULL";
  if (const auto* i = std::get_if<int64_t>(&v)) return fmt::format("{}", *i);
  if (const auto* d = std::get_if<double>(&v)) return fmt::format("{}", *d);
  if (const auto* b = std::get_if<Blob>(&v))
    return fmt::format("BLOB of {} bytes", b->bytes.size());
  const std::string& t = std::get<Text>(v).bytes;
  std::string out = "'";
  for (size_t i = 0; i < t.size() && i < kMaxShownBytes; ++i) {
    const auto c = static_cast<unsigned char>(t[i]);
    out +=
        c >= 0x20 && c < 0x7f ? std::string(1, static_cast<char>(c)) : fmt::format("\\x{:02x}", c);
  }
  return out + (t.size() > kMaxShownBytes ? "'..." : "'");
}

}  // namespace

// Prepared statements for one received table entry (name, columns, key columns), and where
// each local primary key column sits in the rows it carries.
struct Applier::TableStatements {
  const CapturedTable* table = nullptr;
  Stmt local_version;  // SELECT version, node, dirty, deleted FROM rows WHERE key
  Stmt upsert;         // INSERT INTO t (cols) VALUES (...) ON CONFLICT (pk) DO UPDATE ...
  Stmt remove;         // DELETE FROM t WHERE pk
  Stmt record;         // INSERT INTO rows ... ON CONFLICT DO UPDATE (version, node, deleted)
  Stmt tombstone;      // the same for a delete issued here: dirty, so it is published
  Stmt read_row;       // SELECT every local column FROM t WHERE pk (conflict log)
  std::vector<std::string> local_columns;  // read_row's columns, by name
  // Received column index -> local column it writes (nullptr: left out or generated).
  std::vector<const ColumnInfo*> targets;
  // The UNIQUE indexes other than the primary key, as statements finding the rows that hold a
  // received row's values (prepared when a race first needs them).
  struct UniqueIndex {
    Stmt holders;                 // SELECT pk FROM t WHERE c1 = ?1 COLLATE x AND ...
    std::vector<size_t> columns;  // index of each indexed column within the received columns
  };
  bool uniques_loaded = false;
  bool uniques_supported = true;  // false: an expression or partial index, no rule applies
  std::vector<UniqueIndex> uniques;
  size_t column_count = 0;            // BatchTable::columns.size(): values a live row must carry
  std::vector<const ColumnInfo*> pk;  // local primary key columns, in PK order
  std::vector<KeyCollation> pk_collation;
  std::vector<size_t> key_positions;  // index of each local PK column within the received key
  // Index of each local PK column within the received columns, or kAbsent: the upsert writes the
  // key from the values, so a live row must carry every key column there too.
  static constexpr size_t kAbsent = static_cast<size_t>(-1);
  std::vector<size_t> value_positions;
  // Received values the upsert binds: ?1..?bound_values (values of dropped or generated columns
  // in between are simply not referenced).
  size_t bound_values = 0;
  std::vector<size_t> left_out;  // received columns this node has dropped

  // Why `row` of table entry `bt` cannot be applied with these statements, or "" when it can.
  // Every index the apply path reads from row.key and row.values is checked here first. Runs
  // for every row: it only compares, and allocates only for a refusal.
  std::string refusal(const RowChange& row, const BatchTable& bt) const {
    if (row.key.size() != key_positions.size())
      return fmt::format("table \"{}\": row carries {} key values for a {}-column primary key",
                         bt.name, row.key.size(), key_positions.size());
    if (row.deleted) return {};  // a tombstone is its key alone
    if (row.values.size() != column_count)
      return fmt::format("table \"{}\": row carries {} values for {} columns", bt.name,
                         row.values.size(), column_count);
    for (size_t i = 0; i < pk.size(); ++i) {
      // The upsert writes the key from the values and the version is recorded under row.key:
      // they must be the same row, or the version would describe a row that does not exist.
      if (value_positions[i] == kAbsent)
        return fmt::format(
            "table \"{}\": row omits primary key column \"{}\" from its columns, so its key "
            "cannot be written",
            bt.name, pk[i]->name);
      const Value& k = row.key[key_positions[i]];
      const Value& v = row.values[value_positions[i]];
      if (!same_key_value(k, v, pk_collation[i]))
        return fmt::format(
            "table \"{}\": primary key column \"{}\": key value {} differs from the row's value {}",
            bt.name, pk[i]->name, describe(k), describe(v));
    }
    return {};
  }
};

Applier::Applier(Db& db, uint64_t self_node, std::vector<CapturedTable> tables,
                 int64_t max_drift_ms)
    : db_(db), self_(self_node), tables_(std::move(tables)), max_drift_ms_(max_drift_ms) {}

Applier::~Applier() = default;

void Applier::begin() {
  // Prepared once: parsing these two per transaction was a tenth of a 1-row batch's apply.
  if (!mute_) {
    mute_ = db_.prepare("INSERT INTO __harmony_mute(flag) VALUES (1)");
    unmute_ = db_.prepare("DELETE FROM __harmony_mute");
  }
  mute_.reset();
  mute_.run();
  open_ = true;
  conflicts_in_tx_ = 0;
  if (!log_probe_) log_probe_ = std::make_unique<LogProbe>(db_, tables_);
  fold_all(db_, tables_, self_, max_drift_ms_, log_probe_.get());
  // Anti-entropy: rows written here change the content digest too. Its tables are created after
  // this Applier at start-up, so looked up per transaction until both exist; from then on the
  // same statements serve (they are never dropped), which saves ~0.3M instructions per
  // transaction (docs/performance.md). Bucket sums are written in finish().
  if (!digest_ || !digest_->complete())
    digest_ = std::make_unique<DigestUpdater>(db_, DigestUpdater::Writes::Batched);
  digest_->discard();  // sums of an attempt that rolled back (the caller retries from begin())
  clock_ = load_clock(db_);
  // The key replicator/sync/membership.hpp (kTombstoneHorizonKey) writes.
  horizon_ = use_horizon_ ? meta_get_int(db_, "tombstone_horizon", 0) : 0;
  if (!history_loaded_) {
    // Once per schema (the caller builds a new Applier after DDL): what became of the columns
    // this node had before, so rows from nodes on another schema version map by name.
    record_column_history(db_, tables_);
    history_ = load_column_history(db_);
    history_loaded_ = true;
  }
}

void Applier::finish() {
  if (conflicts_recorded_) prune_conflicts(db_, wall_clock_ms(), conflict_limits_);
  conflicts_recorded_ = false;
  if (digest_) digest_->flush();
  store_clock(db_, clock_);
  if (unmute_) {
    unmute_.reset();
    unmute_.run();
  } else {
    db_.exec("DELETE FROM __harmony_mute");  // finish() without begin(): still unmute
  }
  open_ = false;
}

Applier::TableStatements* Applier::statements_for(const BatchTable& bt, Refusal& why_not) {
  if (auto it = cache_.find(bt); it != cache_.end()) return it->second.get();
  try {
    return prepare_statements(bt, why_not);
  } catch (const SqliteError& e) {
    if (is_transient(e)) throw;
    // The local table is not what the statements assume (a trigger or constraint we cannot
    // see through the schema): wait for the schema to change rather than lose the rows.
    why_not = {fmt::format("table \"{}\": cannot prepare statements: {}", bt.name, e.what()),
               HoldKind::Column};
    return nullptr;
  }
}

Applier::TableStatements* Applier::prepare_statements(const BatchTable& bt, Refusal& why_not) {
  const CapturedTable* local = nullptr;
  for (const auto& t : tables_)
    if (same_ident(t.name, bt.name)) local = &t;
  if (!local) {
    why_not = {fmt::format("table \"{}\" is not captured on this node (yet)", bt.name),
               HoldKind::Table};
    return nullptr;
  }
  static const ColumnHistory kNoHistory;
  auto h = history_.find(local->id);
  const ColumnHistory& history = h != history_.end() ? h->second : kNoHistory;
  // Which local column a received column name stands for: itself, or what it was renamed to
  // here. nullptr with `dropped` set: this node dropped it, so its values are left out.
  auto local_column = [&](const std::string& name, bool& dropped) -> const ColumnInfo* {
    dropped = false;
    if (const ColumnInfo* c = local->info.column(name)) return c;
    auto r = history.resolve(name);
    if (r.fate == ColumnHistory::Fate::Dropped) dropped = true;
    return r.fate == ColumnHistory::Fate::Renamed ? local->info.column(r.now) : nullptr;
  };
  const auto pk = local->info.primary_key();
  // The received key columns must be the local primary key: the same columns, each once. Their
  // order may differ (rows are mapped by name below); the sender sends PK order (outbox.cpp).
  // A different key is a schema this node does not have (yet): the rows wait for it.
  if (pk.size() != bt.key_columns.size()) {
    why_not = {
        fmt::format(
            "table \"{}\": received primary key ({} columns) differs from the local one ({})",
            bt.name, bt.key_columns.size(), pk.size()),
        HoldKind::Column};
    return nullptr;
  }
  auto st = std::make_unique<TableStatements>();
  st->table = local;
  st->pk = pk;
  st->column_count = bt.columns.size();
  std::vector<const ColumnInfo*> targets(bt.columns.size(), nullptr);
  for (size_t i = 0; i < bt.columns.size(); ++i) {
    // A column named twice would make "the key's value" ambiguous (and the INSERT invalid).
    for (size_t j = 0; j < i; ++j)
      if (same_ident(bt.columns[j], bt.columns[i])) {
        why_not = {
            fmt::format("table \"{}\": column \"{}\" is listed twice", bt.name, bt.columns[i]),
            std::nullopt};
        return nullptr;
      }
    bool dropped = false;
    const ColumnInfo* c = local_column(bt.columns[i], dropped);
    if (!c && !dropped) {
      why_not = {fmt::format("table \"{}\": column \"{}\" does not exist on this node (yet)",
                             bt.name, bt.columns[i]),
                 HoldKind::Column};
      return nullptr;
    }
    if (dropped) {
      st->left_out.push_back(i);
      continue;
    }
    for (size_t j = 0; j < i; ++j)
      if (targets[j] == c) {
        why_not = {fmt::format("table \"{}\": columns \"{}\" and \"{}\" are both \"{}\" here",
                               bt.name, bt.columns[j], bt.columns[i], c->name),
                   HoldKind::Column};
        return nullptr;
      }
    // A column computed here (GENERATED) is not written: this node computes its own value.
    if (!c->generated) targets[i] = c;
  }
  for (const auto* c : pk) {
    // Equal sizes and every local key column found once: a permutation of the local key.
    size_t pos = TableStatements::kAbsent;
    for (size_t i = 0; i < bt.key_columns.size(); ++i) {
      bool dropped = false;
      if (local_column(bt.key_columns[i], dropped) == c) pos = i;
    }
    if (pos == TableStatements::kAbsent) {
      why_not = {
          fmt::format("table \"{}\": received primary key does not contain local key column \"{}\"",
                      bt.name, c->name),
          HoldKind::Column};
      return nullptr;
    }
    st->key_positions.push_back(pos);
    size_t vpos = TableStatements::kAbsent;
    for (size_t i = 0; i < bt.columns.size(); ++i)
      if (targets[i] == c) vpos = i;
    st->value_positions.push_back(vpos);
    st->pk_collation.push_back(key_collation(c->collation));
  }
  std::vector<std::string> cols, params, updates;
  for (size_t i = 0; i < bt.columns.size(); ++i) {
    const ColumnInfo* c = targets[i];
    if (!c) continue;
    std::string q = quote_ident(c->name);
    cols.push_back(q);
    params.push_back(fmt::format("?{}", i + 1));
    st->bound_values = i + 1;
    // Key columns are rewritten only when their collation lets equal keys differ in bytes
    // (NOCASE, RTRIM), so the replica stores the writer's spelling.
    if (c->pk_position == 0 || !same_ident(c->collation, "BINARY"))
      updates.push_back(q + " = excluded." + q);
  }
  // A received row is the whole row as its writer had it. Columns the writer's schema does not
  // have (added here first, or dropped there first) take their default, as they would in a row
  // inserted here: otherwise the node that had the column would keep an older value that the
  // nodes without it never saw, and the nodes would differ once all have the same schema.
  for (const auto& c : local->info.columns) {
    if (c.generated || c.pk_position != 0) continue;
    if (std::find(targets.begin(), targets.end(), &c) != targets.end()) continue;
    if (c.default_sql.empty() && c.not_null) continue;  // no value to reset it to: keep it
    updates.push_back(quote_ident(c.name) + " = " +
                      (c.default_sql.empty() ? std::string("NULL") : "(" + c.default_sql + ")"));
  }
  std::vector<std::string> pk_cols = quoted_pk(local->info);
  std::string conflict = updates.empty()
                             ? "DO NOTHING"
                             : "DO UPDATE SET " + fmt::format("{}", fmt::join(updates, ", "));
  const std::string table = quote_ident(local->name);
  if (!cols.empty())
    st->upsert = db_.prepare(fmt::format("INSERT INTO {} ({}) VALUES ({}) ON CONFLICT ({}) {}",
                                         table, fmt::join(cols, ", "), fmt::join(params, ", "),
                                         fmt::join(pk_cols, ", "), conflict));
  st->remove = db_.prepare(fmt::format("DELETE FROM {} WHERE {}", table, key_match(pk_cols, 1)));
  const auto keys = key_columns(pk.size());
  st->local_version = db_.prepare(fmt::format(
      "SELECT version, node, dirty, deleted FROM {} WHERE {}", local->rows, key_match(keys, 1)));
  std::string key_params;
  for (size_t i = 1; i <= keys.size(); ++i) key_params += fmt::format("?{}, ", i);
  const size_t n = keys.size();
  st->record = db_.prepare(
      fmt::format("INSERT INTO {} ({}, version, node, deleted, dirty) VALUES ({}?{}, ?{}, ?{}, 0) "
                  "ON CONFLICT DO UPDATE SET version = excluded.version, node = excluded.node, "
                  "deleted = excluded.deleted, dirty = 0",
                  local->rows, fmt::join(keys, ", "), key_params, n + 1, n + 2, n + 3));
  st->tombstone = db_.prepare(
      fmt::format("INSERT INTO {} ({}, version, node, deleted, dirty) VALUES ({}?{}, ?{}, 1, 1) "
                  "ON CONFLICT DO UPDATE SET version = excluded.version, node = excluded.node, "
                  "deleted = 1, dirty = 1",
                  local->rows, fmt::join(keys, ", "), key_params, n + 1, n + 2));
  std::vector<std::string> all_cols;
  for (const auto& c : local->info.columns) {
    st->local_columns.push_back(c.name);
    all_cols.push_back(quote_ident(c.name));
  }
  st->read_row = db_.prepare(fmt::format("SELECT {} FROM {} WHERE {}", fmt::join(all_cols, ", "),
                                         table, key_match(pk_cols, 1)));
  st->targets = targets;
  auto* raw = st.get();
  cache_.emplace(Layout{bt.name, bt.columns, bt.key_columns}, std::move(st));
  return raw;
}

namespace {

bool unique_violation(const SqliteError& e) {
  return e.code() == SQLITE_CONSTRAINT_UNIQUE;
}

}  // namespace

// A row of the batch that passed the version check, with its statements and local key.
struct Applier::PendingRow {
  const RowChange* row = nullptr;
  size_t index = 0;  // in Batch::rows
  TableStatements* st = nullptr;
  std::vector<Value> key;
  const std::string* table = nullptr;      // the batch's table name (the batch outlives the row)
  std::string error;                       // the last failure, for the dead letter
  std::optional<ConflictRecord> conflict;  // recorded once the row is written
  // What {rows} held for the key when the version check read it, for the digest: valid while
  // nothing else of the batch was recorded in between (the first pass), not for retried rows.
  bool before_known = false;
  std::optional<RowVersion> before;
};

void Applier::remove_row(const PendingRow& p) {
  p.st->remove.reset();
  for (size_t i = 0; i < p.key.size(); ++i) p.st->remove.bind(static_cast<int>(i + 1), p.key[i]);
  p.st->remove.run();
}

void Applier::write_row(const PendingRow& p) {
  if (p.row->deleted) {
    remove_row(p);
  } else if (p.st->upsert) {
    p.st->upsert.reset();
    for (size_t i = 0; i < p.st->bound_values; ++i)
      p.st->upsert.bind(static_cast<int>(i + 1), p.row->values[i]);
    p.st->upsert.run();
  }
}

std::optional<RowVersion> Applier::digest_before(TableStatements& st,
                                                 const std::vector<Value>& key) {
  if (!digest_ || !digest_->active()) return std::nullopt;
  st.local_version.reset();
  for (size_t i = 0; i < key.size(); ++i) st.local_version.bind(static_cast<int>(i + 1), key[i]);
  std::optional<RowVersion> out;
  if (st.local_version.step())
    out = RowVersion{st.local_version.column_int(0),
                     static_cast<uint64_t>(st.local_version.column_int(1)),
                     st.local_version.column_int(3) != 0};
  st.local_version.reset();
  return out;
}

void Applier::record_row(const PendingRow& p, uint64_t origin) {
  // The version check's read when it is still valid: a second lookup per row cost 4 % of the
  // apply's instructions (docs/performance.md).
  const auto before = p.before_known ? p.before : digest_before(*p.st, p.key);
  p.st->record.reset();
  for (size_t i = 0; i < p.key.size(); ++i) p.st->record.bind(static_cast<int>(i + 1), p.key[i]);
  p.st->record.bind(static_cast<int>(p.key.size() + 1), p.row->hlc)
      .bind(static_cast<int>(p.key.size() + 2), static_cast<int64_t>(origin))
      .bind(static_cast<int>(p.key.size() + 3), int64_t{p.row->deleted ? 1 : 0});
  p.st->record.run();
  if (digest_)
    digest_->change(p.st->table->id, p.key, before, RowVersion{p.row->hlc, origin, p.row->deleted});
}

void Applier::commit_row(const PendingRow& p, uint64_t origin, ApplyStats& stats) {
  record_row(p, origin);
  ++stats.applied;
  if (p.conflict) {
    record_conflict(db_, *p.conflict, wall_clock_ms());
    conflicts_recorded_ = true;
    ++conflicts_in_tx_;
    ++stats.conflicts;
  }
}

std::string Applier::local_values(TableStatements& st, const std::vector<Value>& key) {
  st.read_row.reset();
  for (size_t i = 0; i < key.size(); ++i) st.read_row.bind(static_cast<int>(i + 1), key[i]);
  std::string out;
  if (st.read_row.step()) {
    std::vector<Value> values;
    for (int i = 0; i < st.read_row.column_count(); ++i) values.push_back(st.read_row.column(i));
    out = values_json_object(st.local_columns, values);
  }
  st.read_row.reset();
  return out;
}

void Applier::publish_delete(TableStatements& st, const std::vector<Value>& key) {
  // A version of this node above everything it has seen or issued (the HLC rule), so the delete
  // replaces the losing row's version on every node that has it.
  clock_ = hlc_next(clock_, wall_clock_ms());
  const auto before = digest_before(st, key);
  st.tombstone.reset();
  for (size_t i = 0; i < key.size(); ++i) st.tombstone.bind(static_cast<int>(i + 1), key[i]);
  st.tombstone.bind(static_cast<int>(key.size() + 1), clock_)
      .bind(static_cast<int>(key.size() + 2), static_cast<int64_t>(self_));
  st.tombstone.run();
  if (digest_) digest_->change(st.table->id, key, before, RowVersion{clock_, self_, true});
}

ApplyStats Applier::apply(const Batch& batch, const MessageRef& where,
                          std::vector<HeldRows>& held) {
  if (!open_) throw Error("Applier::apply called outside begin()/finish()");
  // Layouts are bounded by the local schema, but combinatorially (any subset and order of the
  // columns), and peers choose them: start over past this many instead of growing without end.
  // A peer sends one layout per table and schema version, so 256 is never reached normally.
  constexpr size_t kMaxCachedLayouts = 256;
  if (cache_.size() >= kMaxCachedLayouts) cache_.clear();  // nothing points into it between calls
  ApplyStats stats;
  const int64_t now = wall_clock_ms();
  const Version zero{};
  std::vector<PendingRow> deferred;  // rows that hit a UNIQUE index, retried after the rest
  // Each table entry's statements, found once per batch (not per row); a refusal is kept too.
  struct Resolved {
    TableStatements* st = nullptr;
    bool done = false;
    Refusal why_not;
  };
  std::vector<Resolved> resolved(batch.tables.size());
  std::vector<size_t> held_entry(batch.tables.size(), SIZE_MAX);  // index into `held`
  auto hold = [&](size_t table, size_t row_index, HoldKind kind, const std::string& reason) {
    size_t& e = held_entry[table];
    if (e == SIZE_MAX) {
      e = held.size();
      held.push_back({table, {}, kind, reason});
    }
    held[e].rows.push_back(row_index);
    ++stats.held;
  };
  for (size_t row_index = 0; row_index < batch.rows.size(); ++row_index) {
    const RowChange& row = batch.rows[row_index];
    if (row.table >= batch.tables.size()) {
      dead_letter(where, batch.origin_node, batch.batch_id, {},
                  fmt::format("row refers to table entry {} but the batch has {} table entries",
                              row.table, batch.tables.size()),
                  {});
      ++stats.dead_lettered;
      continue;
    }
    const BatchTable& bt = batch.tables[row.table];
    auto reject = [&](const std::string& reason) {
      dead_letter(where, batch.origin_node, batch.batch_id, bt.name, reason, {});
      ++stats.dead_lettered;
    };
    if (!hlc_well_formed(row.hlc)) {
      reject(fmt::format("malformed version {} (negative or beyond year ~6400)", row.hlc));
      continue;
    }
    if (!hlc_plausible(row.hlc, now, max_drift_ms_)) {
      // Maybe our clock is behind: the row applies once it is within the bound. Applying it now
      // would drag this node's clock (and every later local version) beyond the bound.
      hold(
          row.table, row_index, HoldKind::Clock,
          fmt::format(
              "table \"{}\": version {} is {:.1f} s ahead of this node's clock (bound {:.1f} s)",
              bt.name, row.hlc, (hlc_physical_ms(row.hlc) - now) / 1000.0, max_drift_ms_ / 1000.0));
      continue;
    }
    Resolved& r = resolved[row.table];
    if (!r.done) {
      r.st = statements_for(bt, r.why_not);
      r.done = true;
    }
    if (!r.st) {
      if (r.why_not.hold)
        hold(row.table, row_index, *r.why_not.hold, r.why_not.reason);
      else
        reject(r.why_not.reason);
      continue;
    }
    TableStatements* st = r.st;
    if (std::string why = st->refusal(row, bt); !why.empty()) {
      reject(why);
      continue;
    }
    stats.max_hlc = std::max(stats.max_hlc, row.hlc);
    clock_ = std::max(clock_, row.hlc);  // HLC receive rule: later local versions exceed it

    PendingRow p{&row, row_index, st, {}, &bt.name, {}};
    p.key.reserve(st->key_positions.size());
    bool null_key = false;
    for (size_t pos : st->key_positions) {
      p.key.push_back(row.key[pos]);  // in range: refusal() checked the key's size
      null_key = null_key || is_null(p.key.back());
    }
    if (null_key) {
      reject("NULL primary key value");
      continue;
    }
    st->local_version.reset();
    for (size_t i = 0; i < p.key.size(); ++i)
      st->local_version.bind(static_cast<int>(i + 1), p.key[i]);
    LocalVersion lv;
    const bool have_local = st->local_version.step();
    if (have_local)
      lv = {Version{st->local_version.column_int(0),
                    static_cast<uint64_t>(st->local_version.column_int(1))},
            st->local_version.column_int(2) != 0, st->local_version.column_int(3) != 0};
    st->local_version.reset();
    if (have_local) p.before = RowVersion{lv.version.hlc, lv.version.node, lv.deleted};
    p.before_known = true;
    const Version& local = have_local ? lv.version : zero;
    const Version incoming{row.hlc, batch.origin_node};
    if (!have_local && row.hlc < horizon_) {
      // Below the tombstone horizon every member applied every change, so a key without an
      // entry had its delete pruned: a re-delivered change it superseded, or an old outbox row
      // of a member dropped by retention. Skipped as the tombstone would have skipped it (nodes
      // that still hold the tombstone decide the same); a live row's values go to the conflict
      // log, so nothing is lost invisibly.
      ++stats.skipped_older;
      if (!row.deleted) {
        record_conflict(
            db_,
            {ConflictKind::Discarded, bt.name, values_json_array(p.key),
             values_json_object(bt.columns, row.values), incoming, Version{horizon_, 0}, true},
            now);
        conflicts_recorded_ = true;
        ++conflicts_in_tx_;
        ++stats.conflicts;
      }
      continue;
    }
    // The conflict log: this node's own concurrent change of the row meets a remote one
    // (`concurrent` in shared/conflict_log.hpp says what that means without causal history).
    // Whichever loses is recorded here, on one of the two writers' nodes, with its values.
    const bool conflict = have_local && concurrent(lv, incoming, self_);
    // Last writer wins: only a strictly greater (hlc, node) replaces what this node has.
    if (!(incoming > local)) {
      ++stats.skipped_older;
      if (conflict) {
        // Our newer change stands; the remote one is dropped by the rule: keep its values.
        record_conflict(db_,
                        {ConflictKind::Discarded, bt.name, values_json_array(p.key),
                         row.deleted ? std::string() : values_json_object(bt.columns, row.values),
                         incoming, local, lv.deleted},
                        now);
        conflicts_recorded_ = true;
        ++conflicts_in_tx_;
        ++stats.conflicts;
      }
      continue;
    }
    if (conflict)
      p.conflict = ConflictRecord{row.deleted ? ConflictKind::Removed : ConflictKind::Overwritten,
                                  bt.name,
                                  values_json_array(p.key),
                                  lv.deleted ? std::string() : local_values(*st, p.key),
                                  local,
                                  incoming,
                                  row.deleted};
    if (!row.deleted) stats.values_left_out += static_cast<int64_t>(st->left_out.size());
    try {
      write_row(p);
    } catch (const SqliteError& e) {
      if (is_transient(e)) throw;
      // A failed statement undoes only itself (ABORT), so the rest of the transaction stands.
      p.error = fmt::format("cannot apply to \"{}\": {}", bt.name, e.what());
      if (unique_violation(e)) {
        // Maybe only for now: the source transaction may have moved the value away from the
        // row that holds it here (a swap, a rename chain) in a later row of this batch.
        p.before_known = false;  // other rows are recorded before it: read {rows} again then
        deferred.push_back(std::move(p));
      } else {
        // NOT NULL, CHECK, foreign key: the local schema or data may change (a relaxed
        // constraint, the parent row arriving): the row waits instead of being lost.
        hold(row.table, row_index, HoldKind::Constraint, p.error);
      }
      continue;
    }
    commit_row(p, batch.origin_node, stats);
  }
  if (!deferred.empty()) apply_deferred(deferred, batch, held, stats);
  return stats;
}

void Applier::retry_chains(std::vector<PendingRow>& rows, uint64_t origin, ApplyStats& stats) {
  for (bool progress = true; progress && !rows.empty();) {
    progress = false;
    std::vector<PendingRow> still;
    for (auto& p : rows) {
      try {
        write_row(p);
        commit_row(p, origin, stats);
        progress = true;
      } catch (const SqliteError& e) {
        if (is_transient(e)) throw;
        p.error = fmt::format("cannot apply to \"{}\": {}", *p.table, e.what());
        still.push_back(std::move(p));
      }
    }
    rows = std::move(still);
  }
}

void Applier::apply_deferred(std::vector<PendingRow>& deferred, const Batch& batch,
                             std::vector<HeldRows>& held, ApplyStats& stats) {
  // Chains (row A takes the value row B gives up later in the batch): retry while that helps.
  retry_chains(deferred, batch.origin_node, stats);
  if (deferred.empty()) return;
  // Cycles (two rows swap their values): no order works one row at a time. The batch is one
  // source transaction's end state, so remove the rows it rewrites and write them all again;
  // if a value is still taken, by a row outside the batch, undo that and hold the rows until
  // the row that holds the value changes.
  db_.exec("SAVEPOINT harmony_unique_cycle");
  bool all_written = true;
  try {
    for (auto& p : deferred) remove_row(p);
    for (auto& p : deferred) write_row(p);
  } catch (const SqliteError& e) {
    if (is_transient(e)) {
      db_.exec("ROLLBACK TO harmony_unique_cycle; RELEASE harmony_unique_cycle");
      throw;
    }
    all_written = false;
  }
  if (!all_written) {
    db_.exec("ROLLBACK TO harmony_unique_cycle; RELEASE harmony_unique_cycle");
    // One held entry per table entry, its rows in batch order.
    std::sort(deferred.begin(), deferred.end(),
              [](const PendingRow& a, const PendingRow& b) { return a.index < b.index; });
    // A row outside the batch holds the value: two nodes gave it to different rows without
    // hearing from each other (a UNIQUE race). Settle it by the rule; what no rule settles waits.
    std::vector<PendingRow> unsettled;
    bool settled = false;
    for (auto& p : deferred) {
      if (settle_unique_race(p, batch.origin_node, stats))
        settled = true;
      else
        unsettled.push_back(std::move(p));
    }
    // A settled race may free the value the batch's other rows wait for (a swap with a value
    // taken from outside): their chain goes on, so the batch still applies whole where it can.
    if (settled) retry_chains(unsettled, batch.origin_node, stats);
    deferred = std::move(unsettled);
    for (const auto& p : deferred) {
      const size_t table = p.row->table;
      auto it = std::find_if(held.begin(), held.end(),
                             [&](const HeldRows& h) { return h.table_entry == table; });
      if (it == held.end()) {
        held.push_back({table, {}, HoldKind::Constraint, p.error});
        it = held.end() - 1;
      }
      it->rows.push_back(p.index);
      std::sort(it->rows.begin(), it->rows.end());
      ++stats.held;
    }
    return;
  }
  db_.exec("RELEASE harmony_unique_cycle");
  for (const auto& p : deferred) commit_row(p, batch.origin_node, stats);
}

bool Applier::settle_unique_race(PendingRow& p, uint64_t origin, ApplyStats& stats) {
  TableStatements& st = *p.st;
  if (p.row->deleted) return false;  // a delete never violates UNIQUE
  const std::string table = quote_ident(st.table->name);
  const std::vector<std::string> pk_cols = quoted_pk(st.table->info);
  if (!st.uniques_loaded) {
    st.uniques_loaded = true;
    auto list = db_.prepare(
        "SELECT name, partial FROM pragma_index_list(?1) WHERE \"unique\" = 1 AND origin != 'pk'");
    list.bind(1, std::string_view(st.table->name));
    std::vector<std::string> names;
    while (list.step()) {
      // A partial index holds only some rows: which row holds the value is not a plain lookup.
      if (list.column_int(1) != 0) st.uniques_supported = false;
      names.push_back(list.column_text(0));
    }
    for (const auto& name : names) {
      TableStatements::UniqueIndex u;
      std::vector<std::string> terms;
      auto cols = db_.prepare(
          "SELECT cid, name, coll FROM pragma_index_xinfo(?1) WHERE key = 1 ORDER BY seqno");
      cols.bind(1, std::string_view(name));
      while (cols.step()) {
        size_t pos = TableStatements::kAbsent;
        if (cols.column_int(0) >= 0) {  // -1 rowid, -2 expression: not a received column
          const std::string col = cols.column_text(1);
          for (size_t i = 0; i < st.targets.size(); ++i)
            if (st.targets[i] && same_ident(st.targets[i]->name, col)) pos = i;
        }
        if (pos == TableStatements::kAbsent) {
          st.uniques_supported = false;
          break;
        }
        u.columns.push_back(pos);
        terms.push_back(fmt::format("{} = ?{} COLLATE {}", quote_ident(cols.column_text(1)),
                                    terms.size() + 1, quote_ident(cols.column_text(2))));
      }
      if (!st.uniques_supported) break;
      // Every holder but the row itself (compared as SQLite compares its key).
      u.holders = db_.prepare(fmt::format(
          "SELECT {} FROM {} WHERE {} AND NOT ({})", fmt::join(pk_cols, ", "), table,
          fmt::join(terms, " AND "), key_match(pk_cols, static_cast<int>(terms.size()) + 1)));
      st.uniques.push_back(std::move(u));
    }
  }
  if (!st.uniques_supported || st.uniques.empty()) return false;
  std::vector<std::vector<Value>> holders;
  for (auto& u : st.uniques) {
    bool any_null = false;
    for (size_t c : u.columns) any_null = any_null || is_null(p.row->values[c]);
    if (any_null) continue;  // NULLs never collide under UNIQUE
    u.holders.reset();
    int i = 1;
    for (size_t c : u.columns) u.holders.bind(i++, p.row->values[c]);
    for (const auto& k : p.key) u.holders.bind(i++, k);
    while (u.holders.step()) {
      std::vector<Value> k;
      for (int c = 0; c < u.holders.column_count(); ++c) k.push_back(u.holders.column(c));
      if (std::find(holders.begin(), holders.end(), k) == holders.end())
        holders.push_back(std::move(k));
    }
    u.holders.reset();
  }
  if (holders.empty()) return false;
  std::vector<Version> held_by;
  for (const auto& k : holders) {
    st.local_version.reset();
    for (size_t i = 0; i < k.size(); ++i) st.local_version.bind(static_cast<int>(i + 1), k[i]);
    Version v{};
    if (st.local_version.step())
      v = {st.local_version.column_int(0), static_cast<uint64_t>(st.local_version.column_int(1))};
    st.local_version.reset();
    held_by.push_back(v);
  }
  const Version incoming{p.row->hlc, origin};
  // A holder last written by the incoming row's own node is no race: that node never had both
  // rows with the value (its batches are consistent states), so its change that freed the value
  // is on its way (held here, or later in its stream). Wait for it instead of deleting.
  for (const auto& v : held_by)
    if (v.node == origin) return false;
  const Version strongest = *std::max_element(held_by.begin(), held_by.end());
  // The rule, the same on every node: of the rows that claim one UNIQUE value, the row with the
  // greatest version (hlc, node) keeps it and every other is deleted. The delete is a write of
  // this node, at a version above all it has seen, published like any other: nodes that see the
  // rows in another order (or the value moved away first) may not see the race at all, and the
  // published delete brings them to the same state. Several nodes may each delete the same loser;
  // those deletes are ordinary last-writer-wins writes of one key and converge. A delete never
  // collides, so settling ends. The loser's values go to the conflict log here.
  std::vector<Value> incoming_values;
  std::vector<std::string> incoming_columns;
  for (size_t i = 0; i < st.targets.size(); ++i)
    if (st.targets[i]) {
      incoming_columns.push_back(st.targets[i]->name);
      incoming_values.push_back(p.row->values[i]);
    }
  const int64_t now = wall_clock_ms();
  db_.exec("SAVEPOINT harmony_unique_race");
  int64_t conflicts = 0;
  try {
    if (strongest > incoming) {
      record_conflict(
          db_,
          {ConflictKind::Unique, *p.table, values_json_array(p.key),
           values_json_object(incoming_columns, incoming_values), incoming, strongest, true},
          now);
      ++conflicts;
      remove_row(p);  // an older row this node has at that key goes with it
      publish_delete(st, p.key);
    } else {
      for (size_t h = 0; h < holders.size(); ++h) {
        record_conflict(db_,
                        {ConflictKind::Unique, *p.table, values_json_array(holders[h]),
                         local_values(st, holders[h]), held_by[h], incoming, false},
                        now);
        ++conflicts;
        st.remove.reset();
        for (size_t i = 0; i < holders[h].size(); ++i)
          st.remove.bind(static_cast<int>(i + 1), holders[h][i]);
        st.remove.run();
        publish_delete(st, holders[h]);
      }
      write_row(p);
    }
  } catch (const SqliteError& e) {
    db_.exec("ROLLBACK TO harmony_unique_race; RELEASE harmony_unique_race");
    if (is_transient(e)) throw;
    p.error = fmt::format("cannot apply to \"{}\": {}", *p.table, e.what());
    return false;  // another constraint: the row waits as before
  }
  db_.exec("RELEASE harmony_unique_race");
  conflicts_recorded_ = true;
  conflicts_in_tx_ += conflicts;
  stats.conflicts += conflicts;
  if (strongest > incoming) {
    ++stats.unique_losers;
  } else {
    stats.unique_losers += static_cast<int64_t>(holders.size());
    commit_row(p, origin, stats);
  }
  return true;
}

void Applier::dead_letter(const MessageRef& where, uint64_t origin, uint64_t batch_id,
                          const std::string& table, const std::string& reason,
                          std::string_view payload) {
  record_dead_letter(db_, {where.stream, where.seq, origin, batch_id, table, reason, payload},
                     wall_clock_ms());
}

void Applier::set_position(const std::string& stream, uint64_t seq) {
  store_position(db_, stream, seq);
}

}  // namespace harmony
