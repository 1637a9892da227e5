// A SQLite value with its exact storage class: NULL, 64-bit integer, REAL (bit-exact double),
// TEXT (raw bytes, not necessarily valid UTF-8) or BLOB. This is what crosses the wire.
#pragma once
#include <cstdint>
#include <string>
#include <variant>
#include <vector>

namespace harmony {

struct Null {
  bool operator==(const Null&) const = default;
};
struct Text {
  std::string bytes;  // stored as SQLite holds it; invalid UTF-8 survives untouched
  bool operator==(const Text&) const = default;
};
struct Blob {
  std::string bytes;
  bool operator==(const Blob&) const = default;
};

using Value = std::variant<Null, int64_t, double, Text, Blob>;

inline bool is_null(const Value& v) {
  return std::holds_alternative<Null>(v);
}

// Bit-exact equality (REAL compared by bits so -0.0 != 0.0 and round trips can be checked).
bool values_identical(const Value& a, const Value& b);

}  // namespace harmony
