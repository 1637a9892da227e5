// Anti-entropy rounds and the responder (see anti_entropy.hpp).
#include "replicator/sync/anti_entropy.hpp"

#include <algorithm>
#include <charconv>
#include <chrono>
#include <map>
#include <optional>
#include <set>
#include <thread>

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <spdlog/spdlog.h>

#include "replicator/common/database.hpp"
#include "replicator/sync/status_protocol.hpp"
#include "replicator/wire/wire.hpp"
#include "shared/apply.hpp"
#include "shared/capture_registry.hpp"
#include "shared/clock.hpp"
#include "shared/fold.hpp"
#include "shared/meta_store.hpp"

namespace harmony {

namespace {

using Clock = std::chrono::steady_clock;

// How long an unsubscribing responder waits for a callback still answering (ms).
constexpr int64_t kDrainTimeoutMs = 5'000;
// Share of the server's max_payload a rows reply fills with row values, leaving room for CBOR's
// own bytes, the frames' headers and a row that crosses the line.
constexpr int64_t kRowsReplyShare = 2;

std::optional<uint64_t> header_u64(natsMsg* m, const char* name) {
  const char* v = nullptr;
  if (natsMsgHeader_Get(m, name, &v) != NATS_OK || !v) return std::nullopt;
  uint64_t out = 0;
  const char* end = v + std::char_traits<char>::length(v);
  auto [p, ec] = std::from_chars(v, end, out);
  if (ec != std::errc() || p != end) return std::nullopt;
  return out;
}

std::optional<std::string> header_text(natsMsg* m, const char* name) {
  const char* v = nullptr;
  if (natsMsgHeader_Get(m, name, &v) != NATS_OK || !v) return std::nullopt;
  return std::string(v);
}

std::string_view body_of(natsMsg* m) {
  const char* data = natsMsg_GetData(m);
  const int len = natsMsg_GetDataLength(m);
  return data && len > 0 ? std::string_view(data, static_cast<size_t>(len)) : std::string_view();
}

// A message to `subject` with our origin and, with a cluster key, our tag.
NatsMsgPtr make_msg(const std::string& subject, const char* reply, const std::string& body,
                    uint64_t node, const ClusterKey* key, SyncKind kind, bool is_reply) {
  natsMsg* raw = nullptr;
  natsStatus s =
      natsMsg_Create(&raw, subject.c_str(), reply, body.data(), static_cast<int>(body.size()));
  if (s != NATS_OK) throw Error("cannot create a sync message: " + nats_error_text(s));
  NatsMsgPtr m(raw);
  const std::string origin = std::to_string(node);
  s = natsMsgHeader_Set(m.get(), kHeaderOrigin, origin.c_str());
  if (s == NATS_OK && key) {
    const std::string tag = sync_auth_tag(*key, node, kind, is_reply, body);
    s = natsMsgHeader_Set(m.get(), kHeaderAuth, tag.c_str());
  }
  if (s != NATS_OK) throw Error("cannot set sync message headers: " + nats_error_text(s));
  return m;
}

// Why a message from `sender` must be ignored (wrong or missing tag), or nullopt.
std::optional<std::string> refuse(const ClusterKey* key, natsMsg* m, uint64_t sender, SyncKind kind,
                                  bool is_reply) {
  if (!key || !key->verify) return std::nullopt;
  return check_sync_auth(*key, header_text(m, kHeaderAuth), sender, kind, is_reply, body_of(m));
}

std::vector<std::string> column_names(const CapturedTable& t) {
  std::vector<std::string> out;
  for (const auto& c : t.info.columns)
    if (!c.generated) out.push_back(c.name);
  return out;
}

size_t value_bytes(const Value& v) {
  if (const auto* t = std::get_if<Text>(&v)) return t->bytes.size() + 9;
  if (const auto* b = std::get_if<Blob>(&v)) return b->bytes.size() + 9;
  return 9;
}

const std::atomic<bool>& never_stop() {
  static const std::atomic<bool> never{false};
  return never;
}

}  // namespace

bool RoundReport::differences() const {
  return std::any_of(tables.begin(), tables.end(),
                     [](const TableRoundReport& t) { return t.peers_differing > 0; });
}

// --- Responder ---

struct AntiEntropy::Responder {
  AntiEntropyOptions options;
  natsConnection* nc = nullptr;
  std::mutex mu;  // the two subscriptions deliver on their own threads; one read connection
  Db db;
  const ReplicatorStats* stats = nullptr;  // Status answers; null in -verify (no status to give)
  NatsSubscriptionPtr all, own;
  int64_t max_payload = 1 << 20;

  static void on_msg(natsConnection*, natsSubscription*, natsMsg* msg, void* closure) {
    NatsMsgPtr m(msg);
    try {
      static_cast<Responder*>(closure)->handle(m.get());
    } catch (const std::exception& e) {
      spdlog::warn("anti-entropy: answering a request failed: {}", e.what());
    }
  }

  void handle(natsMsg* m) {
    const char* reply = natsMsg_GetReply(m);
    if (!reply || !*reply) return;
    const std::string_view body = body_of(m);
    SyncReply out;
    out.node = options.node;
    SyncKind kind = SyncKind::Roots;
    try {
      SyncRequest req = decode_request(body);
      kind = req.kind;
      // Our own roots request on .all; a Status request from this node's id is `-status` run
      // beside it, which wants this node's answer too.
      if (req.from_node == options.node && req.kind != SyncKind::Status) return;
      const auto sender = header_u64(m, kHeaderOrigin);
      if (!sender || *sender != req.from_node)
        throw DecodeError("Harmony-Origin header missing or not the request's node");
      if (auto why = refuse(options.cluster_key.get(), m, *sender, kind, false)) {
        spdlog::warn("anti-entropy: request from node {} refused: {}", *sender, *why);
        return;  // unauthenticated: no answer at all
      }
      std::lock_guard<std::mutex> lock(mu);
      answer(req, out);
    } catch (const DecodeError& e) {
      out = SyncReply{};
      out.node = options.node;
      out.error = std::string("bad request: ") + e.what();
    } catch (const std::exception& e) {
      out = SyncReply{};
      out.node = options.node;
      out.error = e.what();
    }
    const std::string bytes = encode_reply(kind, out);
    NatsMsgPtr r =
        make_msg(reply, nullptr, bytes, options.node, options.cluster_key.get(), kind, true);
    natsConnection_PublishMsg(nc, r.get());
  }

  void answer(const SyncRequest& req, SyncReply& out) {
    if (req.kind == SyncKind::Status) {
      if (!stats) {
        out.error = "no status here (not a replicating node)";
        return;
      }
      out.status = encode_status(node_status(*stats, options.node, address(), wall_clock_ms()));
      return;
    }
    Transaction tx(db, Transaction::Kind::Deferred);  // one consistent read
    if (req.kind == SyncKind::Roots) {
      for (const auto& t : captured_tables(db)) {
        const TableDigest d = load_digest(db, t.id);
        out.tables.push_back({t.name, d.root(), d.rows});
      }
      // Tombstone GC: our latest safe mark, horizon and whether a trimmed gap is still open.
      out.gc = GcReport{stored_own_mark(db, options.node), stored_horizon(db),
                        meta_get_int(db, kAntiEntropyGapKey, 0) > 0};
      return;
    }
    auto t = find_captured(db, req.table);
    if (!t) {
      out.error = "no captured table " + req.table;
      return;
    }
    switch (req.kind) {
      case SyncKind::Buckets: {
        const TableDigest d = load_digest(db, t->id);
        out.first = req.first;
        out.hashes.assign(d.buckets.begin() + req.first, d.buckets.begin() + req.first + req.count);
        break;
      }
      case SyncKind::Scrub:
        out.first = req.first;
        out.hashes = scrub_digests(db, *t, req.first, req.count);
        break;
      case SyncKind::Entries: {
        const std::set<uint32_t> buckets(req.buckets.begin(), req.buckets.end());
        for (auto& [b, entries] : bucket_entries(db, *t, buckets, kMaxSyncEntries)) {
          out.complete.push_back(b);
          for (auto& e : entries) out.entries.push_back(std::move(e));
        }
        break;
      }
      default:
        rows(*t, req.keys, out);
        break;
    }
  }

  // Where this node can be reached: its embedded server's client URL, else the NATS server it is
  // connected to.
  std::string address() const {
    const NatsServerState server = stats->nats_server();
    if (server.embedded && !server.client_url.empty()) return server.client_url;
    char url[256] = {0};
    if (natsConnection_GetConnectedUrl(nc, url, sizeof url) == NATS_OK) return url;
    return "";
  }

  // The rows at `keys` with their versions, as one batch frame per origin node, cut to fit a
  // reply. A key {rows} records as live whose row is gone here (deleted behind the replicator's
  // back) is left out: this node cannot vouch for its content.
  void rows(const CapturedTable& t, const std::vector<std::vector<Value>>& keys, SyncReply& out) {
    if (keys.empty()) return;
    const size_t n = t.key_count();
    if (keys.front().size() != n) {
      out.error = fmt::format("table {} has {} key column(s)", t.name, n);
      return;
    }
    const auto cols = column_names(t);
    std::vector<std::string> quoted;
    for (const auto& c : cols) quoted.push_back(quote_ident(c));
    std::vector<size_t> pk_in_cols;
    std::vector<std::string> key_names;
    for (const auto* c : t.info.primary_key()) {
      key_names.push_back(c->name);
      pk_in_cols.push_back(
          static_cast<size_t>(std::find(cols.begin(), cols.end(), c->name) - cols.begin()));
    }
    auto version = db.prepare(fmt::format("SELECT version, node, deleted FROM {} WHERE {}", t.rows,
                                          key_match(key_columns(n), 1)));
    auto row = db.prepare(fmt::format("SELECT {} FROM {} WHERE {}", fmt::join(quoted, ", "),
                                      quote_ident(t.name), key_match(quoted_pk(t.info), 1)));
    std::map<uint64_t, Batch> by_origin;
    const size_t budget = static_cast<size_t>(max_payload / kRowsReplyShare);
    size_t bytes = 0;
    for (const auto& key : keys) {
      if (key.size() != n || bytes > budget) break;
      version.reset();
      for (size_t i = 0; i < n; ++i) version.bind(static_cast<int>(i + 1), key[i]);
      if (!version.step()) continue;
      RowChange rc;
      rc.hlc = version.column_int(0);
      const auto origin = static_cast<uint64_t>(version.column_int(1));
      rc.deleted = version.column_int(2) != 0;
      rc.key = key;
      version.reset();
      if (!rc.deleted) {
        row.reset();
        for (size_t i = 0; i < n; ++i) row.bind(static_cast<int>(i + 1), key[i]);
        if (!row.step()) continue;
        for (int i = 0; i < row.column_count(); ++i) rc.values.push_back(row.column(i));
        row.reset();
        rc.key.clear();  // the row's own key values (the Applier checks they match)
        for (size_t p : pk_in_cols) rc.key.push_back(rc.values[p]);
      }
      for (const auto& v : rc.key) bytes += value_bytes(v);
      for (const auto& v : rc.values) bytes += value_bytes(v);
      Batch& b = by_origin[origin];
      if (b.tables.empty()) {
        b.origin_node = origin;
        b.tables.push_back(BatchTable{t.name, t.info.schema_hash(), cols, key_names, t.id});
      }
      b.rows.push_back(std::move(rc));
    }
    for (const auto& [origin, b] : by_origin) out.frames.push_back(encode_batch(b, true));
  }
};

// --- Rounds ---

struct AntiEntropy::Peer {
  uint64_t node = 0;
  std::map<std::string, TableRoot> tables;
  std::optional<GcReport> gc;  // nullopt: a peer older than tombstone GC
};

AntiEntropy::AntiEntropy(AntiEntropyOptions options, natsConnection* nc, ReplicatorStats* stats)
    : options_(std::move(options)), nc_(nc), stats_(stats), membership_(options_.node) {
  db_ = open_database(options_.db_path);
  db_.set_busy_timeout(5000);
  gap_ = meta_get_int(db_, kAntiEntropyGapKey, 0);
  membership_ = load_membership(db_, options_.node);
  if (stats_) stats_->anti_entropy_gap = gap_;
}

AntiEntropy::~AntiEntropy() {
  if (!responder_) return;
  for (auto* sub : {responder_->all.get(), responder_->own.get()}) {
    if (!sub) continue;
    // Drain: no callback runs any more once it completed, so the responder can go.
    if (natsSubscription_Drain(sub) == NATS_OK)
      natsSubscription_WaitForDrainCompletion(sub, kDrainTimeoutMs);
    else
      natsSubscription_Unsubscribe(sub);
  }
}

std::vector<std::string> AntiEntropy::rebuild() {
  std::vector<std::string> wrong;
  write_transaction(
      db_, never_stop(), [&] { wrong = rebuild_digests(db_, captured_tables(db_)); },
      "rebuilding content digests");
  return wrong;
}

void AntiEntropy::start_responder() {
  auto r = std::make_unique<Responder>();
  r->options = options_;
  r->nc = nc_;
  r->stats = stats_;
  r->db = open_database(options_.db_path);
  r->db.set_busy_timeout(5000);
  r->max_payload = std::max<int64_t>(natsConnection_GetMaxPayload(nc_), 64 * 1024);
  for (auto [subject, slot] :
       {std::pair{options_.subject_prefix + ".all", &r->all},
        std::pair{options_.subject_prefix + "." + std::to_string(options_.node), &r->own}}) {
    natsSubscription* sub = nullptr;
    natsStatus s =
        natsConnection_Subscribe(&sub, nc_, subject.c_str(), &Responder::on_msg, r.get());
    if (s != NATS_OK)
      throw Error(
          fmt::format("anti-entropy: cannot subscribe to {}: {}", subject, nats_error_text(s)));
    slot->reset(sub);
  }
  natsConnection_Flush(nc_);
  responder_ = std::move(r);
}

std::string AntiEntropy::request(const std::string& subject, SyncKind kind, const std::string& body,
                                 uint64_t expect_node, RoundReport& report) {
  NatsMsgPtr m =
      make_msg(subject, nullptr, body, options_.node, options_.cluster_key.get(), kind, false);
  natsMsg* raw = nullptr;
  const natsStatus s = natsConnection_RequestMsg(&raw, nc_, m.get(), options_.request_timeout_ms);
  if (s != NATS_OK)
    throw Error(fmt::format("request to node {} failed: {}", expect_node, nats_error_text(s)));
  NatsMsgPtr reply(raw);
  report.bytes_sent += static_cast<int64_t>(body.size());
  const std::string_view data = body_of(reply.get());
  report.bytes_received += static_cast<int64_t>(data.size());
  const auto sender = header_u64(reply.get(), kHeaderOrigin);
  if (!sender || *sender != expect_node)
    throw Error(fmt::format("reply to a request to node {} does not come from it", expect_node));
  if (auto why = refuse(options_.cluster_key.get(), reply.get(), *sender, kind, true))
    throw Error(fmt::format("reply of node {} refused: {}", expect_node, *why));
  return std::string(data);
}

void AntiEntropy::repair_table(const Peer& peer, const std::string& table, RoundReport& report,
                               TableRoundReport& tr, bool repair, int64_t& budget) {
  const std::string subject = options_.subject_prefix + "." + std::to_string(peer.node);
  auto ask = [&](const SyncRequest& rq) {
    SyncReply r =
        decode_reply(rq.kind, request(subject, rq.kind, encode_request(rq), peer.node, report));
    if (!r.error.empty())
      throw Error(
          fmt::format("node {} refused a request for table {}: {}", peer.node, table, r.error));
    return r;
  };
  // 1. Bucket digests, paged.
  std::vector<uint64_t> theirs;
  for (uint32_t first = 0; first < kDigestBuckets; first += kBucketPage) {
    SyncRequest rq{SyncKind::Buckets, options_.node, table, first, kBucketPage, {}, {}};
    SyncReply r = ask(rq);
    if (r.first != first || r.hashes.size() != kBucketPage)
      throw Error(fmt::format("node {} answered bucket page {} with {} digests from {}", peer.node,
                              first, r.hashes.size(), r.first));
    theirs.insert(theirs.end(), r.hashes.begin(), r.hashes.end());
  }
  std::optional<CapturedTable> local;
  TableDigest mine;
  {
    Transaction tx(db_, Transaction::Kind::Deferred);
    local = find_captured(db_, table);
    if (local) mine = load_digest(db_, local->id);
  }
  if (!local) return;
  std::vector<uint32_t> diff = differing_buckets(mine.buckets, theirs);
  // 2. Entries of the differing buckets, a request at a time (whole buckets per reply).
  for (size_t at = 0; at < diff.size();) {
    const size_t end = std::min(diff.size(), at + kMaxBucketsPerRequest);
    std::vector<uint32_t> chunk(diff.begin() + static_cast<std::ptrdiff_t>(at),
                                diff.begin() + static_cast<std::ptrdiff_t>(end));
    SyncRequest rq{SyncKind::Entries, options_.node, table, 0, 0, chunk, {}};
    SyncReply r = ask(rq);
    const std::set<uint32_t> asked(chunk.begin(), chunk.end());
    std::set<uint32_t> complete;
    for (uint32_t b : r.complete)
      if (asked.count(b)) complete.insert(b);
    if (complete.empty())
      throw Error(fmt::format("node {} answered no bucket of table {}", peer.node, table));
    // Entries outside the buckets the peer says it answered are not trusted.
    std::erase_if(r.entries, [&](const DigestEntry& e) {
      return !complete.count(key_bucket(canonical_key(e.key)));
    });
    std::vector<DigestEntry> own;
    {
      Transaction tx(db_, Transaction::Kind::Deferred);
      for (auto& [b, entries] : bucket_entries(db_, *local, complete, SIZE_MAX))
        for (auto& e : entries) own.push_back(std::move(e));
    }
    tr.compared += static_cast<int64_t>(r.entries.size());
    if (stats_) stats_->anti_entropy_rows_compared += static_cast<int64_t>(r.entries.size());
    // The tombstone horizon's rules (tombstone_gc.hpp plan_fetch): never fetch back a pruned
    // delete; remove here what a complete peer pruned while this node missed the delete.
    const GcView me{membership_.horizon(), gap_ == 0};
    const GcView them{peer.gc ? peer.gc->horizon : 0, !peer.gc || !peer.gc->incomplete};
    FetchPlan plan = plan_fetch(own, r.entries, me, them);
    auto& keys = plan.fetch;
    tr.differences += static_cast<int64_t>(keys.size());
    tr.below_horizon += plan.skipped;
    if (repair && !plan.remove_local.empty()) {
      int64_t removed = 0;
      write_transaction(
          db_, never_stop(),
          [&] {
            // The Applier's transaction: capture muted, local changes folded first (a row
            // written here since the comparison has a new version and is left alone).
            Applier a(db_, options_.node, captured_tables(db_), options_.max_drift_ms);
            a.begin();
            removed = 0;
            for (const auto& e : plan.remove_local)
              if (remove_stale_entry(db_, *local, e.key, e.version)) ++removed;
            a.finish();
          },
          "removing rows a complete peer pruned");
      tr.removed_stale += removed;
      tr.differences += static_cast<int64_t>(plan.remove_local.size());
      if (stats_) stats_->anti_entropy_rows_repaired += removed;
      spdlog::info(
          "anti-entropy: table {}: removed {} row(s) that node {} deleted and pruned below its "
          "tombstone horizon while this node missed the delete (trimmed gap)",
          table, removed, peer.node);
    }
    // 3. The rows, applied with last-writer-wins and their own versions and origins.
    for (size_t k = 0; repair && k < keys.size() && budget > 0;) {
      const size_t take =
          std::min<size_t>({keys.size() - k, kMaxKeysPerRequest, static_cast<size_t>(budget)});
      SyncRequest rows_rq{SyncKind::Rows, options_.node, table, 0, 0, {}, {}};
      rows_rq.keys.assign(keys.begin() + static_cast<std::ptrdiff_t>(k),
                          keys.begin() + static_cast<std::ptrdiff_t>(k + take));
      SyncReply rows = ask(rows_rq);
      size_t received = 0;
      std::vector<Batch> batches;
      for (const auto& frame : rows.frames) {
        Batch b = decode_batch(frame);
        if (b.tables.size() != 1 || b.tables[0].name != table)
          throw Error(fmt::format("node {} sent rows of another table than {}", peer.node, table));
        for (auto& row : b.rows) row.table = 0;
        received += b.rows.size();
        batches.push_back(std::move(b));
      }
      if (received > take)
        throw Error(fmt::format("node {} sent {} rows for {} keys", peer.node, received, take));
      ApplyStats applied;
      write_transaction(
          db_, never_stop(),
          [&] {
            applied = ApplyStats{};
            Applier a(db_, options_.node, captured_tables(db_), options_.max_drift_ms);
            a.ignore_tombstone_horizon();  // plan_fetch already applied the horizon's rules
            a.begin();
            std::vector<HeldRows> held;
            for (const auto& b : batches)
              applied += a.apply(b, MessageRef{fmt::format("anti-entropy:{}", peer.node), 0}, held);
            a.finish();
          },
          "applying anti-entropy repairs");
      tr.repaired += applied.applied;
      tr.held += applied.held;
      if (stats_) stats_->anti_entropy_rows_repaired += applied.applied;
      budget -= static_cast<int64_t>(take);
      k += take;
      if (received == 0) break;  // the peer holds nothing it can vouch for: next round
    }
    // Buckets the peer did not complete are asked again (the reply was bounded).
    std::vector<uint32_t> rest;
    for (uint32_t b : chunk)
      if (!complete.count(b)) rest.push_back(b);
    if (rest.empty()) {
      at = end;
    } else {
      diff.erase(diff.begin() + static_cast<std::ptrdiff_t>(at),
                 diff.begin() + static_cast<std::ptrdiff_t>(end));
      diff.insert(diff.begin() + static_cast<std::ptrdiff_t>(at), rest.begin(), rest.end());
    }
  }
}

RoundReport AntiEntropy::round(bool repair) {
  RoundReport report;
  ++rounds_;
  // The consumer adds to the gap when it skips trimmed sequences while running (consumer.cpp).
  gap_ = meta_get_int(db_, kAntiEntropyGapKey, 0);
  if (stats_) stats_->anti_entropy_gap = gap_;
  if (options_.digest_check_rounds > 0 && rounds_ % options_.digest_check_rounds == 0) {
    for (const auto& t : rebuild())
      spdlog::warn(
          "anti-entropy: the stored digest of table {} did not match __harmony_rows (edited "
          "behind the replicator's back?); rebuilt",
          t);
  }
  if (repair && gc_enabled()) {
    try {
      record_own_mark();
    } catch (const std::exception& e) {
      spdlog::warn("tombstone GC: taking this node's safe mark failed: {}", e.what());
    }
  }
  std::map<std::string, TableRoundReport> tables;
  std::map<std::string, uint64_t> roots;
  {
    Transaction tx(db_, Transaction::Kind::Deferred);
    for (const auto& t : captured_tables(db_)) {
      const TableDigest d = load_digest(db_, t.id);
      tables[t.name] = TableRoundReport{t.name, d.rows, d.root()};
    }
  }
  // Discovery: every node answers the roots request on .all; replies gathered for a window.
  std::vector<Peer> peers;
  const auto discovery_ends = Clock::now() + std::chrono::milliseconds(options_.discover_window_ms);
  ask_all(
      SyncKind::Roots, "roots", true, [&](const std::set<uint64_t>&) { return discovery_ends; },
      [&](uint64_t sender, SyncReply& r) {
        if (r.node != sender || !r.error.empty()) return false;
        Peer p{sender, {}, r.gc};
        for (auto& t : r.tables) p.tables[t.name] = t;
        peers.push_back(std::move(p));
        return true;
      },
      report.problems, report.bytes_sent, report.bytes_received);
  int64_t budget = options_.max_repair_rows;
  for (const auto& peer : peers) {
    report.peers.push_back(peer.node);
    for (auto& [name, tr] : tables) {
      auto it = peer.tables.find(name);
      if (it == peer.tables.end()) continue;
      ++tr.peers_compared;
      if (it->second.root == tr.root) continue;
      ++tr.peers_differing;
      const int64_t repaired_before = tr.repaired, differences_before = tr.differences;
      try {
        repair_table(peer, name, report, tr, repair, budget);
      } catch (const std::exception& e) {
        report.problems.push_back(e.what());
        spdlog::warn("anti-entropy: table {} with node {}: {}", name, peer.node, e.what());
      }
      // Info only when this node lacked something: a peer that lacks our rows pulls them in its
      // own round, and rows still in flight in the stream make roots differ under writes.
      spdlog::log(tr.differences > differences_before ? spdlog::level::info : spdlog::level::debug,
                  "anti-entropy: table {} differs from node {} ({} rows here, {} there): {} "
                  "row(s) newer there or missing here, {} repaired",
                  name, peer.node, tr.rows, it->second.rows, tr.differences - differences_before,
                  tr.repaired - repaired_before);
    }
  }
  if (options_.scrub_rows > 0)
    for (auto& [name, tr] : tables) {
      std::vector<const Peer*> holding;
      for (const auto& p : peers)
        if (p.tables.count(name)) holding.push_back(&p);
      if (holding.empty()) continue;
      try {
        scrub_table(holding, name, report, tr, repair);
      } catch (const std::exception& e) {
        report.problems.push_back(e.what());
        spdlog::warn("anti-entropy: content scrub of table {}: {}", name, e.what());
      }
    }
  for (auto& [name, tr] : tables) report.tables.push_back(tr);
  if (repair && gap_ > 0) settle_gap(report);
  if (repair && gc_enabled()) {
    try {
      collect_garbage(peers);
    } catch (const std::exception& e) {
      spdlog::warn("tombstone GC failed: {}", e.what());
    }
  }
  if (stats_) {
    ++stats_->anti_entropy_rounds;
    if (report.differences()) stats_->anti_entropy_last_difference_ms = wall_clock_ms();
  }
  return report;
}

// Content scrub: {rows} versions cannot see a value changed with capture muted, so a rolling
// window of buckets is hashed over the row values (scrub_digests) and compared with every peer
// holding the table. Where one differs, this node's live rows of those buckets are asked from
// every such peer; for each row whose version (value, origin, live) is the same there, that
// node's content is a vote, and winning_content picks the origin's content (it wrote it), else
// the majority, ties to the lowest hash. This node rewrites only its own copy, with capture muted
// and its version unchanged (no publication): peers holding the losing content repair themselves
// in their own rounds, by the same rule, so every node converges on the same content.
void AntiEntropy::scrub_table(const std::vector<const Peer*>& peers, const std::string& table,
                              RoundReport& report, TableRoundReport& tr, bool repair) {
  std::optional<CapturedTable> local;
  uint32_t first = scrub_cursor_[table] % kDigestBuckets, count = 0;
  {
    Transaction tx(db_, Transaction::Kind::Deferred);
    local = find_captured(db_, table);
    if (!local) return;
    // The window: as many buckets from the cursor as hold about scrub_rows entries. Keys spread
    // evenly over the buckets (murmur), so a bucket holds about rows / kDigestBuckets.
    const int64_t rows = std::max<int64_t>(1, load_digest(db_, local->id).rows);
    const int64_t want = options_.scrub_rows * int64_t{kDigestBuckets} / rows;
    count = static_cast<uint32_t>(
        std::clamp<int64_t>(want, 1, std::min<int64_t>(kScrubPage, kDigestBuckets - first)));
  }
  scrub_cursor_[table] = (first + count) % kDigestBuckets;
  std::vector<uint64_t> mine;
  {
    Transaction tx(db_, Transaction::Kind::Deferred);
    mine = scrub_digests(db_, *local, first, count);
  }
  std::set<uint32_t> differing;
  for (const Peer* peer : peers) {
    const std::string subject = options_.subject_prefix + "." + std::to_string(peer->node);
    SyncRequest rq{SyncKind::Scrub, options_.node, table, first, count, {}, {}};
    SyncReply r = decode_reply(
        SyncKind::Scrub, request(subject, SyncKind::Scrub, encode_request(rq), peer->node, report));
    if (!r.error.empty() || r.first != first || r.hashes.size() != count) continue;  // older peer
    for (uint32_t i = 0; i < count; ++i)
      if (r.hashes[i] != mine[i]) differing.insert(first + i);
  }
  // The live rows of the differing buckets as {rows} records them here (content read below).
  std::vector<DigestEntry> live;
  {
    Transaction tx(db_, Transaction::Kind::Deferred);
    for (auto& [b, entries] : bucket_entries(db_, *local, differing, SIZE_MAX))
      for (auto& e : entries)
        if (!e.version.deleted && live.size() < kMaxKeysPerRequest) live.push_back(std::move(e));
  }
  tr.scrubbed += static_cast<int64_t>(live.size());
  if (live.empty()) return;
  struct Held {
    std::vector<std::string> names;
    std::vector<Value> values;
  };
  // Per key (canonical bytes): the votes and one copy of each voted content.
  struct Candidate {
    RowVersion version;
    std::optional<uint64_t> own;
    std::vector<ContentVote> votes;
    std::map<uint64_t, Held> contents;
  };
  std::map<std::string, Candidate> candidates;
  std::vector<std::vector<Value>> keys;
  {
    Transaction tx(db_, Transaction::Kind::Deferred);
    for (const auto& e : live) {
      Candidate c;
      c.version = e.version;
      std::vector<std::string> names;
      if (auto values = row_values(db_, *local, e.key, names)) {
        c.own = row_content_hash(names, *values);
        c.votes.push_back({options_.node, *c.own});
      }
      candidates[canonical_key(e.key)] = std::move(c);
      keys.push_back(e.key);
    }
  }
  for (const Peer* peer : peers) {
    const std::string subject = options_.subject_prefix + "." + std::to_string(peer->node);
    SyncRequest rq{SyncKind::Rows, options_.node, table, 0, 0, {}, keys};
    SyncReply r = decode_reply(
        SyncKind::Rows, request(subject, SyncKind::Rows, encode_request(rq), peer->node, report));
    if (!r.error.empty()) continue;
    size_t received = 0;
    for (const auto& frame : r.frames) {
      Batch b = decode_batch(frame);
      if (b.tables.size() != 1 || b.tables[0].name != table)
        throw Error(fmt::format("node {} sent rows of another table than {}", peer->node, table));
      received += b.rows.size();
      if (received > keys.size())
        throw Error(
            fmt::format("node {} sent more rows than the {} keys asked", peer->node, keys.size()));
      for (auto& row : b.rows) {
        auto it = candidates.find(canonical_key(row.key));
        if (it == candidates.end() || row.deleted) continue;
        const RowVersion theirs{row.hlc, b.origin_node, false};
        if (!(theirs == it->second.version)) continue;  // another version: the digest's business
        const uint64_t content = row_content_hash(b.tables[0].columns, row.values);
        it->second.votes.push_back({peer->node, content});
        it->second.contents.try_emplace(content, Held{b.tables[0].columns, row.values});
      }
    }
  }
  std::vector<std::pair<std::vector<Value>, const Held*>> repairs;
  for (size_t i = 0; i < keys.size(); ++i) {
    const Candidate& c = candidates[canonical_key(keys[i])];
    const auto winner = winning_content(c.version.node, c.votes);
    if (!winner || (c.own && *c.own == *winner)) continue;
    auto content = c.contents.find(*winner);
    if (content == c.contents.end()) continue;  // our own content won: nothing to do here
    repairs.emplace_back(keys[i], &content->second);
  }
  if (!repair || repairs.empty()) return;
  const auto pk = local->info.primary_key();
  int64_t rewritten = 0;
  write_transaction(
      db_, never_stop(),
      [&] {
        // The Applier's transaction: capture muted and local changes folded first, so a row
        // written here since the comparison has a new version and is left alone below.
        Applier a(db_, options_.node, captured_tables(db_), options_.max_drift_ms);
        a.begin();
        int64_t done = 0;
        for (const auto& [key, held] : repairs) {
          std::vector<std::string> names;
          auto now = row_values(db_, *local, key, names);
          auto version =
              db_.prepare(fmt::format("SELECT version, node, deleted FROM {} WHERE {}", local->rows,
                                      key_match(key_columns(key.size()), 1)));
          for (size_t i = 0; i < key.size(); ++i) version.bind(static_cast<int>(i + 1), key[i]);
          if (!version.step()) continue;
          const RowVersion v{version.column_int(0), static_cast<uint64_t>(version.column_int(1)),
                             version.column_int(2) != 0};
          if (!(v == candidates[canonical_key(key)].version)) continue;
          // Only columns this node has (a peer with an extra column is a schema difference).
          std::vector<std::string> cols;
          std::vector<Value> vals;
          for (size_t i = 0; i < held->names.size() && i < held->values.size(); ++i)
            if (std::find(names.begin(), names.end(), held->names[i]) != names.end()) {
              cols.push_back(quote_ident(held->names[i]));
              vals.push_back(held->values[i]);
            }
          if (cols.empty()) continue;
          std::string sql;
          if (now) {
            std::vector<std::string> sets;
            for (size_t i = 0; i < cols.size(); ++i)
              sets.push_back(fmt::format("{} = ?{}", cols[i], i + 1));
            std::vector<std::string> where;
            for (size_t i = 0; i < pk.size(); ++i)
              where.push_back(
                  fmt::format("{} IS ?{}", quote_ident(pk[i]->name), cols.size() + i + 1));
            sql = fmt::format("UPDATE {} SET {} WHERE {}", quote_ident(local->name),
                              fmt::join(sets, ", "), fmt::join(where, " AND "));
          } else {
            std::vector<std::string> marks;
            for (size_t i = 0; i < cols.size(); ++i) marks.push_back(fmt::format("?{}", i + 1));
            sql = fmt::format("INSERT INTO {} ({}) VALUES ({})", quote_ident(local->name),
                              fmt::join(cols, ", "), fmt::join(marks, ", "));
          }
          auto write = db_.prepare(sql);
          for (size_t i = 0; i < vals.size(); ++i) write.bind(static_cast<int>(i + 1), vals[i]);
          if (now)
            for (size_t i = 0; i < key.size(); ++i)
              write.bind(static_cast<int>(vals.size() + i + 1), key[i]);
          write.step();
          ++done;
        }
        a.finish();
        rewritten = done;  // the lambda may run again after a busy retry: assigned, not added
      },
      "applying content scrub repairs");
  tr.content_repaired += rewritten;
  if (stats_) stats_->anti_entropy_rows_repaired += rewritten;
  spdlog::info(
      "anti-entropy: content scrub of table {}: {} row(s) held other values than their version "
      "stands for (written with capture off?); rewritten to the origin's or the majority's "
      "content, versions unchanged",
      table, rewritten);
}

// The gap of trimmed sequences is filled once a round reached at least one peer, every request
// succeeded and no table holds anything here that a peer holds newer or this node lacks (a peer
// that lacks our rows does not count: it pulls them in its own round). Until then the gap stays,
// also across restarts (it is in __harmony_meta).
void AntiEntropy::settle_gap(const RoundReport& report) {
  const bool nothing_missing =
      !report.peers.empty() && report.problems.empty() &&
      std::all_of(report.tables.begin(), report.tables.end(),
                  [](const TableRoundReport& t) { return t.differences == 0 && t.held == 0; });
  if (!nothing_missing) return;
  // Only the gap this round started with is settled: sequences the consumer skipped meanwhile
  // may hold rows this round compared too early, so they wait for the next round.
  int64_t left = 0;
  write_transaction(
      db_, never_stop(), [&] { left = add_to_anti_entropy_gap(db_, -gap_); },
      "anti-entropy gap filled");
  spdlog::info(
      "anti-entropy: the gap of {} trimmed sequence(s) is filled: a round with every reachable "
      "peer (nodes {}) found nothing missing here{}",
      gap_, fmt::join(report.peers, ", "),
      left > 0 ? fmt::format(" ({} more skipped since, for the next round)", left) : "");
  gap_ = left;
  if (stats_) stats_->anti_entropy_gap = left;
}

// --- Tombstone GC (docs/anti-entropy.md "Tombstones") ---

// Progress is reported (marks, membership, horizon) whenever this node replicates, also with
// pruning off here: peers count on every member's report to prune.
bool AntiEntropy::gc_enabled() const {
  return static_cast<bool>(options_.stream_tails);
}

// Before the roots request: this node's mark, stored so that the responder reports it.
void AntiEntropy::record_own_mark() {
  const auto mark = take_safe_mark(db_, options_.stream_tails);
  membership_.observe(options_.node, mark, wall_clock_ms());
  write_transaction(
      db_, never_stop(), [&] { save_membership(db_, membership_); }, "recording the safe mark");
}

void AntiEntropy::collect_garbage(const std::vector<Peer>& peers) {
  const int64_t now = wall_clock_ms();
  for (const auto& p : peers)
    membership_.observe(p.node, p.gc && p.gc->mark ? p.gc->mark : std::nullopt, now);
  for (uint64_t gone : membership_.expire(now, options_.member_retention_ms))
    spdlog::warn(
        "tombstone GC: node {} not seen for more than {} s ([tombstones] member_retention): "
        "dropped from the membership; it must restore from a snapshot to rejoin (tombstones it "
        "has not applied may be pruned)",
        gone, options_.member_retention_ms / 1000);
  const int64_t before = membership_.horizon();
  const int64_t horizon = membership_.advance();
  write_transaction(
      db_, never_stop(), [&] { save_membership(db_, membership_); }, "recording the membership");
  if (horizon != before)
    spdlog::info("tombstone GC: horizon advanced to {} ({} member(s))", horizon,
                 membership_.members().size());
  if (options_.gc_interval_ms <= 0 || now - last_prune_ms_ < options_.gc_interval_ms) return;
  last_prune_ms_ = now;
  std::vector<CapturedTable> tables;
  {
    Transaction tx(db_, Transaction::Kind::Deferred);
    tables = captured_tables(db_);
  }
  int64_t pruned = 0;
  if (horizon > 0)
    for (const auto& t : tables)
      for (;;) {
        int64_t n = 0;
        // Short transactions: an application waits at most one step for the write lock.
        write_transaction(
            db_, never_stop(), [&] { n = prune_tombstones(db_, t, horizon, kPruneStepRows); },
            "pruning tombstones");
        pruned += n;
        if (n < static_cast<int64_t>(kPruneStepRows)) break;
      }
  int64_t left = 0;
  {
    Transaction tx(db_, Transaction::Kind::Deferred);
    left = count_tombstones(db_, tables);
  }
  if (stats_) {
    stats_->tombstones = left;
    stats_->tombstones_pruned += pruned;
  }
  spdlog::info("tombstone GC: pruned {} tombstone(s) below horizon {}; {} left ({} member(s){})",
               pruned, horizon, left, membership_.members().size(),
               horizon == 0 ? ", no horizon yet" : "");
}

std::string stream_catching_up(const std::map<std::string, StreamProgress>& streams) {
  for (const auto& [name, p] : streams)
    if (!p.paused && p.last_seq >= p.position + kCatchUpLagMessages) return name;
  return {};
}

void AntiEntropy::run(const std::atomic<bool>& stop) {
  if (options_.interval_ms <= 0) return;
  constexpr auto kTick = std::chrono::milliseconds(50);  // how soon a stop is noticed
  std::optional<std::chrono::steady_clock::time_point> deferred_since;
  while (!stop) {
    for (auto waited = std::chrono::milliseconds(0);
         waited < std::chrono::milliseconds(options_.interval_ms) && !stop; waited += kTick)
      std::this_thread::sleep_for(kTick);
    if (stop) break;
    // No repair while catching up (kCatchUpLagMessages): the stream brings those rows. Measured
    // on a 300k-row catch-up, rounds waited seconds for the write lock and then applied rows
    // the consumer was about to apply.
    const std::string behind = stats_ ? stream_catching_up(stats_->streams()) : std::string();
    if (behind.empty()) {
      deferred_since.reset();
    } else {
      const auto now = std::chrono::steady_clock::now();
      if (!deferred_since) {
        deferred_since = now;
        spdlog::info("anti-entropy: rounds wait while stream {} catches up (at most {} min)",
                     behind, kMaxRepairDeferral.count());
      }
      if (now - *deferred_since < kMaxRepairDeferral) continue;
    }
    try {
      round(true);
    } catch (const std::exception& e) {
      spdlog::warn("anti-entropy round failed: {}", e.what());
    }
  }
}

// --- Status (`harmonylite -status`) ---

void AntiEntropy::ask_all(
    SyncKind kind, const char* what, bool skip_self,
    const std::function<Clock::time_point(const std::set<uint64_t>& seen)>& deadline,
    const std::function<bool(uint64_t sender, SyncReply& reply)>& on_reply,
    std::vector<std::string>& problems, int64_t& bytes_sent, int64_t& bytes_received) {
  natsInbox* inbox = nullptr;
  if (natsInbox_Create(&inbox) != NATS_OK) throw Error("cannot create a NATS inbox");
  std::unique_ptr<natsInbox, void (*)(natsInbox*)> inbox_owner(inbox, natsInbox_Destroy);
  natsSubscription* raw_sub = nullptr;
  natsStatus s = natsConnection_SubscribeSync(&raw_sub, nc_, inbox);
  if (s != NATS_OK) throw Error("cannot subscribe to an inbox: " + nats_error_text(s));
  NatsSubscriptionPtr sub(raw_sub);
  const std::string body = encode_request(SyncRequest{kind, options_.node});
  NatsMsgPtr m = make_msg(options_.subject_prefix + ".all", inbox, body, options_.node,
                          options_.cluster_key.get(), kind, false);
  s = natsConnection_PublishMsg(nc_, m.get());
  if (s != NATS_OK)
    throw Error(fmt::format("cannot publish the {} request: {}", what, nats_error_text(s)));
  bytes_sent += static_cast<int64_t>(body.size());
  std::set<uint64_t> seen;
  while (Clock::now() < deadline(seen)) {
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline(seen) - Clock::now());
    natsMsg* raw = nullptr;
    if (natsSubscription_NextMsg(&raw, sub.get(), std::max<int64_t>(1, left.count())) != NATS_OK)
      break;
    NatsMsgPtr reply(raw);
    bytes_received += static_cast<int64_t>(body_of(reply.get()).size());
    const auto sender = header_u64(reply.get(), kHeaderOrigin);
    if (!sender || (skip_self && *sender == options_.node) || seen.count(*sender)) continue;
    if (auto why = refuse(options_.cluster_key.get(), reply.get(), *sender, kind, true)) {
      problems.push_back(fmt::format("{} of node {} refused: {}", what, *sender, *why));
      continue;
    }
    try {
      SyncReply r = decode_reply(kind, body_of(reply.get()));
      if (on_reply(*sender, r)) seen.insert(*sender);
    } catch (const DecodeError& e) {
      problems.push_back(fmt::format("{} of node {}: {}", what, *sender, e.what()));
    }
  }
}

std::vector<StatusAnswer> AntiEntropy::ask_status(int64_t window_ms,
                                                  const std::set<uint64_t>& known, int64_t grace_ms,
                                                  std::vector<std::string>& problems) {
  const auto sent = Clock::now();
  const auto window_ends = sent + std::chrono::milliseconds(window_ms);
  const auto after_grace = sent + std::chrono::milliseconds(std::min(grace_ms, window_ms));
  std::vector<StatusAnswer> answers;
  int64_t bytes_sent = 0, bytes_received = 0;  // not reported by -status
  ask_all(
      SyncKind::Status, "status", false,
      [&](const std::set<uint64_t>& seen) {
        const bool all_known_answered =
            std::all_of(known.begin(), known.end(), [&](uint64_t n) { return seen.count(n) > 0; });
        return all_known_answered ? std::min(window_ends, after_grace) : window_ends;
      },
      [&](uint64_t sender, SyncReply& r) {
        if (r.node != sender) throw DecodeError("answer names another node than its header");
        if (!r.error.empty()) {
          problems.push_back(fmt::format("node {}: {}", sender, r.error));
          return false;
        }
        StatusAnswer a;
        a.node = sender;
        a.round_trip_ms =
            std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - sent).count();
        a.status = decode_status(r.status);
        // A node speaks only for itself (P8).
        if (a.status.node != sender) throw DecodeError("status names another node");
        answers.push_back(std::move(a));
        return true;
      },
      problems, bytes_sent, bytes_received);
  return answers;
}

}  // namespace harmony
