// libFuzzer target for everything that reads untrusted replication messages before the database
// sees them: decode_batch (replicator/wire/codec.cpp), the Harmony-* header parser and the part
// reassembly of replicator/wire/wire.cpp. Besides "no crash, no sanitizer report, no exception
// other than DecodeError", it checks three properties:
//   - a frame that decodes re-encodes (plain and compressed) to a frame that decodes to the same
//     batch (the codec is its own inverse on everything it accepts);
//   - any frame split by split_frame and fed to a BatchAssembler in order (with duplicates)
//     comes back whole and unchanged;
//   - fuzz-driven part sequences never make the assembler hand out a batch whose pieces do not
//     add up, or a safe position beyond what was handed in; with small fuzz-chosen bounds it
//     never holds more incomplete batches or bytes than its limits, and no incomplete batch
//     holds the safe position back further than the expiry distance.
// Each input is used three ways, so the seed corpus can simply hold encoded batch frames.
#include <fuzzer/FuzzedDataProvider.h>

#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <string>
#include <string_view>

#include "replicator/wire/codec.hpp"
#include "replicator/wire/wire.hpp"

using namespace harmony;

namespace {

[[noreturn]] void fail(const char* what) {
  std::fprintf(stderr, "fuzz_decode: property violated: %s\n", what);
  std::abort();
}

bool same_value(const Value& a, const Value& b) {
  if (a.index() != b.index()) return false;
  if (const auto* x = std::get_if<double>(&a)) {
    const double y = std::get<double>(b);
    if (std::isnan(*x)) return std::isnan(y);  // CBOR keeps NaN, not necessarily its payload
    return std::memcmp(x, &y, sizeof y) == 0;  // bit-exact: -0.0 stays -0.0
  }
  return a == b;
}

bool same_batch(const Batch& a, const Batch& b) {
  if (a.origin_node != b.origin_node || a.batch_id != b.batch_id) return false;
  if (a.tables.size() != b.tables.size() || a.rows.size() != b.rows.size()) return false;
  for (size_t i = 0; i < a.tables.size(); ++i) {
    const auto &x = a.tables[i], &y = b.tables[i];
    if (x.name != y.name || x.schema_hash != y.schema_hash || x.columns != y.columns ||
        x.key_columns != y.key_columns)
      return false;
  }
  for (size_t i = 0; i < a.rows.size(); ++i) {
    const auto &x = a.rows[i], &y = b.rows[i];
    if (x.table != y.table || x.hlc != y.hlc || x.deleted != y.deleted ||
        x.key.size() != y.key.size() || x.values.size() != y.values.size())
      return false;
    for (size_t k = 0; k < x.key.size(); ++k)
      if (!same_value(x.key[k], y.key[k])) return false;
    for (size_t k = 0; k < x.values.size(); ++k)
      if (!same_value(x.values[k], y.values[k])) return false;
  }
  return true;
}

// Small limits keep each execution fast; the checks are the same as with the defaults.
DecodeLimits fuzz_limits() {
  DecodeLimits l;
  l.max_decoded_bytes = 4u << 20;
  return l;
}

// Decodes; anything but DecodeError escapes and is reported by libFuzzer as a crash.
std::optional<Batch> try_decode(std::string_view frame) {
  try {
    return decode_batch(frame, fuzz_limits());
  } catch (const DecodeError&) {
    return std::nullopt;
  }
}

void check_round_trip(std::string_view frame) {
  auto b = try_decode(frame);
  if (!b) return;
  for (bool compress : {false, true}) {
    auto again = try_decode(encode_batch(*b, compress));
    if (!again) fail("a decoded batch, re-encoded, does not decode");
    if (!same_batch(*b, *again)) fail("a decoded batch, re-encoded, decodes differently");
  }
}

// Splits the frame and reassembles it, with a duplicate of every other part.
void check_split_and_reassemble(const std::string& frame, size_t part_bytes) {
  auto parts = split_frame(frame, 7, 42, part_bytes);
  BatchAssembler assembler;
  uint64_t seq = 0;
  std::optional<AssembledBatch> done;
  for (size_t i = 0; i < parts.size(); ++i) {
    for (int copy = 0; copy < (i % 2 ? 2 : 1); ++copy) {
      IncomingPart in;
      auto err = parse_part_headers(
          std::to_string(7), std::to_string(42),
          std::to_string(parts[i].index) + "/" + std::to_string(parts[i].count), in);
      if (err) fail("split_frame made a part whose headers do not parse");
      in.stream_seq = ++seq;
      in.payload = parts[i].payload;
      auto r = assembler.add(std::move(in));
      if (r.complete) {
        if (done) fail("one batch completed twice");
        done = std::move(r.complete);
      }
    }
  }
  if (frame.empty()) return;  // an empty frame is an empty part: ignored by design
  if (!done) fail("a split frame did not reassemble");
  if (done->frame != frame) fail("a reassembled frame differs from the original");
  if (done->origin != 7 || done->batch != 42 || done->first_seq > done->last_seq)
    fail("reassembled batch has the wrong identity or sequence range");
  if (assembler.incomplete() != 0) fail("assembler kept state after the batch completed");
}

// A header value: usually a small number (so parts of one batch meet), sometimes raw bytes.
std::optional<std::string> header(FuzzedDataProvider& fdp, uint32_t max) {
  switch (fdp.ConsumeIntegralInRange<int>(0, 7)) {
    case 0:
      return std::nullopt;
    case 1:
      return fdp.ConsumeRandomLengthString(24);
    default:
      return std::to_string(fdp.ConsumeIntegralInRange<uint32_t>(0, max));
  }
}

void check_assembler_sequence(const uint8_t* data, size_t size) {
  FuzzedDataProvider fdp(data, size);
  BatchAssembler::Limits limits;
  limits.max_pending_batches = fdp.ConsumeIntegralInRange<size_t>(1, 4);
  limits.max_pending_bytes = fdp.ConsumeIntegralInRange<size_t>(1, 256);
  limits.expiry_seqs = fdp.ConsumeIntegralInRange<uint64_t>(1, 32);
  BatchAssembler assembler(limits);
  uint64_t seq = 0;
  for (int n = 0; n < 64 && fdp.remaining_bytes() > 0; ++n) {
    auto origin = header(fdp, 7);
    auto batch = header(fdp, 3);
    std::optional<std::string> part;
    if (fdp.ConsumeBool()) {
      part = fdp.ConsumeRandomLengthString(16);
    } else {
      const auto count = fdp.ConsumeIntegralInRange<uint32_t>(0, 4);
      part = std::to_string(fdp.ConsumeIntegralInRange<uint32_t>(0, count + 1)) + "/" +
             std::to_string(count);
    }
    IncomingPart in;
    in.stream_seq = ++seq;
    if (parse_part_headers(origin, batch, part, in)) continue;  // rejected: dead letter
    if (in.origin == 0 || in.index < 1 || in.index > in.count || in.count > kMaxParts)
      fail("parse_part_headers accepted impossible headers");
    in.payload = fdp.ConsumeRandomLengthString(64);
    const uint32_t count = in.count;
    const uint64_t this_seq = in.stream_seq;
    auto r = assembler.add(std::move(in));
    if (r.complete) {
      const auto& c = *r.complete;
      if (c.last_seq != this_seq || c.first_seq > c.last_seq || c.frame.empty())
        fail("assembled batch with an impossible sequence range or empty frame");
      if (c.last_seq - c.first_seq + 1 < count)
        fail("batch completed with fewer messages than parts");
      try_decode(c.frame);
    }
    if (assembler.safe_position(seq) > seq) fail("safe position beyond what was handed in");
    if (assembler.incomplete() > limits.max_pending_batches)
      fail("more incomplete batches held than the limit");
    if (assembler.pending_bytes() > limits.max_pending_bytes)
      fail("more bytes of incomplete batches held than the limit");
    if (assembler.safe_position(seq) + limits.expiry_seqs + 1 < seq)
      fail("an incomplete batch holds the safe position back beyond its expiry");
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string frame(reinterpret_cast<const char*>(data), size);
  check_round_trip(frame);
  if (size > 0) check_split_and_reassemble(frame, 1 + data[0] % 64);
  check_assembler_sequence(data, size);
  return 0;
}
