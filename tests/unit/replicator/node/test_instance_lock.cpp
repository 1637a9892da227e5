// replicator/node/instance_lock.cpp: one holder per database file, a message naming the file
// and the holder's pid, released with its holder, and no symlink followed.
#include <sys/stat.h>
#include <unistd.h>

#include <catch2/catch.hpp>

#include <memory>
#include <string>

#include <fmt/format.h>

#include "replicator/node/instance_lock.hpp"
#include "shared/error.hpp"
#include "tests/support/support.hpp"

using namespace harmony;
using namespace harmony::test;

TEST_CASE("instance lock: a second holder is refused with the file and the pid, until released",
          "[instance_lock]") {
  TempDir dir;
  const std::string db = dir.file("app.db");
  write_file(db, "");
  auto first = std::make_unique<InstanceLock>(db);
  CHECK(first->path() == instance_lock_path(db));
  struct stat st {};
  REQUIRE(::stat(first->path().c_str(), &st) == 0);
  CHECK((st.st_mode & 0777) == 0600);

  // flock belongs to the open file description: a second open in this process conflicts as a
  // second process would.
  std::string message;
  try {
    InstanceLock second(db);
  } catch (const Error& e) {
    message = e.what();
  }
  INFO(message);
  CHECK(message.find("already replicating database " + db) != std::string::npos);
  CHECK(message.find(fmt::format("pid {}", ::getpid())) != std::string::npos);

  first.reset();
  CHECK_NOTHROW(InstanceLock(db));
}

TEST_CASE("instance lock: a symlink planted as the lock file is not followed", "[instance_lock]") {
  TempDir dir;
  const std::string db = dir.file("app.db"), victim = dir.file("victim.txt");
  write_file(db, "");
  write_file(victim, "keep me");
  REQUIRE(::symlink(victim.c_str(), instance_lock_path(db).c_str()) == 0);
  CHECK_THROWS_WITH(InstanceLock(db), Catch::Contains("symbolic link"));
  CHECK(read_file(victim) == "keep me");
}
