// CBOR + zstd codec for batches; see codec.hpp for the format. Encoding goes through
// nlohmann::json (its bytes are the wire format every node reads); batches are decoded by a
// reader of our own in two passes (check_body, BatchReader: see "Decoding a batch" below); the
// anti-entropy messages keep nlohmann's bounded DOM (parse_bounded_cbor).
#include "replicator/wire/codec.hpp"

#include <zstd.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <limits>
#include <memory>
#include <new>
#include <vector>

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

// The limit messages, shared by the batch decoder and BoundedSax (anti-entropy messages).
std::string too_many_values(const DecodeLimits& l) {
  return fmt::format("batch holds more than {} CBOR values", l.max_values);
}
std::string too_many_entries(const char* what, uint64_t n, const DecodeLimits& l) {
  return fmt::format("CBOR {} declaring {} entries exceeds the batch's {} values", what, n,
                     l.max_values);
}
std::string too_many_bytes(const DecodeLimits& l) {
  return fmt::format("batch holds more than {} bytes of text, blobs and keys", l.max_total_bytes);
}
std::string too_deep(const DecodeLimits& l) {
  return fmt::format("CBOR nested deeper than {} levels", l.max_depth);
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
    return refuse(too_many_values(limits_));
  }
  // A container of `n` entries of `per_entry` items each (a map's: key and value), refused when
  // they cannot all fit in the items left. Indefinite lengths are counted as items arrive.
  bool declared(std::size_t n, const char* what, std::size_t per_entry) {
    if (n == kUnknownSize) return true;
    const std::size_t left = limits_.max_values - std::min(values_, limits_.max_values);
    if (n <= left / per_entry) return true;
    return refuse(too_many_entries(what, n, limits_));
  }
  bool bytes(std::size_t n) {
    total_bytes_ += n;
    if (total_bytes_ <= limits_.max_total_bytes) return true;
    return refuse(too_many_bytes(limits_));
  }
  bool deeper() {
    if (++depth_ <= limits_.max_depth) return true;
    return refuse(too_deep(limits_));
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

// zstd's contexts, one of each per thread and reused: creating a decompression context per
// frame (its ~100 KB of tables allocated and initialised) was ~14,000 of the ~25,000
// instructions of decoding a 1-row batch. A context reset between frames keeps nothing of the
// previous one that could change the next one's result.
using DCtxPtr = std::unique_ptr<ZSTD_DCtx, decltype(&ZSTD_freeDCtx)>;
DCtxPtr& thread_dctx() {
  thread_local DCtxPtr ctx(nullptr, ZSTD_freeDCtx);
  if (!ctx) ctx.reset(ZSTD_createDCtx());
  if (!ctx) throw std::bad_alloc();
  ZSTD_DCtx_reset(ctx.get(), ZSTD_reset_session_only);
  return ctx;
}

// A context keeps the window buffer of the largest frame it decoded. A frame may ask for a
// window of up to 128 MiB (zstd's default limit); one such frame, hostile or not, must not pin
// that much for the thread's lifetime: a context grown past this is freed after its frame.
constexpr size_t kMaxKeptDCtxBytes = size_t{4} << 20;  // our frames' windows are far smaller

ZSTD_CCtx& thread_cctx() {
  thread_local std::unique_ptr<ZSTD_CCtx, decltype(&ZSTD_freeCCtx)> ctx(ZSTD_createCCtx(),
                                                                        ZSTD_freeCCtx);
  if (!ctx) throw std::bad_alloc();
  return *ctx;
}

std::string decompress(std::string_view data, size_t max_bytes) {
  DCtxPtr& held = thread_dctx();
  ZSTD_DCtx& ctx = *held;
  struct ShrinkAfter {
    DCtxPtr& held;
    ~ShrinkAfter() {
      if (ZSTD_sizeof_DCtx(held.get()) > kMaxKeptDCtxBytes) held.reset();
    }
  } shrink_after{held};
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
    rc = ZSTD_decompressStream(&ctx, &ob, &in);
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

int64_t json_int64(const json& j, const char* what) {
  if (j.is_number_unsigned()) {
    auto u = j.get<uint64_t>();
    if (u > static_cast<uint64_t>(INT64_MAX))
      throw DecodeError(fmt::format("{} out of range", what));
    return static_cast<int64_t>(u);
  }
  if (j.is_number_integer()) return j.get<int64_t>();
  throw DecodeError(fmt::format("{} is not an integer", what));
}

// Takes strings and blobs out of the document (moved, not copied).
Value decode_value(json& j, const DecodeLimits& limits) {
  switch (j.type()) {
    case json::value_t::null:
      return Null{};
    case json::value_t::number_integer:
    case json::value_t::number_unsigned:
      return json_int64(j, "integer value");
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

// Decoding a batch: two passes over the CBOR body, no document in between.
//
// Hand-written, not nlohmann's SAX into the Batch, for two reasons the profile and the bounds
// test gave (docs/performance.md): nlohmann's reader builds every string byte by byte before its
// event (most of the DOM parse's cost), and a SAX handler filling the Batch would allocate each
// value (40 bytes, 2.5x a document node) before the values limit could refuse the batch, so the
// bombs of tests/security/test_wire_bounds.cpp would cost ~120 MiB before their refusal (bound:
// 80). Instead pass 1 (check_body) reads the whole body against every limit and allocates
// nothing but its nesting stack; only a body that passed is built (BatchReader), with vectors
// sized by counts pass 1 saw present, never by what a head claims.
//
// The reader takes the CBOR that nlohmann's reader took for these documents, with three
// exceptions, all of which no encoder of ours produces: negative integers below INT64_MIN (which
// nlohmann wrapped into other numbers) are refused as out of range, chunks of an indefinite-length
// string must be definite strings of its type (RFC 8949 3.2.3), and a definite length of 2^64-1
// (which nlohmann took for "indefinite") is a count like any other, so refused as too many.

// CBOR major types (RFC 8949 3.1).
enum Major : uint8_t {
  kUnsigned = 0,
  kNegative = 1,
  kByteString = 2,
  kTextString = 3,
  kArray = 4,
  kMap = 5,
  kTag = 6,
  kSimple = 7
};
constexpr uint8_t kIndefinite = 31;  // additional information: indefinite length
constexpr uint8_t kBreak = 0xff;     // ends an indefinite-length item
// Simple values and floats (major 7) by their additional information.
constexpr uint8_t kFalse = 20, kTrue = 21, kNull = 22, kHalf = 25, kSingle = 26, kDouble = 27;

// One item's head: its major type and argument (a number, a length, a count or float bits).
struct Head {
  uint8_t major = 0;
  uint8_t info = 0;  // additional information: < 24 the argument itself, 24-27 its size, 31
  uint64_t arg = 0;
  bool indefinite() const { return info == kIndefinite; }
};

// Bounds-checked reading of heads and string contents from a body in memory. Every read past the
// end, and every byte CBOR does not define, is a DecodeError naming the offset.
class CborReader {
 public:
  explicit CborReader(std::string_view in) : in_(in) {}
  size_t pos() const { return pos_; }
  void seek(size_t pos) { pos_ = pos; }
  bool at_end() const { return pos_ == in_.size(); }
  bool at_break() const { return pos_ < in_.size() && static_cast<uint8_t>(in_[pos_]) == kBreak; }
  void skip_break() { ++pos_; }

  Head head() {
    const size_t at = pos_;
    if (pos_ >= in_.size()) malformed(at, "unexpected end of input");
    const auto byte = static_cast<uint8_t>(in_[pos_++]);
    Head h{static_cast<uint8_t>(byte >> 5), static_cast<uint8_t>(byte & 0x1f), 0};
    if (h.info < 24) {
      h.arg = h.info;
      return h;
    }
    if (h.info <= 27) {
      const size_t n = size_t{1} << (h.info - 24);  // 1, 2, 4 or 8 argument bytes
      if (in_.size() - pos_ < n) malformed(at, "unexpected end of input in an item's head");
      for (size_t i = 0; i < n; ++i) h.arg = (h.arg << 8) | static_cast<uint8_t>(in_[pos_++]);
      return h;
    }
    if (h.info == kIndefinite && h.major >= kByteString && h.major <= kMap) return h;
    malformed(at, fmt::format("invalid byte 0x{:02x}", byte));
  }

  // The next `n` bytes (a string's content) as a view into the body.
  std::string_view bytes(uint64_t n) {
    if (n > in_.size() - pos_) malformed(pos_, "unexpected end of input in a string");
    const auto v = in_.substr(pos_, static_cast<size_t>(n));
    pos_ += static_cast<size_t>(n);
    return v;
  }

  // The content of a string whose head `h` was just read; an indefinite-length string's chunks
  // are passed to `chunk` one by one, a definite one's content once.
  template <class F>
  void string_chunks(const Head& h, F&& chunk) {
    if (!h.indefinite()) return chunk(bytes(h.arg));
    while (!at_break()) {
      const size_t at = pos_;
      const Head c = head();
      if (c.major != h.major || c.indefinite())
        malformed(at, "a chunk of an indefinite-length string is not a string of its type");
      chunk(bytes(c.arg));
    }
    skip_break();
  }

  [[noreturn]] static void malformed(size_t at, std::string_view what) {
    // 1-based, as nlohmann's reader counted (the old decoder's messages).
    throw DecodeError(fmt::format("malformed CBOR at byte {}: {}", at + 1, what));
  }

 private:
  std::string_view in_;
  size_t pos_ = 0;
};

// Pass 1: the whole body is well-formed CBOR of one item within every limit of DecodeLimits
// (values, bytes of strings and keys, nesting, and each container's declared entries against the
// values left), with map keys text strings and nothing after the item. Allocates only the stack
// of open containers (at most max_depth entries).
void check_body(std::string_view body, const DecodeLimits& limits) {
  struct Open {
    uint64_t left = 0;  // items still to come (a map's keys and values each count)
    bool indefinite = false;
    bool map = false;
    bool key_next = false;  // a map whose next item is a key
  };
  std::vector<Open> open;
  open.reserve(static_cast<size_t>(std::clamp(limits.max_depth, 0, 64)));
  CborReader r(body);
  uint64_t items = 0, string_bytes = 0;
  const auto item_done = [&] {
    if (open.empty()) return;
    auto& parent = open.back();
    if (!parent.indefinite) --parent.left;
    if (parent.map) parent.key_next = !parent.key_next;
  };
  do {
    if (!open.empty()) {
      const Open& top = open.back();
      if (top.indefinite ? r.at_break() : top.left == 0) {
        if (top.indefinite) {
          if (top.map && !top.key_next)
            CborReader::malformed(r.pos(), "an indefinite-length map ends between key and value");
          r.skip_break();
        }
        open.pop_back();
        item_done();
        continue;
      }
    }
    const size_t at = r.pos();
    const Head h = r.head();
    if (++items > limits.max_values) throw DecodeError(too_many_values(limits));
    if (!open.empty() && open.back().map && open.back().key_next && h.major != kTextString)
      CborReader::malformed(at, "a map key is not a text string");
    switch (h.major) {
      case kUnsigned:
      case kNegative:
        break;
      case kByteString:
      case kTextString: {
        uint64_t n = 0;  // at most the body's size: every chunk was read from it
        r.string_chunks(h, [&](std::string_view chunk) { n += chunk.size(); });
        string_bytes += n;
        if (string_bytes > limits.max_total_bytes) throw DecodeError(too_many_bytes(limits));
        break;
      }
      case kArray:
      case kMap: {
        const bool map = h.major == kMap;
        if (!h.indefinite()) {
          const uint64_t left = limits.max_values - std::min<uint64_t>(items, limits.max_values);
          if (h.arg > left / (map ? 2 : 1))
            throw DecodeError(too_many_entries(map ? "map" : "array", h.arg, limits));
        }
        if (static_cast<int64_t>(open.size()) + 1 > limits.max_depth)
          throw DecodeError(too_deep(limits));
        open.push_back({map ? 2 * h.arg : h.arg, h.indefinite(), map, map});
        continue;  // done when its entries are
      }
      case kTag:
        CborReader::malformed(at, fmt::format("tag {} (tags are not part of the format)", h.arg));
      default:  // kSimple
        if (h.info != kFalse && h.info != kTrue && h.info != kNull && h.info != kHalf &&
            h.info != kSingle && h.info != kDouble)
          CborReader::malformed(at,
                                fmt::format("simple value {} is not part of the format", h.arg));
    }
    item_done();
  } while (!open.empty());
  if (!r.at_end()) CborReader::malformed(r.pos(), "bytes after the end of the batch");
}

// An item where the format wants an integer: the old decoder's as_int64/as_uint64 checks.
struct Number {
  enum Kind { kPositive, kNegativeInt, kOther } kind = kOther;
  uint64_t arg = 0;  // the CBOR argument: the value, or for negatives -1 - value
};

int64_t as_int64(const Number& n, const char* what) {
  if (n.kind == Number::kOther) throw DecodeError(fmt::format("{} is not an integer", what));
  if (n.arg > static_cast<uint64_t>(INT64_MAX))
    throw DecodeError(fmt::format("{} out of range", what));
  const auto v = static_cast<int64_t>(n.arg);
  return n.kind == Number::kPositive ? v : -1 - v;
}

uint64_t as_uint64(const Number& n, const char* what) {
  if (n.kind != Number::kPositive)
    throw DecodeError(fmt::format("{} is not a non-negative integer", what));
  return n.arg;
}

double float_of(const Head& h) {
  switch (h.info) {
    case kHalf: {  // as nlohmann's reader converts it (RFC 8949 appendix D)
      const auto half = static_cast<unsigned>(h.arg);
      const int exp = static_cast<int>((half >> 10u) & 0x1fu);
      const unsigned mant = half & 0x3ffu;
      const double v = exp == 0    ? std::ldexp(mant, -24)
                       : exp == 31 ? (mant == 0 ? std::numeric_limits<double>::infinity()
                                                : std::numeric_limits<double>::quiet_NaN())
                                   : std::ldexp(mant + 1024, exp - 25);
      return (half & 0x8000u) != 0 ? -v : v;
    }
    case kSingle:
      return static_cast<double>(std::bit_cast<float>(static_cast<uint32_t>(h.arg)));
    default:
      return std::bit_cast<double>(h.arg);
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

// Pass 2: the Batch out of a body check_body accepted. The checks and messages are the ones of
// the decoder that went through a JSON document, in the same order: the root's fields are
// located first (any order, the last of a repeated key wins, unknown keys are skipped), then
// read as v, o, b, t, r, so rows are checked against tables that came after them in the body.
// The reader's own bounds checks still stand, so a disagreement with pass 1 is an error.
class BatchReader {
 public:
  BatchReader(std::string_view body, const DecodeLimits& limits) : r_(body), limits_(limits) {}

  Batch read() {
    const Head root = r_.head();
    if (root.major != kMap) throw DecodeError("batch is not a CBOR map");
    size_t v = kAbsent, o = kAbsent, b = kAbsent, t = kAbsent, rows = kAbsent;
    std::string scratch;
    for_each_entry(root, [&] {
      const std::string_view name = key(scratch);
      size_t* at = name == "v"   ? &v
                   : name == "o" ? &o
                   : name == "b" ? &b
                   : name == "t" ? &t
                   : name == "r" ? &rows
                                 : nullptr;
      if (at) *at = r_.pos();
      skip();
    });
    const int64_t version = as_int64(unsigned_field(v, "v", "batch"), "format version");
    if (version != kWireFormatVersion)
      throw DecodeError(fmt::format("unsupported format version {} (this build reads {})", version,
                                    kWireFormatVersion));
    Batch out;
    out.origin_node = as_uint64(unsigned_field(o, "o", "batch"), "origin node");
    out.batch_id = as_uint64(unsigned_field(b, "b", "batch"), "batch id");
    const Head tables = array_field(t, "t", "batch");
    const uint64_t n_tables = count(tables);
    if (n_tables > limits_.max_tables) throw DecodeError("too many tables in batch");
    out.tables.reserve(static_cast<size_t>(n_tables));
    for_each_entry(tables, [&] { out.tables.push_back(table()); });
    const Head row_list = array_field(rows, "r", "batch");
    const uint64_t n_rows = count(row_list);
    if (n_rows > limits_.max_rows) throw DecodeError("too many rows in batch");
    out.rows.reserve(static_cast<size_t>(n_rows));
    for_each_entry(row_list, [&] { out.rows.push_back(row(out.tables)); });
    return out;
  }

 private:
  static constexpr size_t kAbsent = static_cast<size_t>(-1);

  // Calls `f` once per entry of the container whose head `h` was just read (for a map, `f`
  // reads the key and the value), leaving the reader after the container.
  template <class F>
  void for_each_entry(const Head& h, F&& f) {
    if (h.indefinite()) {
      while (!r_.at_break()) f();
      r_.skip_break();
    } else {
      for (uint64_t i = 0; i < h.arg; ++i) f();
    }
  }

  // Entries of the container whose head `h` was just read, the reader staying where it is.
  uint64_t count(const Head& h) {
    if (!h.indefinite()) return h.arg;
    const size_t start = r_.pos();
    uint64_t n = 0;
    while (!r_.at_break()) {
      skip();
      if (h.major == kMap) skip();
      ++n;
    }
    r_.seek(start);
    return n;
  }

  void skip() { skip_rest(r_.head()); }
  // Skips what follows the head `h` just read: a string's content or a container's entries.
  // Definite containers (all that encode_batch writes) are walked with a count of the items left
  // instead of a call per item: skipping the rows once to find the fields after them was 4 % of
  // applying a 1000-row batch with recursion.
  void skip_rest(const Head& h) {
    uint64_t left = 0;  // at most max_values: pass 1 counted these items
    for (Head cur = h;; cur = r_.head()) {
      switch (cur.major) {
        case kByteString:
        case kTextString:
          if (cur.indefinite())
            r_.string_chunks(cur, [](std::string_view) {});
          else
            r_.bytes(cur.arg);
          break;
        case kArray:
        case kMap:
          if (!cur.indefinite()) {
            left += cur.major == kMap ? 2 * cur.arg : cur.arg;
            break;
          }
          while (!r_.at_break()) {
            skip();
            if (cur.major == kMap) skip();
          }
          r_.skip_break();
          break;
        default:
          break;
      }
      if (left == 0) return;
      --left;
    }
  }

  std::string_view key(std::string& scratch) {
    const Head h = r_.head();
    if (h.major != kTextString) CborReader::malformed(r_.pos(), "a map key is not a text string");
    if (!h.indefinite()) return r_.bytes(h.arg);
    scratch.clear();
    r_.string_chunks(h, [&](std::string_view c) { scratch.append(c); });
    return scratch;
  }

  std::string string_content(const Head& h) {
    if (!h.indefinite()) return std::string(r_.bytes(h.arg));
    std::string s;
    r_.string_chunks(h, [&](std::string_view c) { s.append(c); });
    return s;
  }

  Number number() {
    const Head h = r_.head();
    if (h.major == kUnsigned) return {Number::kPositive, h.arg};
    if (h.major == kNegative) return {Number::kNegativeInt, h.arg};
    skip_rest(h);
    return {};
  }

  [[noreturn]] static void missing(const char* what, const char* name) {
    throw DecodeError(fmt::format("{}: missing field \"{}\"", what, name));
  }
  [[noreturn]] static void wrong_type(const char* what, const char* name) {
    throw DecodeError(fmt::format("{}: field \"{}\" has the wrong type", what, name));
  }

  // A field that must be a non-negative integer (the old decoder's number_unsigned check).
  Number unsigned_field(size_t at, const char* name, const char* what) {
    if (at == kAbsent) missing(what, name);
    r_.seek(at);
    const Number n = number();
    if (n.kind != Number::kPositive) wrong_type(what, name);
    return n;
  }

  Head array_field(size_t at, const char* name, const char* what) {
    if (at == kAbsent) missing(what, name);
    r_.seek(at);
    const Head h = r_.head();
    if (h.major != kArray) wrong_type(what, name);
    return h;
  }

  std::string text_field(size_t at, const char* name, const char* what) {
    if (at == kAbsent) missing(what, name);
    r_.seek(at);
    const Head h = r_.head();
    if (h.major != kTextString) wrong_type(what, name);
    return string_content(h);
  }

  std::vector<std::string> string_list(size_t at, const char* name, const char* what, size_t max) {
    const Head h = array_field(at, name, "table");
    const uint64_t n = count(h);
    if (n > max) throw DecodeError(fmt::format("{} has too many entries", what));
    std::vector<std::string> out;
    out.reserve(static_cast<size_t>(n));
    for_each_entry(h, [&] {
      const Head e = r_.head();
      if (e.major != kTextString) throw DecodeError(fmt::format("{} holds a non-string", what));
      out.push_back(string_content(e));
    });
    return out;
  }

  BatchTable table() {
    const Head h = r_.head();
    if (h.major != kMap) throw DecodeError("table entry is not a map");
    size_t n = kAbsent, hash = kAbsent, c = kAbsent, k = kAbsent;
    std::string scratch;
    for_each_entry(h, [&] {
      const std::string_view name = key(scratch);
      size_t* at = name == "n"   ? &n
                   : name == "h" ? &hash
                   : name == "c" ? &c
                   : name == "k" ? &k
                                 : nullptr;
      if (at) *at = r_.pos();
      skip();
    });
    const size_t end = r_.pos();
    BatchTable bt;
    bt.name = text_field(n, "n", "table");
    bt.schema_hash = text_field(hash, "h", "table");
    bt.columns = string_list(c, "c", "column list", limits_.max_columns);
    bt.key_columns = string_list(k, "k", "key list", limits_.max_columns);
    r_.seek(end);
    if (bt.name.empty()) throw DecodeError("empty table name");
    if (has_control_character(bt.name))
      throw DecodeError(
          fmt::format("table name \"{}\" holds a control character", printable(bt.name)));
    for (const auto* list : {&bt.columns, &bt.key_columns})
      for (const auto& col : *list)
        if (has_control_character(col))
          throw DecodeError(
              fmt::format("table \"{}\": column name \"{}\" holds a control character",
                          printable(bt.name), printable(col)));
    if (bt.key_columns.empty())
      throw DecodeError(fmt::format("table \"{}\" has no key columns", bt.name));
    return bt;
  }

  Value value() {
    const Head h = r_.head();
    switch (h.major) {
      case kUnsigned:
      case kNegative:
        return as_int64({h.major == kUnsigned ? Number::kPositive : Number::kNegativeInt, h.arg},
                        "integer value");
      case kTextString:
      case kByteString: {
        const bool text = h.major == kTextString;
        if (!h.indefinite() && h.arg > limits_.max_value_bytes)  // before copying it
          throw DecodeError(text ? "text value too large" : "blob value too large");
        std::string s = string_content(h);
        if (s.size() > limits_.max_value_bytes)
          throw DecodeError(text ? "text value too large" : "blob value too large");
        if (text) return Text{std::move(s)};
        return Blob{std::move(s)};
      }
      case kSimple:
        if (h.info == kNull) return Null{};
        if (h.info == kHalf || h.info == kSingle || h.info == kDouble) return float_of(h);
        break;
      default:
        break;
    }
    throw DecodeError("value of an unsupported type (boolean, array or map)");
  }

  RowChange row(const std::vector<BatchTable>& tables) {
    const Head h = r_.head();
    if (h.major != kArray || count(h) != 5) throw DecodeError("row is not a 5-element array");
    RowChange rc;
    const uint64_t ti = as_uint64(number(), "row table index");
    if (ti >= tables.size()) throw DecodeError("row refers to a table index out of range");
    rc.table = static_cast<uint32_t>(ti);
    rc.hlc = as_int64(number(), "row version");
    const int64_t del = as_int64(number(), "row tombstone flag");
    if (del != 0 && del != 1) throw DecodeError("row tombstone flag is not 0 or 1");
    rc.deleted = del == 1;
    // Both lists' heads and sizes are checked before either's values are read.
    const Head key_head = r_.head();
    const size_t key_first = r_.pos();
    skip_rest(key_head);
    const Head values_head = r_.head();
    const size_t values_first = r_.pos();
    if (key_head.major != kArray || values_head.major != kArray)
      throw DecodeError("row key or values is not an array");
    const auto& bt = tables[rc.table];
    r_.seek(key_first);
    const uint64_t n_key = count(key_head);
    r_.seek(values_first);
    const uint64_t n_values = count(values_head);
    if (n_key != bt.key_columns.size())
      throw DecodeError(fmt::format("row key of table \"{}\" has {} values, expected {}", bt.name,
                                    n_key, bt.key_columns.size()));
    if (rc.deleted ? n_values != 0 : n_values != bt.columns.size())
      throw DecodeError(fmt::format("row of table \"{}\" has {} values, expected {}", bt.name,
                                    n_values, rc.deleted ? 0 : bt.columns.size()));
    r_.seek(key_first);
    rc.key.reserve(static_cast<size_t>(n_key));
    for_each_entry(key_head, [&] { rc.key.push_back(value()); });
    rc.values.reserve(static_cast<size_t>(n_values));
    r_.seek(values_first);
    for_each_entry(values_head, [&] { rc.values.push_back(value()); });
    if (h.indefinite()) {
      if (!r_.at_break()) throw DecodeError("row is not a 5-element array");
      r_.skip_break();
    }
    return rc;
  }

  CborReader r_;
  const DecodeLimits& limits_;
};

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
  size_t n = ZSTD_compressCCtx(&thread_cctx(), frame.data() + 1, frame.size() - 1, cbor.data(),
                               cbor.size(), kZstdLevel);
  if (ZSTD_isError(n))
    throw Error(fmt::format("zstd compression failed: {}", ZSTD_getErrorName(n)));
  frame.resize(1 + n);
  return frame;
}

Batch decode_batch(std::string_view frame, const DecodeLimits& limits) {
  std::string decompressed;
  const std::string_view body = body_of_frame(frame, limits, decompressed);
  check_body(body, limits);  // every limit, before anything is allocated
  return BatchReader(body, limits).read();
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
