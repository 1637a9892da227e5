// The publisher (replicator/publish/publisher.cpp) against a real SQLite file and an in-memory
// transport: here, that a commit landing right after the publisher's own write transaction is
// still published at once rather than after the idle timer.
#include <sqlite3.h>

#include <catch2/catch.hpp>

#include <atomic>
#include <mutex>
#include <string_view>
#include <thread>

#include "replicator/common/stats.hpp"
#include "replicator/publish/publisher.hpp"
#include "tests/support/db_fixture.hpp"
#include "tests/support/support.hpp"

using namespace harmony;
using namespace harmony::test;

namespace {

// The test's hook into the publisher's connection: SQLite runs auto-extensions on every
// connection this process opens, so the one the publisher opens gets a profile callback, which
// SQLite calls when a statement has finished: after COMMIT, with the write lock released. (A WAL
// hook would be replaced by the default autocheckpoint hook set after auto-extensions run.) The
// callback makes the application's commit land in exactly the window between the publisher's
// COMMIT and whatever it does next.
std::mutex g_mu;
std::string g_db_path;               // the application's database
std::atomic<int> g_commits_left{0};  // application commits still to make from the hook
std::atomic<int64_t> g_next_id{1000};

int after_statement(unsigned, void*, void* stmt, void*) {
  const char* sql = sqlite3_sql(static_cast<sqlite3_stmt*>(stmt));
  if (!sql || std::string_view(sql).substr(0, 6) != "COMMIT" || g_commits_left.load() <= 0)
    return 0;
  --g_commits_left;
  std::lock_guard<std::mutex> lock(g_mu);
  Db app = Db::open(g_db_path);
  app.exec("INSERT INTO Books(id, title) VALUES (" + std::to_string(g_next_id++) + ", 'late')");
  return 0;
}

int install_hook(sqlite3* db, char**, const sqlite3_api_routines*) {
  sqlite3_trace_v2(db, SQLITE_TRACE_PROFILE, &after_statement, nullptr);
  return SQLITE_OK;
}

// Remembers every batch; publishing always succeeds.
class RecordingTransport : public BatchTransport {
 public:
  bool publish(const std::vector<OutgoingPart>&, uint64_t, uint64_t, std::string&) override {
    // The first batch's acknowledgement is recorded in the publisher's next write transaction
    // (nothing else pending then): the application commits right after that one.
    if (++published == 1) g_commits_left = 1;
    return true;
  }
  std::atomic<int> published{0};
};

}  // namespace

TEST_CASE(
    "a commit right after the publisher's write transaction is published without waiting for "
    "the idle timer",
    "[publisher][delay]") {
  TempDir dir("publisher-late-commit");
  const std::string path = make_captured_db(dir, "app.db", 1);
  {
    std::lock_guard<std::mutex> lock(g_mu);
    g_db_path = path;
  }
  Db writer = Db::open(path);
  writer.exec("INSERT INTO Books(id, title) VALUES (1, 'first')");

  RecordingTransport transport;
  ReplicatorStats stats;
  PublisherOptions o;
  o.db_path = path;
  o.node = 1;
  // Long enough that only a missed commit waits for it, short enough to end the test if so.
  o.poll_interval = std::chrono::milliseconds(10000);
  // The publisher's connection is the next one opened: it gets the hook (the hook's own
  // application connections do too, but they commit with g_commits_left already taken).
  sqlite3_auto_extension(reinterpret_cast<void (*)()>(&install_hook));
  Publisher publisher(o, transport, stats);
  std::atomic<bool> stop{false};
  std::thread t([&] { publisher.run(stop); });

  const bool both =
      wait_until([&] { return stats.rows_published.load() >= 2; }, std::chrono::milliseconds(3000));
  stop = true;
  publisher.wake();
  t.join();
  sqlite3_reset_auto_extension();
  INFO("rows published: " << stats.rows_published.load() << " in " << transport.published.load()
                          << " batches; the late commit left " << g_commits_left.load());
  CHECK(g_commits_left.load() == 0);  // the hook ran
  CHECK(both);
}
