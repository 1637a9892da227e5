// Soak verdict: final state, versions and write logs of every node (see soak_check.hpp).
#include "tests/support/soak_check.hpp"

#include <thread>

#include <fmt/format.h>

#include "shared/capture.hpp"
#include "shared/digest.hpp"
#include "shared/hlc.hpp"
#include "shared/names.hpp"
#include "shared/outbox.hpp"
#include "shared/sqlite_db.hpp"
#include "shared/status.hpp"
#include "tests/support/soak_workload.hpp"

namespace harmony::test {

namespace {

template <typename F>
auto with_retries(const std::string& path, F&& f) {
  for (int attempt = 0;; ++attempt) {
    try {
      Db db = Db::open(path, SQLITE_OPEN_READONLY);
      db.set_busy_timeout(5000);
      return f(db);
    } catch (const SqliteError& e) {
      if (!e.busy() || attempt >= 20) throw;
      std::this_thread::sleep_for(std::chrono::milliseconds(250));
    }
  }
}

std::optional<int64_t> table_id(Db& db, const std::string& name) {
  auto s = db.prepare("SELECT id FROM __harmony_tables WHERE name = ?1");
  s.bind(1, name);
  if (s.step()) return s.column_int(0);
  return std::nullopt;
}

std::string describe_version(const SoakNodeState::RowVersion& v) {
  return fmt::format("version {}.{} node {}{}{}", hlc_physical_ms(v.hlc), v.hlc & 0xffff, v.node,
                     v.deleted ? " (tombstone)" : "", v.dirty ? " dirty" : "");
}

}  // namespace

std::string describe_key(const SoakKey& key) {
  // Canonical keys are 'i:<int>' and 't:<hex of the text>', joined by '|'; show text readably.
  std::string out = key.first + "[";
  size_t pos = 0;
  bool first = true;
  while (pos <= key.second.size()) {
    size_t bar = key.second.find('|', pos);
    std::string part =
        key.second.substr(pos, bar == std::string::npos ? std::string::npos : bar - pos);
    if (!first) out += ", ";
    first = false;
    if (part.rfind("t:", 0) == 0) {
      std::string bytes;
      for (size_t i = 2; i + 1 < part.size(); i += 2)
        bytes.push_back(static_cast<char>(std::stoi(part.substr(i, 2), nullptr, 16)));
      out += describe_value(Text{bytes}, 30);
    } else {
      out += part.substr(part.rfind("i:", 0) == 0 ? 2 : 0);
    }
    if (bar == std::string::npos) break;
    pos = bar + 1;
  }
  return out + "]";
}

SoakNodeState read_node_state(const std::string& path) {
  return with_retries(path, [&](Db& db) {
    SoakNodeState st;
    Transaction read(db, Transaction::Kind::Deferred);  // one snapshot for everything below
    for (const auto& t : soak_tables()) {
      // The columns this node has now: every one but the key and wid is compared.
      std::vector<std::string> value_columns;
      std::string all;
      auto info = db.prepare("SELECT name, pk FROM pragma_table_info(?1)");
      info.bind(1, t.name);
      while (info.step()) {
        all += info.column_text(0) + ",";
        if (info.column_int(1) == 0 && info.column_text(0) != "wid")
          value_columns.push_back(info.column_text(0));
      }
      if (all.empty()) {  // created during the run, not (yet) on this node
        st.checksums[t.name] = "absent";
        continue;
      }
      st.columns[t.name] = all;
      st.checksums[t.name] = table_checksum(db, t.name);
      std::string cols;
      for (const auto& c : value_columns) cols += ", " + quote_ident(c);
      auto rows = db.prepare(fmt::format("SELECT {}, wid{} FROM {}", t.key_expr, cols, t.name));
      while (rows.step()) {
        SoakNodeState::Row r;
        r.wid = rows.column_text(1);
        for (size_t c = 0; c < value_columns.size(); ++c)
          r.values[value_columns[c]] = rows.column(static_cast<int>(c + 2));
        st.rows[{t.name, rows.column_text(0)}] = std::move(r);
      }
      if (auto id = table_id(db, t.name)) {
        auto v = db.prepare(fmt::format("SELECT {}, version, node, deleted, dirty FROM {}",
                                        t.rows_key_expr, quote_ident(names::rows_table(*id))));
        while (v.step())
          st.versions[{t.name, v.column_text(0)}] = {v.column_int(1), v.column_int(2),
                                                     v.column_int(3) != 0, v.column_int(4) != 0};
      }
    }
    auto log = db.prepare("SELECT seq, wid, tbl, key, op, t_ms, writer FROM soak_log ORDER BY seq");
    while (log.step()) {
      st.events[{log.column_text(2), log.column_text(3)}].push_back(
          {log.column_int(0), log.column_text(1), log.column_text(4), log.column_int(5),
           log.column_int(6)});
      ++st.log_lines;
    }
    st.pending = total_pending(db, captured_tables(db));
    st.held = db.query_int("SELECT count(*) FROM __harmony_held");
    st.tombstone_horizon = db.query_int(
        "SELECT coalesce((SELECT CAST(value AS INTEGER) FROM __harmony_meta "
        "WHERE key = 'tombstone_horizon'), 0)");
    st.dead_letters = db.query_int("SELECT count(*) FROM __harmony_dead_letters");
    auto dl = db.prepare(
        "SELECT coalesce(table_name, ''), reason FROM __harmony_dead_letters ORDER BY id LIMIT 5");
    while (dl.step())
      st.dead_letter_samples.push_back(dl.column_text(0) + ": " + dl.column_text(1));
    read.commit();
    return st;
  });
}

std::string convergence_fingerprint(const std::string& path, int64_t* pending) {
  return with_retries(path, [&](Db& db) {
    Transaction read(db, Transaction::Kind::Deferred);
    std::string out;
    Sha256 h;
    for (const auto& t : soak_tables()) {
      auto exists = db.prepare("SELECT group_concat(name) FROM pragma_table_info(?1)");
      exists.bind(1, t.name);
      std::string columns = exists.step() ? exists.column_text(0) : "";
      if (columns.empty()) {
        out += t.name + ": absent;";
        continue;
      }
      out += t.name + "(" + columns + "):" + table_checksum(db, t.name) + ";";
      if (auto id = table_id(db, t.name)) {
        // A tombstone below this node's horizon may be pruned at any pass: it counts as pruned
        // already, so nodes that prune at different moments do not look diverged.
        auto v = db.prepare(fmt::format(
            "SELECT {}, version, node, deleted FROM {} WHERE NOT (deleted AND version < "
            "coalesce((SELECT CAST(value AS INTEGER) FROM __harmony_meta WHERE key = "
            "'tombstone_horizon'), 0)) ORDER BY 1",
            t.rows_key_expr, quote_ident(names::rows_table(*id))));
        while (v.step())
          h.update(fmt::format("{}|{}|{}|{}\n", v.column_text(0), v.column_int(1), v.column_int(2),
                               v.column_int(3)));
      }
    }
    // Held rows count as pending: they must be released before the verdict.
    int64_t p = total_pending(db, captured_tables(db)) +
                db.query_int("SELECT count(*) FROM __harmony_held");
    if (pending) *pending = p;
    read.commit();
    return out + "versions:" + to_hex(h.finish());
  });
}

SoakCheckResult check_soak(const std::vector<SoakNodeState>& nodes, const ExpectedValues& expected,
                           const std::set<std::string>& not_committed,
                           const std::vector<SlowClockWindow>& slow_clocks) {
  SoakCheckResult res;
  const int n_nodes = static_cast<int>(nodes.size());
  for (const auto& n : nodes) {
    res.writes_logged += n.log_lines;
    res.dead_letters += n.dead_letters;
    res.pending += n.pending;
    res.held += n.held;
  }

  // Divergence: group nodes by (checksums, versions); the largest group is the reference.
  // A tombstone below a node's horizon counts as pruned (it may go at any pass).
  auto counted = [](const SoakNodeState& s, const SoakNodeState::RowVersion& v) {
    return !(v.deleted && v.hlc < s.tombstone_horizon);
  };
  auto signature = [&](const SoakNodeState& s) {
    std::string sig;
    for (const auto& [t, c] : s.checksums) sig += t + ":" + c + ";";
    for (const auto& [t, c] : s.columns) sig += t + "(" + c + ");";
    for (const auto& [k, v] : s.versions)
      if (counted(s, v))
        sig += fmt::format("{}|{}|{}|{}|{};", k.first, k.second, v.hlc, v.node, v.deleted);
    return sig;
  };
  std::map<std::string, std::vector<int>> groups;
  for (int i = 0; i < n_nodes; ++i) groups[signature(nodes[static_cast<size_t>(i)])].push_back(i);
  size_t largest = 0;
  int reference = 0;
  for (const auto& [sig, members] : groups)
    if (members.size() > largest) {
      largest = members.size();
      reference = members.front();
    }
  res.nodes_diverged = n_nodes - static_cast<int>(largest);
  const auto& ref = nodes[static_cast<size_t>(reference)];
  for (int i = 0; i < n_nodes; ++i) {
    const auto& s = nodes[static_cast<size_t>(i)];
    if (signature(s) == signature(ref)) continue;
    for (const auto& [t, c] : s.columns)
      if (ref.columns.count(t) == 0 || ref.columns.at(t) != c)
        res.divergence.push_back(
            fmt::format("node {} table {}: columns {} vs {} on node {}", i + 1, t, c,
                        ref.columns.count(t) ? ref.columns.at(t) : "absent", reference + 1));
    for (const auto& [t, c] : s.checksums)
      if (ref.checksums.at(t) != c)
        res.divergence.push_back(fmt::format("node {} table {}: checksum {} vs {} on node {}",
                                             i + 1, t, c.substr(0, 12),
                                             ref.checksums.at(t).substr(0, 12), reference + 1));
    int shown = 0;
    std::set<SoakKey> keys;
    for (const auto& [k, v] : s.versions) keys.insert(k);
    for (const auto& [k, v] : ref.versions) keys.insert(k);
    for (const auto& k : keys) {
      auto a = s.versions.find(k), b = ref.versions.find(k);
      if (a != s.versions.end() && !counted(s, a->second)) a = s.versions.end();
      if (b != ref.versions.end() && !counted(ref, b->second)) b = ref.versions.end();
      bool same = a == s.versions.end() && b == ref.versions.end();
      same = same ||
             (a != s.versions.end() && b != ref.versions.end() && a->second.hlc == b->second.hlc &&
              a->second.node == b->second.node && a->second.deleted == b->second.deleted);
      if (same) continue;
      if (++shown > 5) break;
      res.divergence.push_back(fmt::format(
          "node {} {}: {} vs node {}: {}", i + 1, describe_key(k),
          a == s.versions.end() ? "no version" : describe_version(a->second), reference + 1,
          b == ref.versions.end() ? "no version" : describe_version(b->second)));
    }
  }

  // History: union of every node's committed writes, per key.
  std::map<SoakKey, std::vector<std::vector<SoakNodeState::Event>>> history;
  for (int i = 0; i < n_nodes; ++i)
    for (const auto& [k, evs] : nodes[static_cast<size_t>(i)].events) {
      auto& h = history[k];
      h.resize(static_cast<size_t>(n_nodes));
      h[static_cast<size_t>(i)] = evs;
    }
  std::set<SoakKey> lost;
  for (int x = 0; x < n_nodes; ++x) {
    const auto& s = nodes[static_cast<size_t>(x)];
    // The lowest version node n's write `l` can carry: its wall time, or, for a node whose
    // replicator ran behind, at most |offset| below it (or the clock it had reached when that
    // window began).
    auto version_floor_ms = [&](int n, const SoakNodeState::Event& l) {
      int64_t bound_ms = l.t_ms;
      for (const auto& w : slow_clocks)
        if (w.node == n + 1 && l.t_ms >= w.from_ms && l.t_ms <= w.to_ms)
          bound_ms = std::min(bound_ms, std::min(l.t_ms, w.from_ms) + w.offset_ms);
      return bound_ms;
    };
    // A key absent with no version is a delete tombstone GC pruned when some node's last write
    // to it is a delete and no node's last write is an update that must carry a version above
    // the horizon (such an update would beat any pruned delete and be live).
    auto pruned_delete_possible = [&](const std::vector<std::vector<SoakNodeState::Event>>& h,
                                      int64_t horizon) {
      if (horizon == 0) return false;
      bool a_delete = false;
      for (int n = 0; n < n_nodes; ++n) {
        const auto& evs = h[static_cast<size_t>(n)];
        if (evs.empty()) continue;
        if (evs.back().op == "D") {
          a_delete = true;
        } else if (hlc_from_ms(version_floor_ms(n, evs.back()) - 2) > horizon) {
          return false;
        }
      }
      return a_delete;
    };
    std::set<SoakKey> keys;
    for (const auto& [k, h] : history) keys.insert(k);
    for (const auto& [k, r] : s.rows) keys.insert(k);
    for (const auto& [k, v] : s.versions) keys.insert(k);
    if (x == 0) res.keys_checked = static_cast<int64_t>(keys.size());
    for (const auto& key : keys) {
      auto hit = history.find(key);
      std::vector<std::vector<SoakNodeState::Event>> h =
          hit == history.end()
              ? std::vector<std::vector<SoakNodeState::Event>>(static_cast<size_t>(n_nodes))
              : hit->second;
      auto row = s.rows.find(key);
      auto ver = s.versions.find(key);
      const bool present = row != s.rows.end();
      auto describe_history = [&] {
        std::string out = fmt::format(
            "final on node {}: {}; {}", x + 1, present ? "row wid " + row->second.wid : "absent",
            ver == s.versions.end() ? "no version" : describe_version(ver->second));
        for (int n = 0; n < n_nodes; ++n) {
          const auto& evs = h[static_cast<size_t>(n)];
          if (evs.empty()) continue;
          out += fmt::format("\n      node {} wrote ({} total):", n + 1, evs.size());
          size_t from = evs.size() > 6 ? evs.size() - 6 : 0;
          for (size_t e = from; e < evs.size(); ++e)
            out += fmt::format(" {} {}@{}", evs[e].op, evs[e].wid, evs[e].t_ms);
        }
        return out;
      };
      auto violate = [&](const std::string& what) {
        res.violations.push_back({x + 1, key, what, describe_history()});
        lost.insert(key);
      };
      bool any_write = false;
      for (const auto& evs : h) any_write = any_write || !evs.empty();
      if (!any_write) {
        if (present)
          violate("row present although no committed write touched this key" +
                  std::string(not_committed.count(row->second.wid) ? " (its write id rolled back)"
                                                                   : ""));
        else if (ver != s.versions.end() && !ver->second.deleted)
          violate("live row version for a key no committed write touched");
        continue;
      }
      if (ver == s.versions.end()) {
        if (!present && pruned_delete_possible(h, s.tombstone_horizon)) {
          if (x == 0) ++res.pruned_deletes;  // counted once, as keys_checked
          continue;
        }
        violate("committed writes but no row version: never captured or never applied");
        continue;
      }
      const auto& v = ver->second;
      if (v.dirty) violate("row version still dirty after convergence");
      const int m = static_cast<int>(v.node) - 1;
      if (m < 0 || m >= n_nodes || h[static_cast<size_t>(m)].empty()) {
        violate(fmt::format("winning version names node {}, which never wrote this key", v.node));
        continue;
      }
      const auto& last = h[static_cast<size_t>(m)].back();
      if (present) {
        const auto& r = row->second;
        if (not_committed.count(r.wid))
          violate("final row carries write id " + r.wid + " from a rolled-back transaction");
        else if (v.deleted)
          violate("row present but its version is a tombstone");
        else if (last.op != "U" || last.wid != r.wid)
          violate(
              fmt::format("final row is write {} but node {}'s last write to it is {} {}: a "
                          "later write of that node was lost",
                          r.wid, m + 1, last.op, last.wid));
        else if (auto e = expected.find(r.wid); e != expected.end()) {
          for (const auto& [col, hash] : e->second) {
            // An added column under its final name; one dropped since is not checked.
            auto val = r.values.find(col);
            if (val == r.values.end() && is_added_column(col)) {
              for (auto it = r.values.begin(); it != r.values.end(); ++it)
                if (is_added_column(it->first) && logical_column(it->first) == logical_column(col))
                  val = it;
              if (val == r.values.end()) continue;
            }
            if (val == r.values.end() || value_hash(val->second) != hash)
              violate(fmt::format("column {} holds {}, not what write {} set", col,
                                  val == r.values.end() ? "nothing" : describe_value(val->second),
                                  r.wid));
          }
        }
      } else {
        if (!v.deleted)
          violate("row absent but its version says it exists");
        else if (last.op != "D")
          violate(fmt::format("row absent but node {}'s last write to it is {} {}: lost", m + 1,
                              last.op, last.wid));
      }
      // Every node's last write had a version >= its wall time; the winner is at least that.
      for (int n = 0; n < n_nodes; ++n) {
        const auto& evs = h[static_cast<size_t>(n)];
        if (evs.empty() || n == m) continue;
        const auto& l = evs.back();
        const int64_t bound_ms = version_floor_ms(n, l);
        if (v.hlc < hlc_from_ms(bound_ms - 2))
          violate(
              fmt::format("node {}'s last write {} {} (at {} ms) is newer than the winning "
                          "version ({} ms): it was lost",
                          n + 1, l.op, l.wid, l.t_ms, hlc_physical_ms(v.hlc)));
      }
    }
  }
  res.rows_lost = static_cast<int64_t>(lost.size());
  return res;
}

}  // namespace harmony::test
