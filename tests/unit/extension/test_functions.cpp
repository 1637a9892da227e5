// The real libharmony.so loaded with sqlite3_load_extension from C++: the SQL API
// (harmony_version, harmony_enable, harmony_disable, harmony_status, harmony_checksum) and
// its answers to bad input: a SQL error naming the problem, never a crash.
#include "tests/support/capture_fixture.hpp"

#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include "harmony_version.hpp"

using namespace harmony;
using namespace harmony::test;

namespace {

// A connection with libharmony loaded, like an application would do it.
Db open_with_extension(const std::string& path,
                       int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE) {
  Db db = Db::open(path, flags);
  REQUIRE(sqlite3_db_config(db.handle(), SQLITE_DBCONFIG_ENABLE_LOAD_EXTENSION, 1, nullptr) ==
          SQLITE_OK);
  char* err = nullptr;
  int rc = sqlite3_load_extension(db.handle(), extension_path().c_str(), nullptr, &err);
  std::string msg = err ? err : "";
  sqlite3_free(err);
  INFO("loading " << extension_path() << ": " << msg);
  REQUIRE(rc == SQLITE_OK);
  return db;
}

// Runs one statement; returns its single value as text, or "ERROR: <message>".
std::string eval(Db& db, const std::string& sql) {
  sqlite3_stmt* s = nullptr;
  if (sqlite3_prepare_v2(db.handle(), sql.c_str(), -1, &s, nullptr) != SQLITE_OK)
    return std::string("ERROR: ") + sqlite3_errmsg(db.handle());
  std::string out;
  int rc = sqlite3_step(s);
  if (rc == SQLITE_ROW) {
    const unsigned char* t = sqlite3_column_text(s, 0);
    out = t ? reinterpret_cast<const char*>(t) : "NULL";
    rc = sqlite3_step(s);
  }
  if (rc != SQLITE_DONE) out = std::string("ERROR: ") + sqlite3_errmsg(db.handle());
  sqlite3_finalize(s);
  return out;
}

// Runs one statement as user nobody (uid/gid 65534) in a child process, with the extension
// loaded; returns what eval() would, or "CHILD: ..." when the child could not run it.
std::string eval_as_nobody(const std::string& path, const std::string& sql) {
  int fds[2];
  if (pipe(fds) != 0) return "CHILD: pipe failed";
  pid_t pid = fork();
  if (pid == 0) {
    close(fds[0]);
    std::string out;
    if (setgid(65534) != 0 || setuid(65534) != 0) {
      out = "CHILD: cannot become nobody";
    } else {
      sqlite3* h = nullptr;
      char* err = nullptr;
      if (sqlite3_open_v2(path.c_str(), &h, SQLITE_OPEN_READWRITE, nullptr) != SQLITE_OK ||
          sqlite3_db_config(h, SQLITE_DBCONFIG_ENABLE_LOAD_EXTENSION, 1, nullptr) != SQLITE_OK ||
          sqlite3_load_extension(h, extension_path().c_str(), nullptr, &err) != SQLITE_OK) {
        out = std::string("CHILD: cannot open/load: ") + (err ? err : sqlite3_errmsg(h));
      } else {
        Db db = Db::borrow(h);
        out = eval(db, sql);
      }
      sqlite3_free(err);
      sqlite3_close_v2(h);
    }
    ssize_t ignored = write(fds[1], out.data(), out.size());
    (void)ignored;
    _exit(0);
  }
  close(fds[1]);
  std::string out;
  char buf[4096];
  for (ssize_t n; (n = read(fds[0], buf, sizeof buf)) > 0;) out.append(buf, static_cast<size_t>(n));
  close(fds[0]);
  int status = 0;
  waitpid(pid, &status, 0);
  return out;
}

}  // namespace

TEST_CASE("the extension loads from C++ and its SQL functions work", "[capture][extension]") {
  TempDir dir("ext");
  const std::string path = dir.file("app.db");
  Db db = open_with_extension(path);
  db.exec(
      "CREATE TABLE Books (id INTEGER PRIMARY KEY, title TEXT, author TEXT);"
      "CREATE TABLE Authors (name TEXT PRIMARY KEY, born INTEGER);"
      "CREATE TABLE nokey (x); INSERT INTO Books VALUES (1, 'Dune', 'Herbert');");
  CHECK(eval(db, "SELECT harmony_version()") == build::kVersion);

  CHECK(eval(db, "SELECT harmony_enable('Books')") == "1");
  CHECK(eval(db, "SELECT harmony_enable('books')") == "0");  // idempotent, any case
  CHECK(eval(db, "SELECT harmony_enable('*')") == "1");      // Authors; nokey skipped
  CHECK(eval(db, "SELECT harmony_enable('*')") == "0");

  // Another connection that never loaded the extension writes; capture sees it.
  shell_ok(path, "PRAGMA trusted_schema=OFF; INSERT INTO Books VALUES (2, 'Emma', 'Austen');");
  auto status = nlohmann::json::parse(eval(db, "SELECT harmony_status()"));
  INFO(status.dump());
  CHECK(status["version"] == build::kVersion);
  CHECK(status["node_id"].is_number_unsigned());
  CHECK(status["node_id"].get<uint64_t>() != 0);
  CHECK(status["hlc"].is_number());
  CHECK(status["pending"] == 1);
  REQUIRE(status["tables"].size() == 2);
  CHECK(status["tables"][0]["name"] == "Books");
  CHECK(status["tables"][0]["pending"] == 1);
  CHECK(status["tables"][1]["name"] == "Authors");
  CHECK(status["tables"][1]["pending"] == 0);
  CHECK(status["problems"].empty());

  // Checksums: the same code as harmony::table_checksum; whole-database form too.
  CHECK(eval(db, "SELECT harmony_checksum('Books')") == table_checksum(db, "Books"));
  CHECK(eval(db, "SELECT harmony_checksum()") == database_checksum(db));
  CHECK(eval(db, "SELECT harmony_checksum('Books')") !=
        eval(db, "SELECT harmony_checksum('Authors')"));

  // Disable: refused while a change is unpublished, allowed with 'discard'.
  auto refused = eval(db, "SELECT harmony_disable('Books')");
  CHECK_THAT(refused, Catch::StartsWith("ERROR:") && Catch::Contains("unpublished") &&
                          Catch::Contains("'discard'"));
  CHECK(eval(db, "SELECT harmony_disable('*')").rfind("ERROR:", 0) == 0);
  CHECK(eval(db, "SELECT harmony_disable('Books', 'discard')") == "1");
  CHECK(eval(db, "SELECT harmony_disable('Books')") == "0");
  CHECK(eval(db, "SELECT harmony_disable('*')") == "1");
  CHECK(eval(db, "SELECT count(*) FROM sqlite_schema WHERE type = 'trigger'") == "0");
  // 'existing' publishes the rows already there.
  CHECK(eval(db, "SELECT harmony_enable('Books', 'existing')") == "2");  // rows captured
  CHECK(nlohmann::json::parse(eval(db, "SELECT harmony_status()"))["pending"] == 2);
  // Inside the application's own transaction, a rollback undoes enabling.
  db.exec("BEGIN");
  CHECK(eval(db, "SELECT harmony_enable('Authors')") == "1");
  db.exec("ROLLBACK");
  CHECK(!find_captured(db, "Authors"));
}

TEST_CASE("bad input gives a SQL error naming the problem", "[capture][extension]") {
  TempDir dir("ext");
  const std::string path = dir.file("app.db");
  Db db = open_with_extension(path);
  db.exec(
      "CREATE TABLE t (id INTEGER PRIMARY KEY); CREATE TABLE nokey (x); CREATE VIEW v AS "
      "SELECT 1; CREATE VIRTUAL TABLE f USING fts5(x);");
  struct Case {
    const char* sql;
    std::vector<const char*> expect;
  };
  const Case cases[] = {
      {"SELECT harmony_enable('missing')", {"no such table", "missing"}},
      {"SELECT harmony_enable('')", {"no such table"}},
      {"SELECT harmony_enable(42)", {"harmony_enable", "must be text", "integer"}},
      {"SELECT harmony_enable(NULL)", {"harmony_enable", "must be text", "NULL"}},
      {"SELECT harmony_enable(x'00')", {"must be text", "blob"}},
      {"SELECT harmony_enable(1.5)", {"must be text", "real"}},
      {"SELECT harmony_enable('t', 'everything')", {"unknown option", "'existing'"}},
      {"SELECT harmony_enable('t', 1)", {"second argument", "must be text"}},
      {"SELECT harmony_enable()", {"wrong number of arguments"}},
      {"SELECT harmony_enable('t', 'existing', 3)", {"wrong number of arguments"}},
      {"SELECT harmony_enable('nokey')", {"\"nokey\"", "no PRIMARY KEY"}},
      {"SELECT harmony_enable('v')", {"view"}},
      {"SELECT harmony_enable('f')", {"virtual table"}},
      {"SELECT harmony_enable('f_data')", {"shadow table"}},
      {"SELECT harmony_enable('sqlite_schema')", {"internal"}},
      {"SELECT harmony_enable('__harmony_meta')", {"internal"}},
      {"SELECT harmony_disable('missing')", {"no such table", "missing"}},
      {"SELECT harmony_disable(7)", {"harmony_disable", "must be text"}},
      {"SELECT harmony_disable('t', 'force')", {"unknown option", "'discard'"}},
      {"SELECT harmony_checksum('missing')", {"no such table"}},
      {"SELECT harmony_checksum(NULL)", {"must be text"}},
      {"SELECT harmony_status(1)", {"wrong number of arguments"}},
  };
  for (const auto& c : cases) {
    INFO(c.sql);
    std::string got = eval(db, c.sql);
    CHECK_THAT(got, Catch::StartsWith("ERROR:"));
    for (const char* e : c.expect) CHECK_THAT(got, Catch::Contains(e));
  }
  // Failed calls left nothing behind, and the database is still usable.
  CHECK(eval(db, "SELECT harmony_enable('t')") == "1");
  CHECK(eval(db, "SELECT count(*) FROM __harmony_tables") == "1");
  // The functions cannot be smuggled into triggers or views (SQLITE_DIRECTONLY).
  db.exec("CREATE VIEW sneaky AS SELECT harmony_enable('nokey') AS x");
  CHECK_THAT(eval(db, "SELECT * FROM sneaky"), Catch::Contains("unsafe use of harmony_enable"));
  db.exec(
      "CREATE TABLE trap (id INTEGER PRIMARY KEY); CREATE TRIGGER trap_t AFTER INSERT ON trap "
      "BEGIN SELECT harmony_disable('*', 'discard'); END;");
  CHECK_THAT(eval(db, "INSERT INTO trap VALUES (1)"), Catch::Contains("unsafe use"));
  CHECK(eval(db, "SELECT count(*) FROM __harmony_tables") == "1");
}

TEST_CASE("read-only databases: inspection works, changes are refused clearly",
          "[capture][extension]") {
  TempDir dir("ext");
  const std::string path = dir.file("ro.db");
  {
    Db db = open_with_extension(path);
    db.exec("CREATE TABLE t (id INTEGER PRIMARY KEY); CREATE TABLE u (id INTEGER PRIMARY KEY);");
    CHECK(eval(db, "SELECT harmony_enable('t')") == "1");
  }
  auto check_readonly = [](Db& ro) {
    CHECK(nlohmann::json::parse(eval(ro, "SELECT harmony_status()"))["tables"].size() == 1);
    CHECK(eval(ro, "SELECT length(harmony_checksum('t'))") == "32");
    for (const char* sql : {"SELECT harmony_enable('u')", "SELECT harmony_enable('*')",
                            "SELECT harmony_disable('t', 'discard')"}) {
      INFO(sql);
      CHECK_THAT(eval(ro, sql), Catch::StartsWith("ERROR:") && Catch::Contains("read-only"));
    }
  };
  SECTION("opened read-only") {
    Db ro = open_with_extension(path, SQLITE_OPEN_READONLY);
    check_readonly(ro);
  }
  SECTION("opened with ?mode=ro") {
    Db ro =
        open_with_extension("file:" + path + "?mode=ro", SQLITE_OPEN_READWRITE | SQLITE_OPEN_URI);
    check_readonly(ro);
  }
  SECTION("file mode 0444") {
    REQUIRE(chmod(path.c_str(), 0444) == 0);
    if (geteuid() != 0) {
      Db ro = open_with_extension(path, SQLITE_OPEN_READWRITE);
      check_readonly(ro);
    } else {
      // root ignores file modes: try as user "nobody" in a child process.
      REQUIRE(chmod(dir.path().c_str(), 0755) == 0);
      std::string out = eval_as_nobody(path, "SELECT harmony_enable('u')");
      INFO(out);
      CHECK_THAT(out, Catch::StartsWith("ERROR:") && Catch::Contains("read-only"));
      CHECK(eval_as_nobody(path, "SELECT json_extract(harmony_status(), '$.pending')") == "0");
    }
    chmod(path.c_str(), 0644);
  }
  SECTION("a database never set up, opened read-only") {
    const std::string fresh = dir.file("fresh.db");
    {
      Db c = open_test_db(fresh);
      c.exec("CREATE TABLE t (id INTEGER PRIMARY KEY)");
    }
    Db ro = open_with_extension(fresh, SQLITE_OPEN_READONLY);
    auto st = nlohmann::json::parse(eval(ro, "SELECT harmony_status()"));
    CHECK(st["pending"] == 0);
    CHECK(st["node_id"].is_null());
    CHECK_THAT(eval(ro, "SELECT harmony_enable('t')"), Catch::Contains("read-only"));
    CHECK(eval(ro, "SELECT harmony_disable('t')") == "0");
  }
}

// Issue 15 case 1: rows written to a table before capture reached it were never published, and
// harmony_enable(T, 'existing') on the already-captured table answered 0 and did nothing.
TEST_CASE("harmony_enable 'existing' on a captured table captures the rows present",
          "[capture][extension]") {
  TempDir dir("ext");
  const std::string path = dir.file("app.db");
  Db db = open_with_extension(path);
  db.exec(
      "CREATE TABLE newt (id INTEGER PRIMARY KEY, v TEXT);"
      "CREATE TABLE other (k TEXT PRIMARY KEY);"
      "INSERT INTO newt VALUES (1, 'a'), (2, 'b'); INSERT INTO other VALUES ('x');");
  // Capture installed after the rows were written: they are not pending.
  CHECK(eval(db, "SELECT harmony_enable('newt')") == "1");
  db.exec("INSERT INTO newt VALUES (3, 'c')");
  auto pending = [&] {
    return nlohmann::json::parse(eval(db, "SELECT harmony_status()"))["pending"].get<int64_t>();
  };
  CHECK(pending() == 1);
  // 'existing' on the captured table: every row present becomes a change to publish.
  CHECK(eval(db, "SELECT harmony_enable('newt', 'existing')") == "3");
  CHECK(pending() == 3);
  CHECK(eval(db, "SELECT harmony_enable('NEWT', 'existing')") == "3");  // again: same rows
  CHECK(pending() == 3);
  // '*': rows of every eligible table, newly captured or not; `other` is now captured too.
  CHECK(eval(db, "SELECT harmony_enable('*', 'existing')") == "4");
  CHECK(pending() == 4);
  CHECK(eval(db, "SELECT count(*) FROM __harmony_tables") == "2");
  // Inside the application's transaction, a rollback takes the captured rows back too.
  db.exec("BEGIN");
  CHECK(eval(db, "SELECT harmony_enable('newt', 'existing')") == "3");
  db.exec("ROLLBACK");
  CHECK(pending() == 4);
}
