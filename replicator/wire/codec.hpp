// Wire encoding of a Batch. Messages from the network are untrusted: decode_batch checks every
// type, size and nesting depth, the body's size and the totals of values and bytes (DecodeLimits),
// and names with control characters, and throws DecodeError with a reason instead of crashing.
//
// Frame (bytes): [codec byte: 0 = CBOR, 1 = zstd-compressed CBOR] [body]
// CBOR body: {"v": 1, "o": origin node, "b": batch id,
//             "t": [{"n": table, "h": schema hash, "c": [columns], "k": [key columns]}, ...],
//             "r": [[table index, hlc, deleted(0/1), [key values], [column values]], ...]}
// Values keep SQLite's storage class: CBOR null, integer (int64), float (bit-exact double),
// text string (raw bytes, invalid UTF-8 kept) and byte string (BLOB).
#pragma once
#include <cstdint>
#include <string>
#include <string_view>

#include <nlohmann/json_fwd.hpp>

#include "shared/batch.hpp"
#include "shared/error.hpp"

namespace harmony {

inline constexpr int64_t kWireFormatVersion = 1;

struct DecodeError : Error {
  using Error::Error;
};

// Everything a batch may make the decoder allocate is bounded by these, checked while the CBOR is
// parsed (before the document grows), never by what the message claims. The defaults keep one
// decode well under 100 MB of memory (tests/security/test_wire_bounds.cpp measures it) while
// admitting a batch of scan_max_changes (100000) ordinary rows.
struct DecodeLimits {
  // The CBOR body, plain or decompressed: 32 MiB is 100000 rows of ~330 bytes each; the
  // reassembly holds at most twice this (kMaxPendingBytes in wire.hpp).
  size_t max_decoded_bytes = kMaxBatchBodyBytes;
  // CBOR items of every kind (numbers, strings, arrays, maps, keys): each costs a document node
  // of 16 bytes or more. A row costs 6 + its key and column values, so 3 million admits 100000
  // rows of 24 columns.
  size_t max_values = kMaxBatchItems;
  // Bytes of all texts, blobs and map keys together (a body's strings are copied into the
  // document, then into the batch).
  size_t max_total_bytes = kMaxBatchStringBytes;
  size_t max_rows = 1'000'000;
  size_t max_tables = 10'000;
  size_t max_columns = 2'000;              // SQLite's default SQLITE_MAX_COLUMN
  size_t max_value_bytes = 1'000'000'000;  // SQLite's default SQLITE_MAX_LENGTH
  int max_depth = 6;                       // the format nests 4 levels deep
};

std::string encode_batch(const Batch& batch, bool compress);
Batch decode_batch(std::string_view frame, const DecodeLimits& limits = {});

// The same bounded CBOR parsing (a map at the root) and value mapping, for the anti-entropy
// messages (replicator/sync/sync_protocol.hpp). Throw DecodeError.
nlohmann::json parse_bounded_cbor(std::string_view body, const DecodeLimits& limits);
nlohmann::json encode_wire_value(const Value& v);
Value decode_wire_value(nlohmann::json& j, const DecodeLimits& limits);

}  // namespace harmony
