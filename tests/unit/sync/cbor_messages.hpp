// For the tests of the sync messages (anti-entropy, status): CBOR bytes from a JSON literal, and
// the reason a decoder refuses bytes with.
#pragma once
#include <string>

#include <nlohmann/json.hpp>

#include "replicator/wire/codec.hpp"

inline std::string cbor(const nlohmann::json& j) {
  auto b = nlohmann::json::to_cbor(j);
  return std::string(b.begin(), b.end());
}

// What `decode` throws as DecodeError; "" when it accepts its input.
template <class Decode>
std::string refusal_of(Decode&& decode) {
  try {
    decode();
  } catch (const harmony::DecodeError& e) {
    return e.what();
  }
  return "";
}
