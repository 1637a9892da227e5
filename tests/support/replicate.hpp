// "Replicate by hand" for tests: moves every pending change of one database to another through
// the real code path (fold + collect_pending, CBOR codec, Applier with last-writer-wins), with
// no NATS in between. Also helpers to read and compare table contents exactly.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "shared/apply.hpp"
#include "shared/sqlite_db.hpp"
#include "shared/value.hpp"

namespace harmony::test {

struct ReplicateStats {
  size_t rows = 0;        // row changes in the batch (0: nothing was pending)
  size_t tables = 0;      // tables in the batch
  size_t wire_bytes = 0;  // encoded size
  int64_t cleared = 0;    // dirty flags cleared on the sender (mark_published)
  ApplyStats apply;       // what the receiver did with it
  std::vector<HeldRows> held;  // rows it could not apply yet
};

// Opens (creating if needed) a database file for tests, with extended result codes.
Db open_test_db(const std::string& path);

// One publish/apply round: BEGIN IMMEDIATE on `from`, collect_pending (fold + read), COMMIT,
// encode/decode, apply on `to` in one transaction (Applier begin/apply/finish), then
// mark_published on `from` as the ack would.
ReplicateStats replicate_once(Db& from, Db& to);
// Both directions until nothing is pending on either side (at most `rounds` rounds).
void replicate_both(Db& a, Db& b, int rounds = 3);

using Row = std::vector<Value>;
// Every row of `table` (all columns, declaration order), sorted by the primary key (or rowid).
std::vector<Row> table_rows(Db& db, const std::string& table);
// Human-readable form of a value/row for failure messages: 1, 2.5 (bits), 'text', x'00ff', NULL.
std::string show(const Value& v);
std::string show(const Row& r);
// True when both tables hold the same rows, each value identical (storage class and bits).
bool same_rows(const std::vector<Row>& a, const std::vector<Row>& b);

}  // namespace harmony::test
