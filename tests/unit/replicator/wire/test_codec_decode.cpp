// The batch decoder's own CBOR reading (replicator/wire/codec.cpp, check_body
// and BatchReader): frames of older builds still decode, every bound holds
// before anything is allocated, and malformed or truncated input is a
// DecodeError with a reason, never a crash. The format tests of the codec as a
// whole are in test_codec.cpp.
#include <catch2/catch.hpp>

#include <atomic>
#include <cstdlib>
#include <limits>
#include <new>
#include <string>

#include "replicator/wire/codec.hpp"

using namespace harmony;

// Bytes requested from operator new while g_counting is set: how the tests
// below see that a refused frame allocated nothing its heads claimed. Counting
// is off except around one decode.
namespace {
std::atomic<bool> g_counting{false};
std::atomic<size_t> g_allocated{0};
}  // namespace

// Every non-aligned form is replaced, so that allocation and release stay one family (malloc and
// free) for the sanitizers; the aligned forms are left to the library, in pairs.
namespace {
void* counted_alloc(std::size_t n) {
  if (g_counting.load(std::memory_order_relaxed))
    g_allocated.fetch_add(n, std::memory_order_relaxed);
  return std::malloc(n ? n : 1);
}
}  // namespace

void* operator new(std::size_t n) {
  if (void* p = counted_alloc(n)) return p;
  throw std::bad_alloc();
}
void* operator new[](std::size_t n) {
  if (void* p = counted_alloc(n)) return p;
  throw std::bad_alloc();
}
void* operator new(std::size_t n, const std::nothrow_t&) noexcept {
  return counted_alloc(n);
}
void* operator new[](std::size_t n, const std::nothrow_t&) noexcept {
  return counted_alloc(n);
}
void operator delete(void* p) noexcept {
  std::free(p);
}
void operator delete[](void* p) noexcept {
  std::free(p);
}
void operator delete(void* p, std::size_t) noexcept {
  std::free(p);
}
void operator delete[](void* p, std::size_t) noexcept {
  std::free(p);
}
void operator delete(void* p, const std::nothrow_t&) noexcept {
  std::free(p);
}
void operator delete[](void* p, const std::nothrow_t&) noexcept {
  std::free(p);
}

namespace {

// The bytes operator new handed out during `decode_batch(frame, limits)`, and
// what it said.
struct Outcome {
  size_t allocated = 0;
  std::string error;  // empty when it decoded
};
Outcome decode_counting(const std::string& frame, const DecodeLimits& limits = {}) {
  Outcome o;
  g_allocated = 0;
  g_counting = true;
  try {
    decode_batch(frame, limits);
  } catch (const DecodeError& e) {
    g_counting = false;
    o.error = e.what();
  }
  g_counting = false;
  o.allocated = g_allocated;
  return o;
}

// A minimal CBOR writer for hand-made bodies.
void head(std::string& out, uint8_t major, uint64_t n) {
  const auto m = static_cast<uint8_t>(major << 5);
  if (n < 24) {
    out.push_back(static_cast<char>(m | n));
    return;
  }
  const int bytes = n <= 0xff ? 1 : n <= 0xffff ? 2 : n <= 0xffffffff ? 4 : 8;
  out.push_back(static_cast<char>(m | (bytes == 1 ? 24 : bytes == 2 ? 25 : bytes == 4 ? 26 : 27)));
  for (int s = 8 * (bytes - 1); s >= 0; s -= 8) out.push_back(static_cast<char>(n >> s));
}
void text(std::string& out, const std::string& s) {
  head(out, 3, s.size());
  out += s;
}
std::string frame_of(const std::string& body) {
  return std::string(1, '\0') + body;
}

// The fields before "t" and "r", in the order a hand-written encoder might use.
std::string body_start(uint64_t fields) {
  std::string b;
  head(b, 5, fields);
  text(b, "v"), head(b, 0, 1);
  text(b, "o"), head(b, 0, 9);
  text(b, "b"), head(b, 0, 3);
  return b;
}
// One table "t" of columns id, x keyed by id.
void one_table(std::string& b) {
  text(b, "t"), head(b, 4, 1);
  head(b, 5, 4);
  text(b, "n"), text(b, "t");
  text(b, "h"), text(b, "h");
  text(b, "c"), head(b, 4, 2), text(b, "id"), text(b, "x");
  text(b, "k"), head(b, 4, 1), text(b, "id");
}

// What encode_batch (nlohmann's to_cbor) produced before the decoder was
// rewritten, for this batch: keys sorted (b, o, r, t, v: rows before tables),
// floats as the shortest exact width.
const char kOldFrame[] =
    "\x00\xa5\x61\x62\x07\x61\x6f\x18\x2a\x61\x72\x82\x85"
    "\x00\x1b\x01\xa2\x23\x5b\xfb\x2d\x00\x03"
    "\x00\x81\x01\x85\x21\x69\x62\x61\x64\x20\xff\x20\x75"
    "\x74\x66\xfb\x3f\xb9\x99\x99\x99\x99\x99"
    "\x9a\x42\x00\x78\xf6\x85\x00\x05\x01\x81\x3b\x7f\xff"
    "\xff\xff\xff\xff\xff\xff\x80\x61\x74\x81"
    "\xa4\x61\x63\x85\x62\x69\x64\x65\x74\x69\x74\x6c\x65"
    "\x65\x70\x72\x69\x63\x65\x65\x63\x6f\x76"
    "\x65\x72\x61\x6e\x61\x68\x63\x61\x62\x63\x61\x6b\x81"
    "\x62\x69\x64\x61\x6e\x65\x42\x6f\x6f\x6b"
    "\x73\x61\x76\x01";

Batch old_frame_batch() {
  Batch b;
  b.origin_node = 42;
  b.batch_id = 7;
  b.tables.push_back({"Books", "abc", {"id", "title", "price", "cover", "n"}, {"id"}, 0});
  RowChange r;
  r.table = 0;
  r.hlc = (int64_t{1795889560365} << 16) | 3;
  r.key = {int64_t{1}};
  r.values = {int64_t{-2}, Text{std::string("bad \xff utf8", 9)}, 0.1, Blob{std::string("\0x", 2)},
              Null{}};
  b.rows.push_back(r);
  RowChange d;
  d.table = 0;
  d.hlc = 5;
  d.deleted = true;
  d.key = {int64_t{std::numeric_limits<int64_t>::min()}};
  b.rows.push_back(d);
  return b;
}

void require_same(const Batch& a, const Batch& b) {
  REQUIRE(a.origin_node == b.origin_node);
  REQUIRE(a.batch_id == b.batch_id);
  REQUIRE(a.tables.size() == b.tables.size());
  for (size_t i = 0; i < a.tables.size(); ++i) {
    CHECK(a.tables[i].name == b.tables[i].name);
    CHECK(a.tables[i].schema_hash == b.tables[i].schema_hash);
    CHECK(a.tables[i].columns == b.tables[i].columns);
    CHECK(a.tables[i].key_columns == b.tables[i].key_columns);
  }
  REQUIRE(a.rows.size() == b.rows.size());
  for (size_t i = 0; i < a.rows.size(); ++i) {
    CHECK(a.rows[i].table == b.rows[i].table);
    CHECK(a.rows[i].hlc == b.rows[i].hlc);
    CHECK(a.rows[i].deleted == b.rows[i].deleted);
    REQUIRE(a.rows[i].key.size() == b.rows[i].key.size());
    REQUIRE(a.rows[i].values.size() == b.rows[i].values.size());
    for (size_t k = 0; k < a.rows[i].key.size(); ++k)
      CHECK(values_identical(a.rows[i].key[k], b.rows[i].key[k]));
    for (size_t k = 0; k < a.rows[i].values.size(); ++k)
      CHECK(values_identical(a.rows[i].values[k], b.rows[i].values[k]));
  }
}

}  // namespace

TEST_CASE(
    "a frame encoded by the previous build decodes, and is still what "
    "encode_batch writes",
    "[codec]") {
  const std::string old(kOldFrame, sizeof kOldFrame - 1);
  require_same(decode_batch(old), old_frame_batch());
  CHECK(encode_batch(old_frame_batch(), false) == old);
}

TEST_CASE(
    "batch fields decode in any order, unknown ones skipped, a repeated "
    "key's last wins",
    "[codec]") {
  // Tables before rows (the reverse of encode_batch's order), an unknown field
  // holding nested containers, and "o" twice.
  std::string b = body_start(7);
  text(b, "future"), head(b, 5, 1), text(b, "x"), head(b, 4, 2), head(b, 0, 1), text(b, "y");
  one_table(b);
  text(b, "r"), head(b, 4, 1);
  head(b, 4, 5), head(b, 0, 0), head(b, 0, 77), head(b, 0, 0);
  head(b, 4, 1), head(b, 0, 5);
  head(b, 4, 2), head(b, 0, 5), text(b, "five");
  text(b, "o"), head(b, 0, 11);
  const Batch out = decode_batch(frame_of(b));
  CHECK(out.origin_node == 11);
  CHECK(out.batch_id == 3);
  REQUIRE(out.rows.size() == 1);
  CHECK(out.rows[0].hlc == 77);
  CHECK(std::get<Text>(out.rows[0].values[1]).bytes == "five");
}

TEST_CASE("indefinite-length containers and strings decode like definite ones", "[codec]") {
  std::string b;
  b.push_back('\xbf');  // map, indefinite
  text(b, "v"), head(b, 0, 1);
  text(b, "o"), head(b, 0, 9);
  text(b, "b"), head(b, 0, 3);
  one_table(b);
  text(b, "r"), b.push_back('\x9f');  // rows, indefinite
  b.push_back('\x9f');                // a row, indefinite
  head(b, 0, 0), head(b, 0, 1), head(b, 0, 0);
  b.push_back('\x9f'), head(b, 0, 4), b.push_back('\xff');  // key, indefinite
  head(b, 4, 2), head(b, 0, 4);
  b.push_back('\x7f'), text(b, "in "), text(b, "chunks"),
      b.push_back('\xff');  // text in chunks
  b.push_back('\xff');      // end of the row
  b.push_back('\xff');      // end of the rows
  b.push_back('\xff');      // end of the map
  const Batch out = decode_batch(frame_of(b));
  REQUIRE(out.rows.size() == 1);
  CHECK(std::get<int64_t>(out.rows[0].key[0]) == 4);
  CHECK(std::get<Text>(out.rows[0].values[1]).bytes == "in chunks");
}

TEST_CASE(
    "a head declaring more entries than the limits admit allocates "
    "nothing for them",
    "[codec][bounds]") {
  SECTION("beyond the values left: refused at the head") {
    std::string b = body_start(5);
    one_table(b);
    text(b, "r"), head(b, 4, uint64_t{1} << 40);
    const auto o = decode_counting(frame_of(b));
    CHECK_THAT(o.error, Catch::Contains("CBOR array declaring 1099511627776 entries exceeds"));
    CHECK(o.allocated < 4096);  // the error text and the nesting stack
  }
  SECTION("within the values limit but absent: refused at the end of the body") {
    // 2 million rows would be ~144 MB of RowChange; the body holds 3.
    std::string b = body_start(5);
    one_table(b);
    text(b, "r"), head(b, 4, 2'000'000);
    for (int i = 0; i < 3; ++i) {
      head(b, 4, 5), head(b, 0, 0), head(b, 0, 1), head(b, 0, 1), head(b, 4, 1), head(b, 0, 1);
      head(b, 4, 0);
    }
    const auto o = decode_counting(frame_of(b));
    CHECK_THAT(o.error, Catch::StartsWith("malformed CBOR") && Catch::Contains("end of input"));
    CHECK(o.allocated < 4096);
  }
  SECTION("a text longer than the body") {
    std::string b = body_start(5);
    one_table(b);
    text(b, "r"), head(b, 4, 1);
    head(b, 4, 5), head(b, 0, 0), head(b, 0, 1), head(b, 0, 0), head(b, 4, 1), head(b, 0, 1);
    head(b, 4, 2), head(b, 0, 1), head(b, 3, 1'000'000'000);
    const auto o = decode_counting(frame_of(b));
    CHECK_THAT(o.error, Catch::Contains("end of input in a string"));
    CHECK(o.allocated < 4096);
  }
  SECTION("more values than max_values, each present") {
    DecodeLimits limits;
    limits.max_values = 1000;
    std::string b = body_start(5);
    one_table(b);
    text(b, "r"), b.push_back('\x9f');
    for (int i = 0; i < 400; ++i) {
      head(b, 4, 5), head(b, 0, 0), head(b, 0, 1), head(b, 0, 0), head(b, 4, 1), head(b, 0, 1);
      head(b, 4, 2), head(b, 0, 1), text(b, "a value of more than sixteen bytes");
    }
    b.push_back('\xff');
    const auto o = decode_counting(frame_of(b), limits);
    CHECK_THAT(o.error, Catch::Contains("exceeds the batch's 1000 values"));
    CHECK(o.allocated < 4096);
  }
}

TEST_CASE("nesting deeper than the limit inside a row value is refused", "[codec][bounds]") {
  std::string b = body_start(5);
  one_table(b);
  text(b, "r"), head(b, 4, 1);
  head(b, 4, 5), head(b, 0, 0), head(b, 0, 1), head(b, 0, 0), head(b, 4, 1), head(b, 0, 1);
  head(b, 4, 2), head(b, 0, 1);
  for (int i = 0; i < 3; ++i) head(b, 4, 1);  // 4 levels so far, 7 with these
  head(b, 0, 1);
  CHECK_THROWS_WITH(decode_batch(frame_of(b)), "CBOR nested deeper than 6 levels");
}

TEST_CASE(
    "every truncation and every one-byte corruption of a frame is an "
    "error or a batch",
    "[codec][bounds]") {
  Batch in = old_frame_batch();
  in.rows[0].values[4] = -0.0;
  for (const bool compress : {false, true}) {
    const std::string good = encode_batch(in, compress);
    for (size_t cut = 0; cut < good.size(); ++cut) {
      INFO("compressed " << compress << ", cut at " << cut << " of " << good.size());
      CHECK_THROWS_AS(decode_batch(good.substr(0, cut)), DecodeError);
    }
    if (compress) continue;  // zstd checks its own frame; the CBOR is what is exercised here
    for (size_t at = 1; at < good.size(); ++at)
      for (const int delta : {1, 0x20, 0x80, 0xff}) {
        std::string bad = good;
        bad[at] = static_cast<char>(static_cast<uint8_t>(bad[at]) ^ delta);
        INFO("byte " << at << " xor " << delta);
        try {
          decode_batch(bad);
        } catch (const DecodeError&) {
        }
      }
  }
}

TEST_CASE("batch errors keep the old decoder's order and texts", "[codec]") {
  // A wrong version wins over malformed rows that come before it in the body.
  std::string b;
  head(b, 5, 5);
  text(b, "r"), head(b, 4, 1), head(b, 0, 1);  // a row that is not an array
  text(b, "t"), head(b, 4, 0);
  text(b, "o"), head(b, 0, 1);
  text(b, "b"), head(b, 0, 1);
  text(b, "v"), head(b, 0, 2);
  CHECK_THROWS_WITH(decode_batch(frame_of(b)), Catch::StartsWith("unsupported format version 2"));
  // Tables are checked before rows, wherever they are.
  std::string c;
  head(c, 5, 5);
  text(c, "r"), head(c, 4, 1), head(c, 0, 1);
  text(c, "t"), head(c, 4, 1), head(c, 0, 1);  // a table entry that is not a map
  text(c, "o"), head(c, 0, 1);
  text(c, "b"), head(c, 0, 1);
  text(c, "v"), head(c, 0, 1);
  CHECK_THROWS_WITH(decode_batch(frame_of(c)), "table entry is not a map");
  std::string d = body_start(4);
  text(d, "t"), head(d, 4, 0);
  CHECK_THROWS_WITH(decode_batch(frame_of(d)), "batch: missing field \"r\"");
  std::string e = body_start(5);
  text(e, "t"), head(e, 4, 0);
  text(e, "r"), head(e, 5, 0);
  CHECK_THROWS_WITH(decode_batch(frame_of(e)), "batch: field \"r\" has the wrong type");
}

TEST_CASE("integers beyond 64-bit signed are refused, not wrapped", "[codec]") {
  for (const uint8_t major : {0, 1}) {
    std::string b = body_start(5);
    one_table(b);
    text(b, "r"), head(b, 4, 1);
    head(b, 4, 5), head(b, 0, 0), head(b, 0, 1), head(b, 0, 0), head(b, 4, 1), head(b, 0, 1);
    head(b, 4, 2), head(b, 0, 1), head(b, major, uint64_t{1} << 63);
    INFO("major type " << int{major});
    CHECK_THROWS_WITH(decode_batch(frame_of(b)), "integer value out of range");
  }
}

TEST_CASE("bytes CBOR does not define are malformed, named by offset", "[codec]") {
  std::string b = body_start(5);
  one_table(b);
  text(b, "r"), head(b, 4, 0);
  for (const char bad : {'\x1c', '\xc1', '\xf7', '\xf8', '\xff'}) {
    std::string x = b;
    x[x.size() - 1] = bad;  // in place of the empty rows array
    INFO("byte " << static_cast<int>(static_cast<uint8_t>(bad)));
    CHECK_THROWS_WITH(decode_batch(frame_of(x)),
                      Catch::StartsWith("malformed CBOR at byte " + std::to_string(x.size())));
  }
  CHECK_THROWS_WITH(decode_batch(frame_of(b + '\x00')),
                    Catch::Contains("bytes after the end of the batch"));
}
