// CBOR (nlohmann::json) + zstd codec for batches; see codec.hpp for the format.
#include "replicator/wire/codec.hpp"

#include <zstd.h>

#include <algorithm>
#include <memory>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

namespace harmony {
namespace {

using json = nlohmann::json;

enum : uint8_t { kCodecCbor = 0, kCodecZstd = 1 };
constexpr int kZstdLevel = 1;  // fast: batches are small and latency matters more than ratio

json encode_value(const Value& v) {
  return std::visit(
      [](const auto& x) -> json {
        using T = std::decay_t<decltype(x)>;
        if constexpr (std::is_same_v<T, Null>)
          return nullptr;
        else if constexpr (std::is_same_v<T, int64_t>)
          return x;
        else if constexpr (std::is_same_v<T, double>)
          return x;
        else if constexpr (std::is_same_v<T, Text>)
          return x.bytes;
        else
          return json::binary(std::vector<uint8_t>(x.bytes.begin(), x.bytes.end()));
      },
      v);
}

// Wraps nlohmann's DOM builder and refuses, before the document grows: nesting deeper than the
// format can have (a million nested arrays would exhaust the stack), more CBOR items than
// DecodeLimits::max_values and more string, blob and key bytes than max_total_bytes. An array or
// map declaring more items than remain is refused at its head. Counting is a few integer
// operations per item, no allocation.
class BoundedSax {
 public:
  BoundedSax(json& root, const DecodeLimits& limits) : inner_(root, false), limits_(limits) {}
  bool null() { return item() && inner_.null(); }
  bool boolean(bool v) { return item() && inner_.boolean(v); }
  bool number_integer(json::number_integer_t v) { return item() && inner_.number_integer(v); }
  bool number_unsigned(json::number_unsigned_t v) { return item() && inner_.number_unsigned(v); }
  bool number_float(json::number_float_t v, const std::string& s) {
    return item() && inner_.number_float(v, s);
  }
  bool string(std::string& v) { return item() && bytes(v.size()) && inner_.string(v); }
  bool binary(json::binary_t& v) { return item() && bytes(v.size()) && inner_.binary(v); }
  bool start_object(std::size_t n) {
    if (!item() || !declared(n, "map", 2) || !deeper()) return false;
    return inner_.start_object(n);
  }
  bool key(std::string& k) { return item() && bytes(k.size()) && inner_.key(k); }
  bool end_object() {
    --depth_;
    return inner_.end_object();
  }
  bool start_array(std::size_t n) {
    if (!item() || !declared(n, "array", 1) || !deeper()) return false;
    return inner_.start_array(n);
  }
  bool end_array() {
    --depth_;
    return inner_.end_array();
  }
  bool parse_error(std::size_t pos, const std::string&, const nlohmann::detail::exception& ex) {
    error_ = fmt::format("malformed CBOR at byte {}: {}", pos, ex.what());
    return false;
  }
  const std::string& error() const { return error_; }

 private:
  static constexpr std::size_t kUnknownSize = static_cast<std::size_t>(-1);  // indefinite length

  bool item() {
    if (++values_ <= limits_.max_values) return true;
    return refuse(fmt::format("batch holds more than {} CBOR values", limits_.max_values));
  }
  // A container of `n` entries of `per_entry` items each (a map's: key and value), refused when
  // they cannot all fit in the items left. Indefinite lengths are counted as items arrive.
  bool declared(std::size_t n, const char* what, std::size_t per_entry) {
    if (n == kUnknownSize) return true;
    const std::size_t left = limits_.max_values - std::min(values_, limits_.max_values);
    if (n <= left / per_entry) return true;
    return refuse(fmt::format("CBOR {} declaring {} entries exceeds the batch's {} values", what, n,
                              limits_.max_values));
  }
  bool bytes(std::size_t n) {
    total_bytes_ += n;
    if (total_bytes_ <= limits_.max_total_bytes) return true;
    return refuse(fmt::format("batch holds more than {} bytes of text, blobs and keys",
                              limits_.max_total_bytes));
  }
  bool deeper() {
    if (++depth_ <= limits_.max_depth) return true;
    return refuse(fmt::format("CBOR nested deeper than {} levels", limits_.max_depth));
  }
  bool refuse(std::string why) {
    error_ = std::move(why);
    return false;
  }
  nlohmann::detail::json_sax_dom_parser<json> inner_;
  const DecodeLimits& limits_;
  int depth_ = 0;
  std::size_t values_ = 0;
  std::size_t total_bytes_ = 0;
  std::string error_;
};

std::string decompress(std::string_view data, size_t max_bytes) {
  std::unique_ptr<ZSTD_DCtx, decltype(&ZSTD_freeDCtx)> ctx(ZSTD_createDCtx(), ZSTD_freeDCtx);
  std::string out;
  size_t chunk_bytes = ZSTD_DStreamOutSize();  // zstd's recommended output buffer (128 KiB)
  // The frame's declared size, when it has one and it is within the limit, saves the doublings
  // (and the peak of old and new buffer) of growing the output; a false one costs nothing, as
  // pages reserved but never written are not resident.
  if (const auto declared = ZSTD_getFrameContentSize(data.data(), data.size());
      declared != ZSTD_CONTENTSIZE_UNKNOWN && declared != ZSTD_CONTENTSIZE_ERROR) {
    if (declared > max_bytes)  // refused before anything is decompressed
      throw DecodeError(
          fmt::format("zstd frame declares {} bytes, exceeds {} bytes", declared, max_bytes));
    out.reserve(static_cast<size_t>(declared));
    // A small frame needs no 128 KiB chunk: zero-filling it was 16 % of the instructions of
    // applying a 1-row batch (docs/performance.md). A false size only means more rounds.
    chunk_bytes = std::clamp<size_t>(static_cast<size_t>(declared), 1, chunk_bytes);
  }
  ZSTD_inBuffer in{data.data(), data.size(), 0};
  std::string chunk(chunk_bytes, '\0');
  size_t rc = 1;
  while (in.pos < in.size || rc != 0) {
    ZSTD_outBuffer ob{chunk.data(), chunk.size(), 0};
    rc = ZSTD_decompressStream(ctx.get(), &ob, &in);
    if (ZSTD_isError(rc))
      throw DecodeError(fmt::format("bad zstd data: {}", ZSTD_getErrorName(rc)));
    // Checked before appending, so the buffer never holds more than the limit.
    if (ob.pos > max_bytes - out.size())
      throw DecodeError(fmt::format("decompressed batch exceeds {} bytes", max_bytes));
    out.append(chunk.data(), ob.pos);
    if (in.pos == in.size && ob.pos == 0 && rc != 0) throw DecodeError("truncated zstd data");
  }
  return out;
}

const json& field(const json& obj, const char* name, json::value_t type, const char* what) {
  auto it = obj.find(name);
  if (it == obj.end()) throw DecodeError(fmt::format("{}: missing field \"{}\"", what, name));
  bool ok = it->type() == type ||
            (type == json::value_t::number_unsigned && it->is_number_integer() && *it >= 0);
  if (!ok) throw DecodeError(fmt::format("{}: field \"{}\" has the wrong type", what, name));
  return *it;
}

int64_t as_int64(const json& j, const char* what) {
  if (j.is_number_unsigned()) {
    auto u = j.get<uint64_t>();
    if (u > static_cast<uint64_t>(INT64_MAX))
      throw DecodeError(fmt::format("{} out of range", what));
    return static_cast<int64_t>(u);
  }
  if (j.is_number_integer()) return j.get<int64_t>();
  throw DecodeError(fmt::format("{} is not an integer", what));
}

uint64_t as_uint64(const json& j, const char* what) {
  if (j.is_number_unsigned()) return j.get<uint64_t>();
  if (j.is_number_integer() && j.get<int64_t>() >= 0)
    return static_cast<uint64_t>(j.get<int64_t>());
  throw DecodeError(fmt::format("{} is not a non-negative integer", what));
}

// Takes strings and blobs out of the document (moved, not copied).
Value decode_value(json& j, const DecodeLimits& limits) {
  switch (j.type()) {
    case json::value_t::null:
      return Null{};
    case json::value_t::number_integer:
    case json::value_t::number_unsigned:
      return as_int64(j, "integer value");
    case json::value_t::number_float:
      return j.get<double>();
    case json::value_t::string: {
      auto& s = j.get_ref<std::string&>();
      if (s.size() > limits.max_value_bytes) throw DecodeError("text value too large");
      return Text{std::move(s)};
    }
    case json::value_t::binary: {
      const auto& b = j.get_binary();
      if (b.size() > limits.max_value_bytes) throw DecodeError("blob value too large");
      return Blob{std::string(b.begin(), b.end())};
    }
    default:
      throw DecodeError("value of an unsupported type (boolean, array or map)");
  }
}

// A name with a control character (bytes below 0x20 and 0x7f) is refused: names end up in
// logs, status output and SQL text, where such bytes forge lines or hide what they are.
bool has_control_character(const std::string& s) {
  return std::any_of(s.begin(), s.end(), [](char c) {
    const auto u = static_cast<unsigned char>(c);
    return u < 0x20 || u == 0x7f;
  });
}

// The name with control characters and non-ASCII bytes shown as \xNN, for error texts.
std::string printable(const std::string& s) {
  std::string out;
  for (const char c : s.substr(0, 128)) {
    const auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u >= 0x7f)
      out += fmt::format("\\x{:02x}", u);
    else
      out += c;
  }
  return out;
}

std::vector<std::string> string_list(const json& j, const char* what, size_t max) {
  if (!j.is_array()) throw DecodeError(fmt::format("{} is not an array", what));
  if (j.size() > max) throw DecodeError(fmt::format("{} has too many entries", what));
  std::vector<std::string> out;
  for (const auto& e : j) {
    if (!e.is_string()) throw DecodeError(fmt::format("{} holds a non-string", what));
    out.push_back(e.get<std::string>());
  }
  return out;
}

// Steps of decode_batch: the frame to its CBOR body, the body to a document whose nesting is
// bounded, then the tables and the rows, each checked against the limits and each other.

// The CBOR body of a frame: the frame's own bytes, or, when the codec byte says zstd, the
// decompressed bytes (bounded) kept in `decompressed`.
std::string_view body_of_frame(std::string_view frame, const DecodeLimits& limits,
                               std::string& decompressed) {
  if (frame.empty()) throw DecodeError("empty message");
  const std::string_view body = frame.substr(1);
  switch (static_cast<uint8_t>(frame[0])) {
    case kCodecCbor:
      if (body.size() > limits.max_decoded_bytes)
        throw DecodeError(fmt::format("CBOR batch of {} bytes exceeds {} bytes", body.size(),
                                      limits.max_decoded_bytes));
      return body;
    case kCodecZstd:
      decompressed = decompress(body, limits.max_decoded_bytes);
      return decompressed;
    default:
      throw DecodeError(fmt::format("unknown codec byte {} (not a harmonylite batch?)",
                                    static_cast<int>(static_cast<uint8_t>(frame[0]))));
  }
}

json parse_cbor(std::string_view body, const DecodeLimits& limits) {
  json root;
  BoundedSax sax(root, limits);
  bool ok = false;
  try {
    ok = json::sax_parse(body.begin(), body.end(), &sax, json::input_format_t::cbor, true);
  } catch (const json::exception& e) {
    // Syntax errors arrive through sax.parse_error(); the DOM builder still throws for some
    // heads, e.g. an array or map declaring 2^63 elements ("excessive array size").
    throw DecodeError(fmt::format("malformed CBOR: {}", e.what()));
  }
  if (!ok) throw DecodeError(sax.error().empty() ? "malformed CBOR" : sax.error());
  if (!root.is_object()) throw DecodeError("batch is not a CBOR map");
  return root;
}

BatchTable decode_table(const json& t, const DecodeLimits& limits) {
  if (!t.is_object()) throw DecodeError("table entry is not a map");
  BatchTable bt;
  bt.name = field(t, "n", json::value_t::string, "table").get<std::string>();
  bt.schema_hash = field(t, "h", json::value_t::string, "table").get<std::string>();
  bt.columns =
      string_list(field(t, "c", json::value_t::array, "table"), "column list", limits.max_columns);
  bt.key_columns =
      string_list(field(t, "k", json::value_t::array, "table"), "key list", limits.max_columns);
  if (bt.name.empty()) throw DecodeError("empty table name");
  if (has_control_character(bt.name))
    throw DecodeError(
        fmt::format("table name \"{}\" holds a control character", printable(bt.name)));
  for (const auto* list : {&bt.columns, &bt.key_columns})
    for (const auto& c : *list)
      if (has_control_character(c))
        throw DecodeError(fmt::format("table \"{}\": column name \"{}\" holds a control character",
                                      printable(bt.name), printable(c)));
  if (bt.key_columns.empty())
    throw DecodeError(fmt::format("table \"{}\" has no key columns", bt.name));
  return bt;
}

RowChange decode_row(json& r, const std::vector<BatchTable>& tables, const DecodeLimits& limits) {
  if (!r.is_array() || r.size() != 5) throw DecodeError("row is not a 5-element array");
  RowChange rc;
  uint64_t ti = as_uint64(r[0], "row table index");
  if (ti >= tables.size()) throw DecodeError("row refers to a table index out of range");
  rc.table = static_cast<uint32_t>(ti);
  rc.hlc = as_int64(r[1], "row version");
  int64_t del = as_int64(r[2], "row tombstone flag");
  if (del != 0 && del != 1) throw DecodeError("row tombstone flag is not 0 or 1");
  rc.deleted = del == 1;
  if (!r[3].is_array() || !r[4].is_array()) throw DecodeError("row key or values is not an array");
  const auto& bt = tables[rc.table];
  if (r[3].size() != bt.key_columns.size())
    throw DecodeError(fmt::format("row key of table \"{}\" has {} values, expected {}", bt.name,
                                  r[3].size(), bt.key_columns.size()));
  if (rc.deleted ? !r[4].empty() : r[4].size() != bt.columns.size())
    throw DecodeError(fmt::format("row of table \"{}\" has {} values, expected {}", bt.name,
                                  r[4].size(), rc.deleted ? 0 : bt.columns.size()));
  rc.key.reserve(r[3].size());
  rc.values.reserve(r[4].size());
  for (auto& v : r[3]) rc.key.push_back(decode_value(v, limits));
  for (auto& v : r[4]) rc.values.push_back(decode_value(v, limits));
  return rc;
}

}  // namespace

std::string encode_batch(const Batch& batch, bool compress) {
  json tables = json::array();
  for (const auto& t : batch.tables)
    tables.push_back({{"n", t.name}, {"h", t.schema_hash}, {"c", t.columns}, {"k", t.key_columns}});
  json rows = json::array();
  for (const auto& r : batch.rows) {
    json key = json::array(), values = json::array();
    for (const auto& v : r.key) key.push_back(encode_value(v));
    for (const auto& v : r.values) values.push_back(encode_value(v));
    rows.push_back(
        json::array({r.table, r.hlc, r.deleted ? 1 : 0, std::move(key), std::move(values)}));
  }
  json body = {{"v", kWireFormatVersion},
               {"o", batch.origin_node},
               {"b", batch.batch_id},
               {"t", std::move(tables)},
               {"r", std::move(rows)}};
  std::vector<uint8_t> cbor = json::to_cbor(body);
  std::string frame;
  if (!compress) {
    frame.reserve(cbor.size() + 1);
    frame.push_back(static_cast<char>(kCodecCbor));
    frame.append(reinterpret_cast<const char*>(cbor.data()), cbor.size());
    return frame;
  }
  frame.resize(1 + ZSTD_compressBound(cbor.size()));
  frame[0] = static_cast<char>(kCodecZstd);
  size_t n =
      ZSTD_compress(frame.data() + 1, frame.size() - 1, cbor.data(), cbor.size(), kZstdLevel);
  if (ZSTD_isError(n))
    throw Error(fmt::format("zstd compression failed: {}", ZSTD_getErrorName(n)));
  frame.resize(1 + n);
  return frame;
}

Batch decode_batch(std::string_view frame, const DecodeLimits& limits) {
  std::string decompressed;
  json root = parse_cbor(body_of_frame(frame, limits, decompressed), limits);
  std::string().swap(decompressed);  // parsed: the body is not needed any more
  int64_t version =
      as_int64(field(root, "v", json::value_t::number_unsigned, "batch"), "format version");
  if (version != kWireFormatVersion)
    throw DecodeError(fmt::format("unsupported format version {} (this build reads {})", version,
                                  kWireFormatVersion));
  Batch b;
  b.origin_node =
      as_uint64(field(root, "o", json::value_t::number_unsigned, "batch"), "origin node");
  b.batch_id = as_uint64(field(root, "b", json::value_t::number_unsigned, "batch"), "batch id");
  const auto& tables = field(root, "t", json::value_t::array, "batch");
  if (tables.size() > limits.max_tables) throw DecodeError("too many tables in batch");
  for (const auto& t : tables) b.tables.push_back(decode_table(t, limits));
  field(root, "r", json::value_t::array, "batch");
  auto& rows = root["r"];
  if (rows.size() > limits.max_rows) throw DecodeError("too many rows in batch");
  b.rows.reserve(rows.size());
  // Each row's document is freed once decoded, so the document and the batch are not both whole
  // in memory at the peak.
  for (auto& r : rows) {
    b.rows.push_back(decode_row(r, b.tables, limits));
    r = nullptr;
  }
  return b;
}

json parse_bounded_cbor(std::string_view body, const DecodeLimits& limits) {
  return parse_cbor(body, limits);
}

json encode_wire_value(const Value& v) {
  return encode_value(v);
}

Value decode_wire_value(json& j, const DecodeLimits& limits) {
  return decode_value(j, limits);
}

}  // namespace harmony
