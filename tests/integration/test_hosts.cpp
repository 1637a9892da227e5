// libharmony.so in the programs applications really run: the extension calls SQLite only
// through the host's sqlite3_api_routines, so it loads into Debian's python3, a C program, and
// better-sqlite3 (which carries its own, newer SQLite). Each host runs the example an app
// developer would copy (examples/<language>/), which loads the extension, enables a table,
// writes and reads harmony_status(); the write must reach a second node. Also: the built
// library links no SQLite, and a host with too old a SQLite is refused with a clear message.
#include <dlfcn.h>

#include <catch2/catch.hpp>

#include <functional>
#include <sstream>

#include <fmt/format.h>

// Only the api table's struct is wanted here, not sqlite3ext.h's redirecting macros: this file
// is a host, linked to the system libsqlite3 like any program.
#define SQLITE_CORE 1
#include <sqlite3ext.h>

#include "tests/support/cluster.hpp"

using namespace harmony::test;

namespace {

const char* kNotesSchema = "CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT NOT NULL);";

// Where scripts/setup.sh installs better-sqlite3 (npm install --prefix .cache/node).
std::string node_modules() {
  return source_dir() + "/.cache/node/node_modules";
}

bool has_line(const std::string& text, const std::string& needle) {
  return text.find(needle) != std::string::npos;
}

// Starts two nodes whose databases hold the notes table, runs `app` (an example, writing
// `note` into node 0's database) and checks the note reaches node 1. Returns the app's output.
std::string run_example_and_replicate(
    const std::function<std::vector<std::string>(const std::string& db, const std::string& note)>&
        app,
    const std::string& note) {
  TestCluster c(ClusterOptions{.nodes = 2, .schema = kNotesSchema});
  c.start_all();
  for (int i = 0; i < c.size(); ++i) REQUIRE(c.wait_ready(i));
  CommandResult r = run_command(app(c.db(0), note), 60s);
  INFO("example output:\n" << r.output);
  REQUIRE(r.exit_code == 0);
  CHECK(has_line(r.output, "harmony_version: "));
  CHECK(has_line(r.output, "harmony_status: "));
  const std::string quoted = "'" + note + "'";
  INFO(c.all_logs());
  CHECK(c.query_int(0, "SELECT count(*) FROM notes WHERE body=" + quoted) == 1);
  REQUIRE(wait_until(
      [&] { return c.query_int(1, "SELECT count(*) FROM notes WHERE body=" + quoted) == 1; }, 20s));
  return r.output;
}

using InitFn = int (*)(sqlite3*, char**, const sqlite3_api_routines*);

// Calls libharmony's entry point with a fake host api table; returns the error it gives.
std::string init_with(const sqlite3_api_routines& api) {
  void* lib = dlopen((extension_path() + ".so").c_str(), RTLD_NOW | RTLD_LOCAL);
  REQUIRE(lib != nullptr);
  auto init = reinterpret_cast<InitFn>(dlsym(lib, "sqlite3_harmony_init"));
  REQUIRE(init != nullptr);
  char* err = nullptr;
  int rc = init(nullptr, &err, &api);
  std::string msg = err ? err : "(no message)";
  sqlite3_free(err);
  dlclose(lib);
  CHECK(rc == SQLITE_ERROR);
  return msg;
}

}  // namespace

TEST_CASE("libharmony.so links no SQLite and calls none directly", "[hosts]") {
  const std::string so = extension_path() + ".so";
  CommandResult needed = run_command({"readelf", "-d", so});
  REQUIRE(needed.exit_code == 0);
  INFO("readelf -d:\n" << needed.output);
  CHECK_FALSE(has_line(needed.output, "libsqlite3"));

  CommandResult undefined = run_command({"nm", "-D", "--undefined-only", so});
  REQUIRE(undefined.exit_code == 0);
  std::string sqlite_refs;
  std::istringstream lines(undefined.output);
  for (std::string line; std::getline(lines, line);)
    if (has_line(line, " sqlite3_")) sqlite_refs += line + "\n";
  INFO("undefined sqlite3_* symbols:\n" << sqlite_refs);
  CHECK(sqlite_refs.empty());

  // The only SQLite-looking symbol it exports is its entry point (the sqlite3_api pointer stays
  // private: another extension's must not interpose it).
  CommandResult defined = run_command({"nm", "-D", "--defined-only", so});
  REQUIRE(defined.exit_code == 0);
  CHECK(has_line(defined.output, " sqlite3_harmony_init"));
  CHECK_FALSE(has_line(defined.output, " sqlite3_api"));
}

TEST_CASE("a host whose SQLite is too old is refused with the minimum version", "[hosts]") {
  sqlite3_api_routines api{};
  api.mprintf = sqlite3_mprintf;
  api.table_column_metadata = sqlite3_table_column_metadata;
  SECTION("SQLite 3.36.0: older than sqlite3_changes64") {
    api.libversion_number = [] { return 3036000; };
    api.libversion = [] { return "3.36.0"; };
    std::string msg = init_with(api);
    CHECK(msg ==
          "libharmony needs SQLite 3.37.0 or newer; this host runs SQLite 3.36.0 (upgrade the "
          "SQLite library the program uses)");
  }
  SECTION("a SQLite built without column metadata") {
    api.libversion_number = [] { return 3045000; };
    api.libversion = [] { return "3.45.0"; };
    api.table_column_metadata = nullptr;
    std::string msg = init_with(api);
    CHECK(has_line(msg, "needs a SQLite built with SQLITE_ENABLE_COLUMN_METADATA"));
    CHECK(has_line(msg, "3.45.0"));
  }
}

TEST_CASE("C: examples/c/app.c with its documented build line replicates", "[hosts]") {
  const std::string src = source_dir() + "/examples/c/app.c";
  // The build line the example documents, run as written (only the paths differ).
  REQUIRE(has_line(read_file(src), "cc -Wall -o app app.c -lsqlite3"));
  TempDir tmp("c-example");
  const std::string app = tmp.file("app");
  CommandResult built = run_command({"cc", "-Wall", "-o", app, src, "-lsqlite3"}, 120s);
  INFO("cc:\n" << built.output);
  REQUIRE(built.exit_code == 0);
  std::string out = run_example_and_replicate(
      [&](const std::string& db, const std::string& note) {
        return std::vector<std::string>{app, extension_path(), db, note};
      },
      "from C");
  CHECK(has_line(out, "\"node_id\":1"));
}

TEST_CASE("Python: Debian's python3 runs examples/python/app.py and the write replicates",
          "[hosts]") {
  const std::string python = "/usr/bin/python3";  // Debian's, with its sqlite3 module
  REQUIRE(run_command({python, "--version"}).exit_code == 0);
  std::string out = run_example_and_replicate(
      [&](const std::string& db, const std::string& note) {
        return std::vector<std::string>{python, source_dir() + "/examples/python/app.py",
                                        extension_path(), db, note};
      },
      "from Python");
  CHECK(has_line(out, "node_id: 1 "));
}

TEST_CASE("Node.js: better-sqlite3 12, with its own SQLite, runs examples/node/app.js", "[hosts]") {
  const std::string module = node_modules() + "/better-sqlite3";
  if (read_file(module + "/package.json").empty()) {
    // Catch2 v2 has no skip: say loudly why nothing was checked. scripts/setup.sh installs it.
    WARN("SKIPPED: better-sqlite3 is not installed at "
         << module << " (run scripts/setup.sh, which runs npm install better-sqlite3@12)");
    return;
  }
  std::string out = run_example_and_replicate(
      [&](const std::string& db, const std::string& note) {
        return std::vector<std::string>{"env",
                                        "NODE_PATH=" + node_modules(),
                                        "node",
                                        source_dir() + "/examples/node/app.js",
                                        extension_path(),
                                        db,
                                        note};
      },
      "from Node");
  CHECK(has_line(out, "node_id: 1 "));
  // The proof that the extension does not need the system's SQLite: better-sqlite3 bundles its
  // own, a different version from the libsqlite3 this test (and the system) links.
  const std::string system_version = sqlite3_libversion();
  INFO("system SQLite " << system_version);
  CHECK(has_line(out, "sqlite_version: "));
  CHECK_FALSE(has_line(out, "sqlite_version: " + system_version));
}
