// Wire codec: round trips keep every storage class bit-exact; bad input gives DecodeError.
#include <catch2/catch.hpp>

#include <cmath>
#include <limits>

#include "replicator/wire/codec.hpp"

using namespace harmony;

namespace {
Batch sample_batch() {
  Batch b;
  b.origin_node = 42;
  b.batch_id = 7;
  b.tables.push_back({"Books", "abc", {"id", "title", "price", "cover"}, {"id"}, 0});
  RowChange r;
  r.table = 0;
  r.hlc = (int64_t{1795889560365} << 16) | 3;
  r.key = {int64_t{1}};
  r.values = {int64_t{1}, Text{std::string("bad \xff\xfe utf8", 12)}, -0.0,
              Blob{std::string("\0\0x\0", 4)}};
  b.rows.push_back(r);
  RowChange d;
  d.table = 0;
  d.hlc = 5;
  d.deleted = true;
  d.key = {int64_t{std::numeric_limits<int64_t>::min()}};
  b.rows.push_back(d);
  return b;
}
}  // namespace

TEST_CASE("batch round trip keeps values bit-exact", "[codec]") {
  for (bool compress : {false, true}) {
    Batch in = sample_batch();
    in.rows[0].values.push_back(0.1);
    in.tables[0].columns.push_back("x");
    in.rows[0].values.push_back(Null{});
    in.tables[0].columns.push_back("y");
    in.rows[0].values.push_back(std::numeric_limits<double>::denorm_min());
    in.tables[0].columns.push_back("z");
    Batch out = decode_batch(encode_batch(in, compress));
    REQUIRE(out.origin_node == 42);
    REQUIRE(out.batch_id == 7);
    REQUIRE(out.tables.size() == 1);
    REQUIRE(out.tables[0].columns == in.tables[0].columns);
    REQUIRE(out.rows.size() == 2);
    REQUIRE(out.rows[0].hlc == in.rows[0].hlc);
    REQUIRE(out.rows[0].values.size() == in.rows[0].values.size());
    for (size_t i = 0; i < in.rows[0].values.size(); ++i)
      CHECK(values_identical(out.rows[0].values[i], in.rows[0].values[i]));
    CHECK(std::signbit(std::get<double>(out.rows[0].values[2])));
    CHECK(out.rows[1].deleted);
    CHECK(values_identical(out.rows[1].key[0], in.rows[1].key[0]));
  }
}

TEST_CASE("garbage and truncated input is rejected with a reason", "[codec]") {
  std::string good = encode_batch(sample_batch(), false);
  CHECK_THROWS_AS(decode_batch(""), DecodeError);
  CHECK_THROWS_AS(decode_batch(std::string("\x07garbage")), DecodeError);
  for (size_t cut : {size_t{1}, size_t{5}, good.size() / 2, good.size() - 1})
    CHECK_THROWS_AS(decode_batch(good.substr(0, cut)), DecodeError);
  std::string zgood = encode_batch(sample_batch(), true);
  CHECK_THROWS_AS(decode_batch(zgood.substr(0, zgood.size() - 3)), DecodeError);
  // A million nested arrays must not blow the stack.
  std::string deep(1, '\0');
  deep.append(1'000'000, '\x81');
  deep.push_back('\x00');
  CHECK_THROWS_WITH(decode_batch(deep), Catch::Contains("nested"));
}
