// The node-local state harmonylite keeps in the user's database besides row versions: the
// __harmony_meta key/value store (storage format, node id, HLC clock, counters) and the stream
// positions in __harmony_positions. Plain reads and writes, no policy: the one place that knows
// where each of these lives.
#pragma once
#include <cstdint>
#include <map>
#include <optional>
#include <string>

#include "shared/sqlite_db.hpp"

namespace harmony {

// Meta key/value helpers.
std::optional<Value> meta_get(Db& db, const std::string& key);
void meta_set(Db& db, const std::string& key, const Value& value);
int64_t meta_get_int(Db& db, const std::string& key, int64_t fallback);

// Node id kept in the database (generated once at first use, or set by the replicator).
uint64_t node_id(Db& db);
void set_node_id(Db& db, uint64_t id);
// Generates a random node id when the database has none yet.
void ensure_node_id(Db& db);

// Clock helpers: the highest version issued or seen by this database. load_clock throws Error
// when the stored clock is not hlc_storable (shared/hlc.hpp) instead of adopting it.
int64_t load_clock(Db& db);
void store_clock(Db& db, int64_t hlc);

// Stream positions: the last sequence applied from each stream.
std::map<std::string, uint64_t> load_positions(Db& db);
void store_position(Db& db, const std::string& stream, uint64_t seq);

}  // namespace harmony
