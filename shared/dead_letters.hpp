// The dead-letter table, __harmony_dead_letters: what a received message or row could not be
// applied as, with the reason and (up to 64 KiB of) the payload. Anyone who can publish into a
// change stream can make a node store here, so the table is bounded: prune() removes the oldest
// rows beyond a row count, a byte total or an age (issue 14 item 8). The caller owns the
// transaction around record() and prune().
#pragma once
#include <cstdint>
#include <string>
#include <string_view>

namespace harmony {

class Db;  // shared/sqlite_db.hpp; not included, so the config can name the limits cheaply

// The bytes a row counts for: its payload, reason, stream and table name (the fixed-size
// columns are left out; they are a few dozen bytes a row at most, bounded by max_rows). The same
// expression in SQL is kDeadLetterRowBytesSql.
inline constexpr const char* kDeadLetterRowBytesSql =
    "coalesce(length(payload),0) + length(reason) + coalesce(length(stream),0) + "
    "coalesce(length(table_name),0)";

struct DeadLetterLimits {
  int64_t max_rows = 10000;  // keeps a flood's last rows for diagnosis, small next to user data
  int64_t max_bytes = 64LL * 1024 * 1024;       // 64 MiB: a thousand rows with full 64 KiB payloads
  int64_t max_age_ms = 7LL * 24 * 3600 * 1000;  // 7 days: a week to look at them; 0 = no age limit
};

struct DeadLetter {
  std::string stream;
  uint64_t seq = 0;
  uint64_t origin = 0;
  uint64_t batch_id = 0;
  std::string table;         // "" = the whole message (stored as NULL)
  std::string reason;        // required
  std::string_view payload;  // "" = none (stored as NULL)
};

struct DeadLetterUsage {
  int64_t rows = 0;
  int64_t bytes = 0;  // by kDeadLetterRowBytesSql
};

struct PruneResult {
  int64_t by_age = 0, by_rows = 0, by_bytes = 0;
  int64_t total() const { return by_age + by_rows + by_bytes; }
};

// Inserts one row stamped with the wall clock (`at_ms`).
void record_dead_letter(Db& db, const DeadLetter& letter, int64_t at_ms);

// Rows and bytes stored now.
DeadLetterUsage dead_letter_usage(Db& db);

// Deletes, oldest first (by id, the order of recording): rows older than now_ms - max_age_ms,
// then rows beyond max_rows, then rows until the rest fit in max_bytes. Work is bounded by the
// rows it removes plus one pass over the table. Inside the caller's write transaction.
PruneResult prune_dead_letters(Db& db, int64_t now_ms, const DeadLetterLimits& limits);

}  // namespace harmony
