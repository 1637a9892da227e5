// Error type used inside harmonylite's C++ code. Exceptions never cross the extension's C ABI:
// extension/ converts them to sqlite3_result_error at the SQL-function boundary.
#pragma once
#include <stdexcept>
#include <string>

namespace harmony {

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& message) : std::runtime_error(message) {}
};

// A SQLite call failed; `code` is the extended result code (SQLITE_BUSY, SQLITE_CONSTRAINT_...).
class SqliteError : public Error {
 public:
  SqliteError(int code, const std::string& message) : Error(message), code_(code) {}
  int code() const { return code_; }
  bool busy() const {
    return (code_ & 0xff) == 5 /*SQLITE_BUSY*/ || (code_ & 0xff) == 6 /*LOCKED*/;
  }

 private:
  int code_;
};

}  // namespace harmony
