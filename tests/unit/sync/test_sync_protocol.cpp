// Anti-entropy messages (replicator/sync/sync_protocol.hpp): round trips, and untrusted bytes
// refused with a reason naming what is wrong - never a crash, never an allocation sized by what
// the message claims.
#include <catch2/catch.hpp>

#include <nlohmann/json.hpp>

#include "cbor_messages.hpp"
#include "replicator/sync/sync_protocol.hpp"

using namespace harmony;
using json = nlohmann::json;

namespace {

std::string refusal(const std::string& bytes) {
  return refusal_of([&] { decode_request(bytes); });
}

}  // namespace

TEST_CASE("sync requests and replies round-trip", "[sync_protocol]") {
  SyncRequest rq{SyncKind::Rows, 7, "Books", 0, 0, {}, {{Value{int64_t{1}}}, {Value{Text{"x"}}}}};
  SyncRequest back = decode_request(encode_request(rq));
  CHECK(back.kind == SyncKind::Rows);
  CHECK(back.from_node == 7);
  CHECK(back.table == "Books");
  REQUIRE(back.keys.size() == 2);
  CHECK(std::get<Text>(back.keys[1][0]).bytes == "x");

  SyncReply r;
  r.node = 3;
  r.complete = {1, 9};
  r.entries.push_back({{Value{int64_t{5}}}, RowVersion{123, 2, true}});
  SyncReply got = decode_reply(SyncKind::Entries, encode_reply(SyncKind::Entries, r));
  CHECK(got.node == 3);
  CHECK(got.complete == std::vector<uint32_t>{1, 9});
  REQUIRE(got.entries.size() == 1);
  CHECK(got.entries[0].version == RowVersion{123, 2, true});
}

TEST_CASE("malformed or oversized sync messages are refused with a reason", "[sync_protocol]") {
  CHECK(refusal("\xff\x00garbage").find("CBOR") != std::string::npos);
  CHECK(refusal(cbor({{"v", 2}, {"t", 1}, {"n", 1}})).find("version 2") != std::string::npos);
  CHECK(refusal(cbor({{"v", 1}, {"t", 9}, {"n", 1}})).find("unknown request kind") !=
        std::string::npos);
  CHECK(refusal(cbor({{"v", 1}, {"t", 2}, {"n", 1}, {"tb", "t"}, {"f", 4000}, {"c", 1024}}))
            .find("out of range") != std::string::npos);
  CHECK(refusal(cbor({{"v", 1}, {"t", 3}, {"n", 1}, {"tb", "t"}, {"b", {kDigestBuckets}}}))
            .find("bucket 4096 out of range") != std::string::npos);
  json many = json::array();
  for (size_t i = 0; i <= kMaxBucketsPerRequest; ++i) many.push_back(1);
  CHECK(refusal(cbor({{"v", 1}, {"t", 3}, {"n", 1}, {"tb", "t"}, {"b", many}}))
            .find("more than 256") != std::string::npos);
  CHECK(refusal(cbor({{"v", 1}, {"t", 4}, {"n", 1}, {"tb", "t"}, {"k", {json::array()}}}))
            .find("empty key") != std::string::npos);
  // An array head claiming 2^32 entries is refused before anything is allocated for it.
  std::string head = cbor({{"v", 1}, {"t", 4}, {"n", 1}, {"tb", "t"}, {"k", nullptr}});
  head.back() = '\x9a';  // array of 4-byte length ...
  head += std::string("\xff\xff\xff\xff", 4);
  CHECK(!refusal(head).empty());
  CHECK(refusal(std::string(kMaxSyncMessageBytes + 1, '\0')).find("exceeds") != std::string::npos);
  // Replies: a bucket page running past the last bucket, an entry of the wrong shape.
  json page = json::array();
  for (int i = 0; i < 97; ++i) page.push_back(i);  // 4000 + 97 > 4096
  CHECK_THROWS_AS(
      decode_reply(SyncKind::Buckets, cbor({{"v", 1}, {"n", 2}, {"f", 4000}, {"h", page}})),
      DecodeError);
  CHECK_THROWS_AS(
      decode_reply(SyncKind::Entries,
                   cbor({{"v", 1}, {"n", 2}, {"done", {1}}, {"e", {json::array({1, 2})}}})),
      DecodeError);
}

TEST_CASE("content scrub requests and replies round-trip and are bounded",
          "[sync_protocol][scrub]") {
  SyncRequest rq{SyncKind::Scrub, 4, "Books", 1024, kScrubPage, {}, {}};
  SyncRequest back = decode_request(encode_request(rq));
  CHECK(back.kind == SyncKind::Scrub);
  CHECK(back.first == 1024);
  CHECK(back.count == kScrubPage);
  CHECK(refusal(cbor({{"v", 1}, {"t", 6}, {"n", 1}, {"tb", "t"}, {"f", 0}, {"c", kScrubPage + 1}}))
            .find("out of range") != std::string::npos);
  CHECK(refusal(cbor({{"v", 1}, {"t", 6}, {"n", 1}, {"tb", "t"}, {"f", 4095}, {"c", 2}}))
            .find("out of range") != std::string::npos);
  SyncReply r;
  r.node = 2;
  r.first = 8;
  r.hashes = {1, 2, 3};
  SyncReply got = decode_reply(SyncKind::Scrub, encode_reply(SyncKind::Scrub, r));
  CHECK(got.first == 8);
  CHECK(got.hashes == std::vector<uint64_t>{1, 2, 3});
}

TEST_CASE("a roots reply carries the tombstone GC report and an older peer's reply has none",
          "[sync_protocol][tombstone_gc]") {
  SyncReply r;
  r.node = 4;
  r.tables.push_back({"t", 99, 3});
  r.gc = GcReport{SafeMark{12345, {{"h-1", 10}, {"h-2", 7}}}, 12000, true};
  SyncReply got = decode_reply(SyncKind::Roots, encode_reply(SyncKind::Roots, r));
  REQUIRE(got.gc);
  CHECK(*got.gc == *r.gc);
  r.gc = GcReport{std::nullopt, 0, false};  // never caught up yet
  got = decode_reply(SyncKind::Roots, encode_reply(SyncKind::Roots, r));
  REQUIRE(got.gc);
  CHECK_FALSE(got.gc->mark);
  // A peer from before tombstone GC: no "gc" field at all -> no report.
  got =
      decode_reply(SyncKind::Roots,
                   cbor({{"v", 1}, {"n", 4}, {"tables", json::array({json::array({"t", 1, 2})})}}));
  CHECK_FALSE(got.gc);

  auto refused = [](const json& gc) {
    return refusal_of([&] {
      decode_reply(SyncKind::Roots,
                   cbor({{"v", 1}, {"n", 4}, {"tables", json::array()}, {"gc", gc}}));
    });
  };
  CHECK_THAT(refused(json::array()), Catch::Contains("not a map"));
  CHECK_THAT(refused({{"H", -1}, {"i", 0}}), Catch::Contains("horizon"));
  CHECK_THAT(refused({{"H", 1}, {"i", 2}}), Catch::Contains("incomplete"));
  CHECK_THAT(refused({{"H", 1}, {"i", 0}, {"h", 5}}), Catch::Contains("\"p\""));
  json many = json::array();
  for (size_t i = 0; i <= kMaxGcStreams; ++i)
    many.push_back(json::array({"s" + std::to_string(i), 1}));
  CHECK_THAT(refused({{"H", 1}, {"i", 0}, {"h", 5}, {"p", many}}), Catch::Contains("more than"));
  CHECK_THAT(refused({{"H", 1},
                      {"i", 0},
                      {"h", 5},
                      {"p", json::array({json::array({"s", 1}), json::array({"s", 2})})}}),
             Catch::Contains("twice"));
  CHECK_THAT(refused({{"H", 1}, {"i", 0}, {"h", 5}, {"p", json::array({json::array({"", 1})})}}),
             Catch::Contains("stream name"));
  CHECK_THAT(refused({{"H", 1}, {"i", 0}, {"h", 5}, {"p", json::array({json::array({"s", -3})})}}),
             Catch::Contains("sequence"));
}
