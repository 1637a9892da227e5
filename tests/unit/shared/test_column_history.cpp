// Column history: renames keep their position (SQLite's RENAME COLUMN), drops shift the rest;
// chains resolve; a column added again under an old name is live, not gone.
#include <catch2/catch.hpp>

#include "shared/column_history.hpp"

using namespace harmony;

namespace {

TableInfo table(std::vector<std::pair<std::string, std::string>> cols) {
  TableInfo t;
  t.name = "t";
  int pk = 1;
  for (auto& [n, ty] : cols) {
    ColumnInfo c;
    c.name = n;
    c.decl_type = ty;
    c.pk_position = pk;
    pk = 0;
    t.columns.push_back(c);
  }
  return t;
}

RecordedColumns recorded(std::vector<std::pair<std::string, std::string>> cols) {
  RecordedColumns r;
  r.columns = std::move(cols);
  return r;
}

}  // namespace

TEST_CASE("column history: rename, drop, chains and re-added names", "[column_history]") {
  using Fate = ColumnHistory::Fate;
  auto before = recorded({{"id", "INTEGER"}, {"a", "TEXT"}, {"n", "INTEGER"}});

  SECTION("a rename keeps the position, type and count") {
    auto h = next_history(before, table({{"id", "INTEGER"}, {"b", "TEXT"}, {"n", "INTEGER"}}));
    CHECK(h.resolve("A").fate == Fate::Renamed);
    CHECK(h.resolve("a").now == "b");
    CHECK(h.resolve("zzz").fate == Fate::Unknown);
  }
  SECTION("a drop shifts the later columns") {
    auto h = next_history(before, table({{"id", "INTEGER"}, {"n", "INTEGER"}}));
    CHECK(h.resolve("a").fate == Fate::Dropped);
    CHECK(h.resolve("n").fate == Fate::Unknown);  // live: not in the history at all
  }
  SECTION("a drop and a rename at once") {
    auto h = next_history(recorded({{"id", "INTEGER"}, {"t", "TEXT"}, {"a", "TEXT"}, {"y", "INT"}}),
                          table({{"id", "INTEGER"}, {"t", "TEXT"}, {"w", "TEXT"}}));
    CHECK(h.resolve("a").now == "w");
    CHECK(h.resolve("y").fate == Fate::Dropped);
    auto h2 = next_history(recorded({{"id", "INTEGER"}, {"y", "INT"}, {"a", "TEXT"}}),
                           table({{"id", "INTEGER"}, {"w", "TEXT"}}));
    CHECK(h2.resolve("a").now == "w");
    CHECK(h2.resolve("y").fate == Fate::Dropped);
  }
  SECTION("a different type at the same position is a drop and an add, not a rename") {
    auto h = next_history(before, table({{"id", "INTEGER"}, {"b", "BLOB"}, {"n", "INTEGER"}}));
    CHECK(h.resolve("a").fate == Fate::Dropped);
  }
  SECTION("chains: a -> b -> c, then c dropped") {
    auto h1 = next_history(before, table({{"id", "INTEGER"}, {"b", "TEXT"}, {"n", "INTEGER"}}));
    RecordedColumns r1 = recorded({{"id", "INTEGER"}, {"b", "TEXT"}, {"n", "INTEGER"}});
    r1.history = h1;
    auto h2 = next_history(r1, table({{"id", "INTEGER"}, {"c", "TEXT"}, {"n", "INTEGER"}}));
    CHECK(h2.resolve("a").now == "c");
    CHECK(h2.resolve("b").now == "c");
    RecordedColumns r2 = recorded({{"id", "INTEGER"}, {"c", "TEXT"}, {"n", "INTEGER"}});
    r2.history = h2;
    auto h3 = next_history(r2, table({{"id", "INTEGER"}, {"n", "INTEGER"}}));
    CHECK(h3.resolve("a").fate == Fate::Dropped);
    CHECK(h3.resolve("c").fate == Fate::Dropped);
  }
  SECTION("a dropped name added again is live") {
    auto h1 = next_history(before, table({{"id", "INTEGER"}, {"n", "INTEGER"}}));
    RecordedColumns r1 = recorded({{"id", "INTEGER"}, {"n", "INTEGER"}});
    r1.history = h1;
    auto h2 = next_history(r1, table({{"id", "INTEGER"}, {"n", "INTEGER"}, {"a", "TEXT"}}));
    CHECK(h2.resolve("a").fate == Fate::Unknown);
  }
}
