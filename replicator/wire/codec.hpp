// Wire encoding of a Batch. Messages from the network are untrusted: decode_batch checks every
// type, size and nesting depth and throws DecodeError with a reason instead of crashing.
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

#include "shared/batch.hpp"
#include "shared/error.hpp"

namespace harmony {

inline constexpr int64_t kWireFormatVersion = 1;

struct DecodeError : Error {
  using Error::Error;
};

struct DecodeLimits {
  size_t max_decoded_bytes = 256u << 20;  // zstd bombs stop here
  size_t max_rows = 1'000'000;
  size_t max_tables = 10'000;
  size_t max_columns = 2'000;              // SQLite's default SQLITE_MAX_COLUMN
  size_t max_value_bytes = 1'000'000'000;  // SQLite's default SQLITE_MAX_LENGTH
  int max_depth = 6;                       // the format nests 4 levels deep
};

std::string encode_batch(const Batch& batch, bool compress);
Batch decode_batch(std::string_view frame, const DecodeLimits& limits = {});

}  // namespace harmony
