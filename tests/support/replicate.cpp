// Implementation of the by-hand replication helpers in replicate.hpp.
#include "tests/support/replicate.hpp"

#include <cstring>

#include <fmt/format.h>

#include "replicator/wire/codec.hpp"
#include "shared/capture.hpp"
#include "shared/outbox.hpp"
#include "shared/schema.hpp"

namespace harmony::test {

Db open_test_db(const std::string& path) {
  return Db::open(path, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE);
}

ReplicateStats replicate_once(Db& from, Db& to) {
  static uint64_t seq = 0;
  ReplicateStats st;
  Batch batch;
  {
    Transaction tx(from);
    batch = collect_pending(from, captured_tables(from), node_id(from), 1'000'000);
    tx.commit();
  }
  if (batch.rows.empty()) return st;
  const std::string wire = encode_batch(batch, true);
  st.wire_bytes = wire.size();
  st.rows = batch.rows.size();
  st.tables = batch.tables.size();
  const Batch received = decode_batch(wire);
  {
    Transaction tx(to);
    Applier applier(to, node_id(to), captured_tables(to));
    applier.begin();
    st.apply = applier.apply(received, {"test", ++seq}, st.held);
    applier.finish();
    tx.commit();
  }
  {
    Transaction tx(from);
    st.cleared = mark_published(from, batch);
    tx.commit();
  }
  return st;
}

void replicate_both(Db& a, Db& b, int rounds) {
  for (int i = 0; i < rounds; ++i) {
    auto x = replicate_once(a, b);
    auto y = replicate_once(b, a);
    if (x.rows == 0 && y.rows == 0) return;
  }
}

std::vector<Row> table_rows(Db& db, const std::string& table) {
  TableInfo info = describe_table(db, table);
  std::string order;
  for (const auto* c : info.primary_key())
    order += (order.empty() ? "" : ", ") + quote_ident(c->name);
  if (order.empty()) order = "rowid";
  auto s = db.prepare(fmt::format("SELECT * FROM {} ORDER BY {}", quote_ident(info.name), order));
  std::vector<Row> out;
  while (s.step()) {
    Row r;
    for (int i = 0; i < s.column_count(); ++i) r.push_back(s.column(i));
    out.push_back(std::move(r));
  }
  return out;
}

std::string show(const Value& v) {
  return std::visit(
      [](const auto& x) -> std::string {
        using T = std::decay_t<decltype(x)>;
        if constexpr (std::is_same_v<T, Null>) {
          return "NULL";
        } else if constexpr (std::is_same_v<T, int64_t>) {
          return std::to_string(x);
        } else if constexpr (std::is_same_v<T, double>) {
          uint64_t bits;
          std::memcpy(&bits, &x, sizeof bits);
          return fmt::format("{}(0x{:016x})", x, bits);
        } else {
          std::string out = std::is_same_v<T, Text> ? "'" : "x'";
          for (unsigned char c : x.bytes) {
            if (std::is_same_v<T, Text> && c >= 0x20 && c < 0x7f && c != '\\')
              out += static_cast<char>(c);
            else
              out +=
                  std::is_same_v<T, Text> ? fmt::format("\\x{:02x}", c) : fmt::format("{:02x}", c);
          }
          return out + "'";
        }
      },
      v);
}

std::string show(const Row& r) {
  std::string out = "(";
  for (size_t i = 0; i < r.size(); ++i) out += (i ? ", " : "") + show(r[i]);
  return out + ")";
}

bool same_rows(const std::vector<Row>& a, const std::vector<Row>& b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (a[i].size() != b[i].size()) return false;
    for (size_t j = 0; j < a[i].size(); ++j)
      if (!values_identical(a[i][j], b[i][j])) return false;
  }
  return true;
}

}  // namespace harmony::test
