// Issue 14 items 3 and 4: memory a replication message can make a replicator allocate. The part
// reassembly (replicator/wire/wire.cpp) must not size anything by a claimed part count nor keep
// incomplete batches for ever, and the decoder (replicator/wire/codec.cpp) must refuse a batch
// whose body, values or bytes exceed its limits before the document grows. Memory is measured
// in a forked child (peak RSS, VmHWM, reset through /proc/self/clear_refs) so that nothing else
// this process did counts.
#include <malloc.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zstd.h>
#include <catch2/catch.hpp>

#include <cstdio>
#include <cstring>
#include <fstream>
#include <functional>
#include <memory>
#include <string>

#include "replicator/wire/codec.hpp"
#include "replicator/wire/wire.hpp"

using namespace harmony;

namespace {

// Sanitizer builds add redzones, shadow memory and a quarantine to every allocation; their
// peaks are compared against a looser bound (the unbounded code still exceeds it many times).
#if defined(__SANITIZE_ADDRESS__)
constexpr long kSanitizerFactor = 3;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
constexpr long kSanitizerFactor = 3;
#else
constexpr long kSanitizerFactor = 1;
#endif
#else
constexpr long kSanitizerFactor = 1;
#endif

long status_kib(const char* field) {
  std::ifstream in("/proc/self/status");
  std::string line;
  const size_t n = std::strlen(field);
  while (std::getline(in, line))
    if (line.compare(0, n, field) == 0) return std::stol(line.substr(n + 1));
  return -1;
}

long rss_kib() {
  std::ifstream in("/proc/self/statm");
  long size = 0, resident = 0;
  in >> size >> resident;
  return resident * (sysconf(_SC_PAGESIZE) / 1024);
}

// Runs `work` in a forked child and returns how far its peak RSS rose above its RSS at the start,
// in MiB, and what `work` said (its text, e.g. the DecodeError).
struct ChildPeak {
  double growth_mib = -1;
  std::string said;
};
ChildPeak peak_growth_in_child(const std::function<std::string()>& work) {
  int fds[2];
  REQUIRE(pipe(fds) == 0);
  const pid_t pid = fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    close(fds[0]);
    malloc_trim(0);  // free heap memory the parent kept would hide the child's growth
    {
      std::ofstream clear("/proc/self/clear_refs");
      clear << "5";  // resets VmHWM to the current RSS
    }
    const long before = rss_kib();
    std::string said;
    try {
      said = work();
    } catch (const std::exception& e) {
      said = std::string("exception: ") + e.what();
    }
    const long peak = status_kib("VmHWM:");
    std::string msg = std::to_string(peak - before) + "\n" + said.substr(0, 300);
    (void)!write(fds[1], msg.data(), msg.size());
    close(fds[1]);
    _exit(0);
  }
  close(fds[1]);
  std::string msg;
  char buf[512];
  for (ssize_t n; (n = read(fds[0], buf, sizeof buf)) > 0;) msg.append(buf, static_cast<size_t>(n));
  close(fds[0]);
  int status = 0;
  waitpid(pid, &status, 0);
  ChildPeak r;
  const auto nl = msg.find('\n');
  if (nl == std::string::npos) return r;
  r.growth_mib = std::stod(msg.substr(0, nl)) / 1024.0;
  r.said = msg.substr(nl + 1);
  return r;
}

// A minimal CBOR writer for hand-made (hostile) bodies.
void head(std::string& out, uint8_t major, uint64_t n) {
  const auto m = static_cast<uint8_t>(major << 5);
  if (n < 24) {
    out.push_back(static_cast<char>(m | n));
  } else if (n <= 0xff) {
    out.push_back(static_cast<char>(m | 24));
    out.push_back(static_cast<char>(n));
  } else if (n <= 0xffff) {
    out.push_back(static_cast<char>(m | 25));
    for (int s = 8; s >= 0; s -= 8) out.push_back(static_cast<char>(n >> s));
  } else {
    out.push_back(static_cast<char>(m | 26));
    for (int s = 24; s >= 0; s -= 8) out.push_back(static_cast<char>(n >> s));
  }
}
void text(std::string& out, const std::string& s) {
  head(out, 3, s.size());
  out += s;
}

// A batch body of one table with `columns` columns and `rows` rows whose values are all 0 (one
// CBOR byte each): millions of tiny values from a few MB.
std::string tiny_values_body(uint32_t columns, uint32_t rows) {
  std::string b;
  head(b, 5, 5);
  text(b, "v"), head(b, 0, 1);
  text(b, "o"), head(b, 0, 9);
  text(b, "b"), head(b, 0, 1);
  text(b, "t"), head(b, 4, 1);
  head(b, 5, 4);
  text(b, "n"), text(b, "t");
  text(b, "h"), text(b, "h");
  text(b, "c"), head(b, 4, columns);
  for (uint32_t c = 0; c < columns; ++c) text(b, "c" + std::to_string(c));
  text(b, "k"), head(b, 4, 1), text(b, "c0");
  text(b, "r"), head(b, 4, rows);
  std::string row;
  head(row, 4, 5);
  head(row, 0, 0), head(row, 0, 1), head(row, 0, 0);
  head(row, 4, 1), head(row, 0, 0);
  head(row, 4, columns);
  row.append(columns, '\0');
  b.reserve(b.size() + row.size() * rows);
  for (uint32_t r = 0; r < rows; ++r) b += row;
  return b;
}

// A batch body with one row whose one value is a text of `bytes` bytes.
std::string huge_string_body(size_t bytes) {
  std::string b;
  head(b, 5, 5);
  text(b, "v"), head(b, 0, 1);
  text(b, "o"), head(b, 0, 9);
  text(b, "b"), head(b, 0, 1);
  text(b, "t"), head(b, 4, 1);
  head(b, 5, 4);
  text(b, "n"), text(b, "t");
  text(b, "h"), text(b, "h");
  text(b, "c"), head(b, 4, 2), text(b, "id"), text(b, "x");
  text(b, "k"), head(b, 4, 1), text(b, "id");
  text(b, "r"), head(b, 4, 1);
  head(b, 4, 5);
  head(b, 0, 0), head(b, 0, 1), head(b, 0, 0);
  head(b, 4, 1), head(b, 0, 1);
  head(b, 4, 2), head(b, 0, 1);
  head(b, 3, bytes);
  b.append(bytes, 'a');
  return b;
}

std::string plain_frame(const std::string& body) {
  return std::string(1, '\0') + body;
}

// `declare_size` false leaves the content size out of the zstd frame header, so the decoder
// only learns it by decompressing.
std::string zstd_frame(const std::string& body, bool declare_size = true) {
  std::unique_ptr<ZSTD_CCtx, decltype(&ZSTD_freeCCtx)> cctx(ZSTD_createCCtx(), ZSTD_freeCCtx);
  ZSTD_CCtx_setParameter(cctx.get(), ZSTD_c_compressionLevel, 19);
  ZSTD_CCtx_setParameter(cctx.get(), ZSTD_c_contentSizeFlag, declare_size ? 1 : 0);
  std::string f(1 + ZSTD_compressBound(body.size()), '\0');
  f[0] = 1;
  const size_t n = ZSTD_compress2(cctx.get(), f.data() + 1, f.size() - 1, body.data(), body.size());
  REQUIRE_FALSE(ZSTD_isError(n));
  f.resize(1 + n);
  return f;
}

std::string decode_outcome(const std::string& frame) {
  try {
    Batch b = decode_batch(frame);
    return "decoded " + std::to_string(b.rows.size()) + " rows";
  } catch (const DecodeError& e) {
    return std::string("DecodeError: ") + e.what();
  }
}

// The decoder's memory bound asserted below: the 32 MiB body limit plus the document that the
// 3 million values limit lets grow before it is refused (measured 57-65 MiB), with room for the
// allocator. (A well-formed batch near the values limit costs more: see the last test.)
constexpr double kDecodePeakBoundMiB = 80.0 * kSanitizerFactor;

}  // namespace

TEST_CASE("a part claiming 131072 parts does not allocate 131072 slots", "[security][wire]") {
  BatchAssembler assembler;
  const long before = rss_kib();
  for (uint64_t origin = 1; origin <= 100; ++origin) {
    IncomingPart p;
    p.stream_seq = origin;
    p.origin = 1000 + origin;  // made-up origins, one incomplete batch each
    p.batch = 1;
    p.index = 1;
    p.count = kMaxParts;
    p.payload = "x";
    assembler.add(std::move(p));
  }
  const double growth_mib = static_cast<double>(rss_kib() - before) / 1024.0;
  UNSCOPED_INFO("RSS growth after 100 parts claiming " << kMaxParts << " parts each: " << growth_mib
                                                       << " MiB");
  UNSCOPED_INFO("incomplete batches held: " << assembler.incomplete());
  CHECK(growth_mib < 8.0 * kSanitizerFactor);
  CHECK(assembler.incomplete() <= kMaxPendingBatches);
  CHECK(assembler.pending_bytes() <= kMaxPendingBytes);
  CHECK(assembler.pending_bytes() == assembler.incomplete());  // one byte each
}

TEST_CASE("pending parts are capped by bytes, the oldest incomplete batch dropped first",
          "[security][wire]") {
  BatchAssembler assembler;
  const std::string payload(1 << 20, 'p');  // 1 MiB parts
  uint64_t seq = 0;
  std::vector<std::string> dropped;
  for (uint64_t origin = 1; origin <= 2 * kMaxPendingBytes / payload.size(); ++origin) {
    IncomingPart p;
    p.stream_seq = ++seq;
    p.origin = origin;
    p.batch = 1;
    p.index = 1;
    p.count = 3;
    p.payload = payload;
    auto r = assembler.add(std::move(p));
    for (auto& d : r.dropped) dropped.push_back(d);
    REQUIRE(assembler.pending_bytes() <= kMaxPendingBytes);
  }
  REQUIRE_FALSE(dropped.empty());
  // The first one dropped is the oldest: origin 1's batch.
  CHECK_THAT(dropped.front(), Catch::Contains("batch 1 of node 1 dropped incomplete"));
  // The newest is still held and completes.
  const uint64_t last = 2 * kMaxPendingBytes / payload.size();
  std::optional<AssembledBatch> done;
  for (uint32_t i = 2; i <= 3; ++i) {
    IncomingPart p;
    p.stream_seq = ++seq;
    p.origin = last;
    p.batch = 1;
    p.index = i;
    p.count = 3;
    p.payload = "tail";
    done = assembler.add(std::move(p)).complete;
  }
  REQUIRE(done);
  CHECK(done->frame.size() == payload.size() + 8);
}

TEST_CASE("an incomplete batch stops pinning safe_position once it has expired",
          "[security][wire]") {
  BatchAssembler assembler;
  IncomingPart stuck;
  stuck.stream_seq = 1;
  stuck.origin = 666;
  stuck.batch = 1;
  stuck.index = 1;
  stuck.count = 2;  // part 2 never comes
  stuck.payload = "half";
  assembler.add(std::move(stuck));
  CHECK(assembler.safe_position(1) == 0);
  std::vector<std::string> dropped;
  const uint64_t until = 2 + kPendingExpirySeqs + 1;
  for (uint64_t seq = 2; seq <= until; ++seq) {
    IncomingPart p;
    p.stream_seq = seq;
    p.origin = 7;
    p.batch = seq;
    p.payload = "whole";
    auto r = assembler.add(std::move(p));
    REQUIRE(r.complete);
    for (auto& d : r.dropped) dropped.push_back(d);
  }
  UNSCOPED_INFO("safe position after " << until << " messages: " << assembler.safe_position(until));
  CHECK(assembler.safe_position(until) == until);
  CHECK(assembler.incomplete() == 0);
  REQUIRE(dropped.size() == 1);
  CHECK_THAT(dropped[0], Catch::Contains("batch 1 of node 666") && Catch::Contains("expired"));
}

TEST_CASE("a zstd bomb of tiny values is refused within the decoder's memory bound",
          "[security][wire][decode]") {
  // 10 MB of CBOR holding 10 million values, compressed to a few KB.
  const std::string frame = zstd_frame(tiny_values_body(1000, 10'000));
  INFO("frame: " << frame.size() << " bytes");
  auto peak = peak_growth_in_child([&] { return decode_outcome(frame); });
  INFO("decode: " << peak.said);
  INFO("peak RSS growth: " << peak.growth_mib << " MiB");
  CHECK(peak.growth_mib >= 0);
  CHECK(peak.growth_mib < kDecodePeakBoundMiB);
  CHECK_THAT(peak.said, Catch::StartsWith("DecodeError"));
}

TEST_CASE("a zstd bomb of one huge text is refused within the decoder's memory bound",
          "[security][wire][decode]") {
  const bool declare_size = GENERATE(true, false);
  const std::string frame = zstd_frame(huge_string_body(48u << 20), declare_size);
  INFO("frame: " << frame.size() << " bytes, content size declared: " << declare_size);
  auto peak = peak_growth_in_child([&] { return decode_outcome(frame); });
  INFO("decode: " << peak.said);
  INFO("peak RSS growth: " << peak.growth_mib << " MiB");
  CHECK(peak.growth_mib >= 0);
  CHECK(peak.growth_mib < kDecodePeakBoundMiB);
  CHECK_THAT(peak.said, Catch::StartsWith("DecodeError"));
}

TEST_CASE("a plain CBOR batch of millions of tiny values is refused within the memory bound",
          "[security][wire][decode]") {
  // 5 million values in a 5 MB frame, no compression needed.
  const std::string frame = plain_frame(tiny_values_body(100, 50'000));
  INFO("frame: " << frame.size() << " bytes");
  auto peak = peak_growth_in_child([&] { return decode_outcome(frame); });
  INFO("decode: " << peak.said);
  INFO("peak RSS growth: " << peak.growth_mib << " MiB");
  CHECK(peak.growth_mib >= 0);
  CHECK(peak.growth_mib < kDecodePeakBoundMiB);
  CHECK_THAT(peak.said, Catch::StartsWith("DecodeError"));
}

TEST_CASE("a plain CBOR body above the size limit is refused", "[security][wire][decode]") {
  DecodeLimits limits;
  limits.max_decoded_bytes = 1u << 20;
  const std::string frame = plain_frame(huge_string_body(2u << 20));
  CHECK_THROWS_WITH(decode_batch(frame, limits), Catch::Contains("exceeds"));
}

TEST_CASE("table and column names with control characters are refused at decode",
          "[security][wire][decode]") {
  const std::pair<std::string, std::string> cases[] = {
      {"evil\x1f", "evil\\x1f"}, {"a\x7f", "a\\x7f"}, {"x\ny", "x\\x0ay"}};
  for (const auto& [bad, shown] : cases) {
    for (int where = 0; where < 3; ++where) {
      Batch b;
      b.origin_node = 9;
      b.batch_id = 1;
      const std::string table = where == 0 ? bad : "books";
      b.tables.push_back(
          {table, "h", {"id", where == 1 ? bad : "title"}, {where == 2 ? bad : "id"}, 0});
      if (where == 2) b.tables[0].columns[0] = bad;
      RowChange r;
      r.table = 0;
      r.hlc = 1;
      r.key = {int64_t{1}};
      r.values = {int64_t{1}, Text{"t"}};
      b.rows.push_back(r);
      const std::string frame = encode_batch(b, false);
      INFO("bad name in " << (where == 0 ? "table" : where == 1 ? "column" : "key column"));
      CHECK_THROWS_AS(decode_batch(frame), DecodeError);
      CHECK_THROWS_WITH(decode_batch(frame), Catch::Contains("control character") &&
                                                 Catch::Contains(where == 0 ? shown : "books"));
    }
  }
}

TEST_CASE("a legitimate batch of scan_max_changes rows decodes under the default limits",
          "[security][wire][decode]") {
  // 100000 rows (scan_max_changes' default) of a key and 20 columns, texts and numbers.
  Batch b;
  b.origin_node = 9;
  b.batch_id = 1;
  BatchTable t{"items", "h", {}, {"id"}, 0};
  for (int c = 0; c < 20; ++c) t.columns.push_back("col" + std::to_string(c));
  b.tables.push_back(t);
  b.rows.reserve(100'000);
  for (int64_t i = 0; i < 100'000; ++i) {
    RowChange r;
    r.table = 0;
    r.hlc = i << 16;
    r.key = {i};
    for (int c = 0; c < 20; ++c)
      r.values.push_back(c % 2 ? Value{Text{"value " + std::to_string(i)}} : Value{i * c});
    b.rows.push_back(std::move(r));
  }
  const std::string frame = encode_batch(b, true);
  b = Batch{};
  auto peak = peak_growth_in_child([&] { return decode_outcome(frame); });
  INFO("frame: " << frame.size() << " bytes; peak RSS growth: " << peak.growth_mib << " MiB");
  CHECK(peak.said == "decoded 100000 rows");
}

TEST_CASE("a frame that asks for a huge zstd window leaves no big buffer behind",
          "[security][wire][decode]") {
  // The decoder keeps its zstd context between frames (one per thread). A frame may ask for a
  // 128 MiB window; the buffer it makes the context allocate must go with that frame.
  std::unique_ptr<ZSTD_CCtx, decltype(&ZSTD_freeCCtx)> cctx(ZSTD_createCCtx(), ZSTD_freeCCtx);
  ZSTD_CCtx_setParameter(cctx.get(), ZSTD_c_windowLog, 27);
  const std::string body = tiny_values_body(10, 10);
  std::string f(1 + ZSTD_compressBound(body.size()) + 64, '\0');
  f[0] = 1;
  ZSTD_inBuffer in{body.data(), body.size(), 0};
  ZSTD_outBuffer out{f.data() + 1, f.size() - 1, 0};
  // Streamed without a size, so the header keeps the window asked for.
  REQUIRE_FALSE(ZSTD_isError(ZSTD_compressStream2(cctx.get(), &out, &in, ZSTD_e_continue)));
  REQUIRE(ZSTD_compressStream2(cctx.get(), &out, &in, ZSTD_e_end) == 0);
  f.resize(1 + out.pos);
  // The frame header (RFC 8878 3.1.1.1): after the 4-byte magic, the descriptor byte; without
  // its single-segment bit, the window descriptor follows (window log = 10 + exponent).
  REQUIRE(f.size() > 6);
  const auto descriptor = static_cast<uint8_t>(f[5]);
  REQUIRE((descriptor & 0x20) == 0);
  REQUIRE(10 + (static_cast<uint8_t>(f[6]) >> 3) >= 26);  // a window of 64 MiB or more
  auto allocated = [] {
    const struct mallinfo2 m = mallinfo2();
    return m.uordblks + m.hblkhd;  // bytes in use, heap and mmap
  };
  decode_outcome(encode_batch(Batch{}, true));  // the thread's context exists
  const size_t before = allocated();
  const std::string said = decode_outcome(f);
  const size_t after = allocated();
  INFO("decode: " << said << "; held before " << before << ", after " << after);
  CHECK(after < before + (size_t{8} << 20));
}
