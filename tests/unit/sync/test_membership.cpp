// Tombstone GC's horizon (replicator/sync/membership.hpp), with injected reports and clock: the
// horizon needs two generations (a member's p reaching the candidate's P1), a member that never
// reported blocks it, a member gone longer than the retention is dropped, a lone node prunes
// nothing, and the state survives a restart.
#include <catch2/catch.hpp>

#include "replicator/sync/membership.hpp"
#include "shared/capture.hpp"
#include "tests/support/replicate.hpp"
#include "tests/support/support.hpp"

using namespace harmony;
using namespace harmony::test;

namespace {

SafeMark mark(int64_t h, uint64_t p) {
  return SafeMark{h, {{"s-1", p}}};
}

}  // namespace

TEST_CASE("a lone node prunes nothing", "[tombstone_gc][membership]") {
  Membership m(1);
  for (int i = 0; i < 5; ++i) {
    m.observe(1, mark(1000 + i, 10 + i), i);
    CHECK(m.advance() == 0);
  }
  CHECK_FALSE(m.candidate());
}

TEST_CASE("the horizon becomes a candidate's H1 only once every member reached its P1",
          "[tombstone_gc][membership]") {
  Membership m(1);
  // Node 2's clock is behind: its mark (h 80) was taken at p 12, node 1's (h 100) at p 10.
  m.observe(1, mark(100, 10), 0);
  m.observe(2, mark(80, 12), 0);
  CHECK(m.advance() == 0);  // first generation: a candidate, no horizon yet
  REQUIRE(m.candidate());
  CHECK(m.candidate()->h == 80);
  CHECK(m.candidate()->p.at("s-1") == 12);
  // Node 1 has not applied up to 12 yet: changes below 80 may still be in 11..12 for it.
  CHECK(m.advance() == 0);
  m.observe(1, mark(150, 11), 1);
  CHECK(m.advance() == 0);
  m.observe(1, mark(160, 12), 2);
  CHECK(m.advance() == 80);  // second generation: H1 is active, a new candidate taken
  REQUIRE(m.candidate());
  CHECK(m.candidate()->h == 80);  // node 2 reported nothing newer
  m.observe(2, mark(200, 15), 3);
  m.observe(1, mark(210, 15), 3);
  CHECK(m.advance() == 80);  // the candidate (80, 12) is reached: still 80; new one (200, 15)
  CHECK(m.candidate()->h == 200);
  CHECK(m.advance() == 200);
}

TEST_CASE("a member without a report blocks the horizon", "[tombstone_gc][membership]") {
  Membership m(1);
  m.observe(1, mark(100, 10), 0);
  m.observe(2, std::nullopt, 0);  // an older peer: no report
  CHECK(m.advance() == 0);
  CHECK_FALSE(m.candidate());
  m.observe(2, mark(90, 10), 1);
  CHECK(m.advance() == 0);
  CHECK(m.advance() == 90);
}

TEST_CASE("a member not seen for the retention is dropped and a newcomer restarts the candidate",
          "[tombstone_gc][membership]") {
  Membership m(1);
  m.observe(1, mark(100, 10), 0);
  m.observe(2, mark(100, 10), 0);
  m.observe(3, mark(50, 5), 0);  // node 3 stops here
  CHECK(m.advance() == 0);
  for (int64_t t = 1; t <= 5; ++t) {
    m.observe(1, mark(100 + t, 10 + t), t * 1000);
    m.observe(2, mark(100 + t, 10 + t), t * 1000);
    CHECK(m.expire(t * 1000, 10'000).empty());
    CHECK(m.advance() == 0);  // node 3 is a member and stays at p 5 < P1 10
  }
  CHECK(m.expire(11'000, 10'000) == std::vector<uint64_t>{3});
  CHECK(m.members().size() == 2);
  CHECK(m.advance() == 0);  // the member set changed: a new candidate over nodes 1 and 2
  CHECK(m.candidate()->h == 105);
  CHECK(m.advance() == 105);
  // Node 4 appears: the candidate is taken again with its clock in it.
  m.observe(4, mark(300, 15), 12'000);
  CHECK(m.advance() == 105);
  REQUIRE(m.candidate());
  CHECK(m.candidate()->members == std::vector<uint64_t>{1, 2, 4});
  CHECK(m.candidate()->h == 105);
  // This node never drops itself, however long ago its last mark.
  CHECK(m.expire(1'000'000, 10'000) == std::vector<uint64_t>{2, 4});
  CHECK(m.members().count(1) == 1);
  CHECK(m.advance() == 105);  // alone again: the horizon stays, no new candidate
  CHECK_FALSE(m.candidate());
}

TEST_CASE("membership and horizon survive a restart", "[tombstone_gc][membership]") {
  TempDir dir("membership");
  Db db = open_test_db(dir.file("m.db"));
  ensure_base_schema(db);
  CHECK(load_membership(db, 1).members().empty());
  CHECK_FALSE(stored_own_mark(db, 1));
  Membership m(1);
  m.observe(1, mark(100, 10), 5);
  m.observe(2, mark(80, 12), 6);
  m.observe(3, std::nullopt, 7);
  m.observe(3, mark(90, 12), 7);
  m.advance();
  {
    Transaction tx(db);
    save_membership(db, m);
    tx.commit();
  }
  Membership back = load_membership(db, 1);
  CHECK(back.horizon() == m.horizon());
  REQUIRE(back.candidate());
  CHECK(*back.candidate() == *m.candidate());
  REQUIRE(back.members().size() == 3);
  CHECK(back.members().at(2).mark == m.members().at(2).mark);
  CHECK(back.members().at(3).last_seen_ms == 7);
  CHECK(stored_own_mark(db, 1) == mark(100, 10));
  CHECK(parse_positions_json("[1]") == std::nullopt);
  CHECK(parse_positions_json("{\"a\":-1}") == std::nullopt);
}
