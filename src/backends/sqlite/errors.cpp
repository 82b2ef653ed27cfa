#include "backends/sqlite/errors.hpp"

#include "detail/text.hpp"

#include <cerrno>
#include <cstring>

namespace keyfolio::detail::sqlite {

std::string store_label(std::string_view path) { return "sqlite store " + detail::quote(path, 200); }

Error result_error(std::string_view path, sqlite3* db, std::string_view what, int rc) {
  const char* message = db ? sqlite3_errmsg(db) : sqlite3_errstr(rc);
  const int primary = rc & 0xff;
  const int system_errno = db ? sqlite3_system_errno(db) : 0;
  errc code = errc::storage_error;
  std::string detail = message;
  // The OS error is only meaningful for I/O failures; SQLite keeps an
  // older one otherwise.
  const bool io = primary == SQLITE_IOERR || primary == SQLITE_CANTOPEN || primary == SQLITE_FULL;
  const int os_error = io ? system_errno : 0;
  if (primary == SQLITE_BUSY || primary == SQLITE_LOCKED) {
    code = errc::unavailable;
    detail = "the store stayed locked by another connection longer than the busy timeout";
  } else if (primary == SQLITE_CORRUPT) {
    code = errc::corrupt_data;
  } else if (primary == SQLITE_TOOBIG) {
    code = errc::invalid_argument;
    detail = "a key or value is larger than SQLite accepts";
  } else if (primary == SQLITE_NOTADB) {
    detail = "the file is not a SQLite database";
  } else if (primary == SQLITE_READONLY) {
    detail = "the store is read-only here (" + detail + ")";
  } else if (primary == SQLITE_FULL || rc == SQLITE_IOERR_WRITE || os_error == ENOSPC || os_error == EFBIG ||
             os_error == EDQUOT) {
    // SQLite reports a full disk as SQLITE_FULL only for short writes; a
    // failed write (ENOSPC, EFBIG, EDQUOT) comes as SQLITE_IOERR_WRITE.
    detail = "could not write to the disk: it is full, the file reached a size limit, or the device failed";
    if (os_error != 0) detail += " (" + std::string(std::strerror(os_error)) + ")";
  } else if (os_error != 0) {
    detail += " (" + std::string(std::strerror(os_error)) + ")";
  }
  return Error(code, store_label(path) + ": " + std::string(what) + ": " + detail);
}

}  // namespace keyfolio::detail::sqlite
