// Progress lines of long snapshot transfers (replicator/snapshot/store_files.cpp): percentage,
// MB/s and the time left at the rate so far (issue 17).
#include <catch2/catch.hpp>

#include "replicator/snapshot/object_store.hpp"

using harmony::transfer_progress_text;

TEST_CASE("a transfer's progress line gives percent, MB/s and the time left", "[snapshot]") {
  constexpr uint64_t kMB = 1024 * 1024;
  CHECK(transfer_progress_text("restore", 400 * kMB, 1000 * kMB, 5.0) ==
        "restore: 40% (400.0 of 1000.0 MB, 80 MB/s, ETA 8 s)");
  // Nothing moved yet, or no total known: no ETA to give.
  CHECK(transfer_progress_text("upload", 0, 1000 * kMB, 0.0) ==
        "upload: 0% (0.0 of 1000.0 MB, 0 MB/s)");
  CHECK(transfer_progress_text("upload", 10 * kMB, 0, 1.0) ==
        "upload: 100% (10.0 of 0.0 MB, 10 MB/s)");
  // Done: no ETA either.
  CHECK(transfer_progress_text("restore", 1000 * kMB, 1000 * kMB, 10.0) ==
        "restore: 100% (1000.0 of 1000.0 MB, 100 MB/s)");
}
