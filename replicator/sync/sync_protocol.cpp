// Anti-entropy messages: CBOR encoding and bounded decoding (see sync_protocol.hpp).
#include "replicator/sync/sync_protocol.hpp"

#include <fmt/format.h>

#include <nlohmann/json.hpp>

#include "replicator/sync/status_protocol.hpp"

namespace harmony {

namespace {

using json = nlohmann::json;

DecodeLimits sync_limits() {
  DecodeLimits l;
  l.max_decoded_bytes = kMaxSyncMessageBytes;
  l.max_values = kMaxSyncItems;
  l.max_total_bytes = kMaxSyncMessageBytes;
  l.max_depth = 5;  // map > entries > entry > key > value
  l.max_value_bytes = kMaxSyncMessageBytes;
  return l;
}

const json* find(const json& obj, const char* name) {
  auto it = obj.find(name);
  return it == obj.end() ? nullptr : &*it;
}

const json& need(const json& obj, const char* name, const char* what) {
  const json* j = find(obj, name);
  if (!j) throw DecodeError(fmt::format("{}: missing field \"{}\"", what, name));
  return *j;
}

uint64_t need_u64(const json& j, const char* what) {
  if (j.is_number_unsigned()) return j.get<uint64_t>();
  if (j.is_number_integer() && j.get<int64_t>() >= 0)
    return static_cast<uint64_t>(j.get<int64_t>());
  throw DecodeError(fmt::format("{} is not a non-negative integer", what));
}

int64_t need_i64(const json& j, const char* what) {
  if (j.is_number_integer() && !j.is_number_unsigned()) return j.get<int64_t>();
  if (j.is_number_unsigned() && j.get<uint64_t>() <= static_cast<uint64_t>(INT64_MAX))
    return static_cast<int64_t>(j.get<uint64_t>());
  throw DecodeError(fmt::format("{} is not a 64-bit integer", what));
}

const json& need_array(const json& j, const char* what, size_t max) {
  if (!j.is_array()) throw DecodeError(fmt::format("{} is not an array", what));
  if (j.size() > max)
    throw DecodeError(fmt::format("{} holds {} entries, more than {}", what, j.size(), max));
  return j;
}

// The same for an array whose values are moved out while decoding.
json& need_array_field(json& obj, const char* name, const char* what, size_t max) {
  auto it = obj.find(name);
  if (it == obj.end()) throw DecodeError(fmt::format("{}: missing field \"{}\"", what, name));
  need_array(*it, name, max);
  return *it;
}

uint32_t need_bucket(const json& j) {
  const uint64_t b = need_u64(j, "bucket");
  if (b >= kDigestBuckets) throw DecodeError(fmt::format("bucket {} out of range", b));
  return static_cast<uint32_t>(b);
}

json encode_key(const std::vector<Value>& key) {
  json k = json::array();
  for (const auto& v : key) k.push_back(encode_wire_value(v));
  return k;
}

std::vector<Value> decode_key(json& j, const DecodeLimits& limits) {
  need_array(j, "key", kMaxSyncKeyColumns);
  if (j.empty()) throw DecodeError("empty key");
  std::vector<Value> key;
  for (auto& v : j) key.push_back(decode_wire_value(v, limits));
  return key;
}

std::string to_bytes(const json& j) {
  std::vector<uint8_t> cbor = json::to_cbor(j);
  return std::string(cbor.begin(), cbor.end());
}

json parse(std::string_view bytes, const DecodeLimits& limits) {
  if (bytes.size() > kMaxSyncMessageBytes)
    throw DecodeError(fmt::format("sync message of {} bytes exceeds {} bytes", bytes.size(),
                                  kMaxSyncMessageBytes));
  json root = parse_bounded_cbor(bytes, limits);
  const int64_t v = need_i64(need(root, "v", "sync message"), "protocol version");
  if (v != kSyncProtocolVersion)
    throw DecodeError(
        fmt::format("sync protocol version {} (this node speaks {})", v, kSyncProtocolVersion));
  return root;
}

// A roots reply's tombstone GC report: every field checked, the streams bounded by kMaxGcStreams.
GcReport decode_gc(const json& gc) {
  if (!gc.is_object()) throw DecodeError("gc report is not a map");
  GcReport out;
  out.horizon = need_i64(need(gc, "H", "gc report"), "horizon");
  if (out.horizon < 0) throw DecodeError("horizon is negative");
  const uint64_t inc = need_u64(need(gc, "i", "gc report"), "incomplete");
  if (inc > 1) throw DecodeError("incomplete is not 0 or 1");
  out.incomplete = inc == 1;
  const json* h = find(gc, "h");
  if (!h) return out;
  SafeMark mark;
  mark.h = need_i64(*h, "safe mark");
  if (mark.h < 0) throw DecodeError("safe mark is negative");
  for (const auto& e : need_array(need(gc, "p", "gc report"), "positions", kMaxGcStreams)) {
    if (!e.is_array() || e.size() != 2 || !e[0].is_string() ||
        e[0].get_ref<const std::string&>().empty() ||
        e[0].get_ref<const std::string&>().size() > kMaxGcStreamNameBytes)
      throw DecodeError("position is not [stream name of 1..255 bytes, sequence]");
    if (!mark.p.emplace(e[0].get<std::string>(), need_u64(e[1], "sequence")).second)
      throw DecodeError("a stream appears twice in the positions");
  }
  out.mark = std::move(mark);
  return out;
}

}  // namespace

std::string encode_request(const SyncRequest& r) {
  json j = {{"v", kSyncProtocolVersion}, {"t", static_cast<uint32_t>(r.kind)}, {"n", r.from_node}};
  if (r.kind != SyncKind::Roots && r.kind != SyncKind::Status) j["tb"] = r.table;
  if (r.kind == SyncKind::Buckets || r.kind == SyncKind::Scrub) {
    j["f"] = r.first;
    j["c"] = r.count;
  }
  if (r.kind == SyncKind::Entries) j["b"] = r.buckets;
  if (r.kind == SyncKind::Rows) {
    json keys = json::array();
    for (const auto& k : r.keys) keys.push_back(encode_key(k));
    j["k"] = std::move(keys);
  }
  return to_bytes(j);
}

SyncRequest decode_request(std::string_view bytes) {
  const DecodeLimits limits = sync_limits();
  json root = parse(bytes, limits);
  SyncRequest r;
  const uint64_t kind = need_u64(need(root, "t", "sync request"), "request kind");
  if (kind < static_cast<uint64_t>(SyncKind::Roots) ||
      kind > static_cast<uint64_t>(SyncKind::Scrub))
    throw DecodeError(fmt::format("unknown request kind {}", kind));
  r.kind = static_cast<SyncKind>(kind);
  r.from_node = need_u64(need(root, "n", "sync request"), "node");
  if (r.kind == SyncKind::Roots || r.kind == SyncKind::Status) return r;
  const json& tb = need(root, "tb", "sync request");
  if (!tb.is_string() || tb.get_ref<const std::string&>().empty() ||
      tb.get_ref<const std::string&>().size() > 1024)
    throw DecodeError("table name is not a string of 1..1024 bytes");
  r.table = tb.get<std::string>();
  switch (r.kind) {
    case SyncKind::Buckets:
    case SyncKind::Scrub: {
      const uint64_t first = need_u64(need(root, "f", "buckets request"), "first bucket");
      const uint64_t count = need_u64(need(root, "c", "buckets request"), "bucket count");
      const uint64_t page = r.kind == SyncKind::Scrub ? kScrubPage : kBucketPage;
      if (first >= kDigestBuckets || count == 0 || count > page || first + count > kDigestBuckets)
        throw DecodeError(fmt::format("bucket page {}+{} out of range", first, count));
      r.first = static_cast<uint32_t>(first);
      r.count = static_cast<uint32_t>(count);
      break;
    }
    case SyncKind::Entries:
      for (const auto& b :
           need_array(need(root, "b", "entries request"), "bucket list", kMaxBucketsPerRequest))
        r.buckets.push_back(need_bucket(b));
      break;
    default:
      for (auto& k : need_array_field(root, "k", "rows request", kMaxKeysPerRequest))
        r.keys.push_back(decode_key(k, limits));
      break;
  }
  return r;
}

std::string encode_reply(SyncKind kind, const SyncReply& r) {
  json j = {{"v", kSyncProtocolVersion}, {"n", r.node}};
  if (!r.error.empty()) {
    j["err"] = r.error;
    return to_bytes(j);
  }
  switch (kind) {
    case SyncKind::Roots: {
      json tables = json::array();
      for (const auto& t : r.tables) tables.push_back(json::array({t.name, t.root, t.rows}));
      j["tables"] = std::move(tables);
      if (r.gc) {
        json gc = {{"H", r.gc->horizon}, {"i", r.gc->incomplete ? 1 : 0}};
        if (r.gc->mark) {
          gc["h"] = r.gc->mark->h;
          json p = json::array();
          for (const auto& [stream, seq] : r.gc->mark->p) p.push_back(json::array({stream, seq}));
          gc["p"] = std::move(p);
        }
        j["gc"] = std::move(gc);
      }
      break;
    }
    case SyncKind::Buckets:
    case SyncKind::Scrub:
      j["f"] = r.first;
      j["h"] = r.hashes;
      break;
    case SyncKind::Entries: {
      j["done"] = r.complete;
      json entries = json::array();
      for (const auto& e : r.entries)
        entries.push_back(json::array(
            {encode_key(e.key), e.version.version, e.version.node, e.version.deleted ? 1 : 0}));
      j["e"] = std::move(entries);
      break;
    }
    case SyncKind::Rows: {
      json frames = json::array();
      for (const auto& f : r.frames)
        frames.push_back(json::binary(std::vector<uint8_t>(f.begin(), f.end())));
      j["fr"] = std::move(frames);
      break;
    }
    case SyncKind::Status:
      j["st"] = json::binary(std::vector<uint8_t>(r.status.begin(), r.status.end()));
      break;
  }
  return to_bytes(j);
}

SyncReply decode_reply(SyncKind kind, std::string_view bytes) {
  const DecodeLimits limits = sync_limits();
  json root = parse(bytes, limits);
  SyncReply r;
  r.node = need_u64(need(root, "n", "sync reply"), "node");
  if (const json* err = find(root, "err")) {
    if (!err->is_string()) throw DecodeError("error is not a string");
    r.error = err->get<std::string>().substr(0, 512);
    if (r.error.empty()) r.error = "refused";
    return r;
  }
  switch (kind) {
    case SyncKind::Roots:
      for (const auto& t :
           need_array(need(root, "tables", "roots reply"), "table list", kMaxSyncTables)) {
        if (!t.is_array() || t.size() != 3 || !t[0].is_string())
          throw DecodeError("table entry is not [name, root, rows]");
        r.tables.push_back(
            {t[0].get<std::string>(), need_u64(t[1], "root"), need_i64(t[2], "rows")});
      }
      if (const json* gc = find(root, "gc")) r.gc = decode_gc(*gc);
      break;
    case SyncKind::Buckets:
    case SyncKind::Scrub: {
      r.first = need_bucket(need(root, "f", "buckets reply"));
      for (const auto& h :
           need_array(need(root, "h", "buckets reply"), "bucket digests", kBucketPage))
        r.hashes.push_back(need_u64(h, "bucket digest"));
      if (r.first + r.hashes.size() > kDigestBuckets)
        throw DecodeError("bucket digests run past the last bucket");
      break;
    }
    case SyncKind::Entries: {
      for (const auto& b :
           need_array(need(root, "done", "entries reply"), "bucket list", kMaxBucketsPerRequest))
        r.complete.push_back(need_bucket(b));
      for (auto& e : need_array_field(root, "e", "entries reply", kMaxSyncEntries)) {
        if (!e.is_array() || e.size() != 4)
          throw DecodeError("entry is not [key, version, node, deleted]");
        DigestEntry d;
        d.key = decode_key(e[0], limits);
        d.version.version = need_i64(e[1], "version");
        d.version.node = need_u64(e[2], "node");
        const uint64_t del = need_u64(e[3], "deleted");
        if (del > 1) throw DecodeError("deleted is not 0 or 1");
        d.version.deleted = del == 1;
        r.entries.push_back(std::move(d));
      }
      break;
    }
    case SyncKind::Rows:
      for (auto& f : need_array(need(root, "fr", "rows reply"), "frame list", 1024)) {
        if (!f.is_binary()) throw DecodeError("frame is not a byte string");
        const auto& b = f.get_binary();
        r.frames.emplace_back(b.begin(), b.end());
      }
      break;
    case SyncKind::Status: {
      const json& st = need(root, "st", "status reply");
      // status_protocol.hpp's bound: the caller decodes the status itself.
      if (!st.is_binary() || st.get_binary().size() > kMaxStatusBytes)
        throw DecodeError("status is not a byte string of at most 64 KiB");
      r.status.assign(st.get_binary().begin(), st.get_binary().end());
      break;
    }
  }
  return r;
}

std::string sync_auth_tag(const ClusterKey& key, uint64_t sender, SyncKind kind, bool reply,
                          std::string_view body) {
  return part_auth_tag(key, sender, kSyncAuthDomain,
                       static_cast<uint32_t>(kind) + (reply ? 0x100u : 0u), 0, body);
}

std::optional<std::string> check_sync_auth(const ClusterKey& key,
                                           const std::optional<std::string>& tag, uint64_t sender,
                                           SyncKind kind, bool reply, std::string_view body) {
  return check_part_auth(key, tag, sender, kSyncAuthDomain,
                         static_cast<uint32_t>(kind) + (reply ? 0x100u : 0u), 0, body);
}

}  // namespace harmony
