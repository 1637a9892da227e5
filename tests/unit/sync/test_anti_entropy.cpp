// Anti-entropy's catch-up rule (replicator/sync/anti_entropy.hpp, kCatchUpLagMessages): a node
// that is far behind a stream leaves repair to the stream; one that lags a little, or whose
// stream is paused (a gap, held rows full), still runs its rounds.
#include <catch2/catch.hpp>

#include "replicator/sync/anti_entropy.hpp"

using namespace harmony;

TEST_CASE("rounds wait only for a stream that is catching up", "[anti_entropy][catchup]") {
  std::map<std::string, StreamProgress> streams;
  CHECK(stream_catching_up(streams).empty());
  StreamProgress steady;
  steady.position = 5'000;
  steady.last_seq = 5'000 + kCatchUpLagMessages - 1;  // a busy steady state
  streams["s1"] = steady;
  CHECK(stream_catching_up(streams).empty());
  StreamProgress restarted;  // node 3 of the benchmark after its restart
  restarted.position = 100;
  restarted.last_seq = 100 + 300;
  streams["s2"] = restarted;
  CHECK(stream_catching_up(streams).empty());
  restarted.last_seq = 100 + kCatchUpLagMessages;
  streams["s2"] = restarted;
  CHECK(stream_catching_up(streams) == "s2");
  // Paused: nothing will come from the stream until its cause is gone, repair must go on.
  restarted.paused = true;
  streams["s2"] = restarted;
  CHECK(stream_catching_up(streams).empty());
  // Not known yet (the stream state comes with the monitor's first poll): not catching up.
  streams["s3"] = StreamProgress{};
  CHECK(stream_catching_up(streams).empty());
}
