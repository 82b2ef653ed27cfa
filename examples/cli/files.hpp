// Files the tool reads and writes for export and import: written whole or not
// at all, readable by their owner only, and read into buffers the caller
// wipes, since they hold secrets in plain text.
#pragma once

#include <keyfolio/keyfolio.hpp>

#include <cstddef>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

namespace keyfolio::cli {

// A storage_error "could not WHAT PATH: " followed by the text of errno.
keyfolio::Error io_error(const std::string& what, const std::string& path);

// A conflict: `path` exists and --force was not given.
keyfolio::Error already_exists(const std::string& path);

// Writes `pieces` to `path`, or to standard output for "-". A new file is
// readable by its owner only; an existing one is replaced only with
// `replace` (else already_exists). The file appears complete or not at all.
// Where the file system has unnamed files (Linux O_TMPFILE) and this process
// can name one (through /proc/self/fd, or with CAP_DAC_READ_SEARCH), nothing
// is left behind when the process is killed while writing, except when
// replacing a file and killed in the instant between naming the complete
// file and renaming it over the old one; elsewhere a killed write leaves its
// hidden temporary file (.NAME.XXXXXX) beside `path`.
keyfolio::Result<void> write_file(const std::string& path, const std::vector<std::string_view>& pieces, bool replace);

// Seams of write_file for tests, process-wide; the tool leaves them as they
// are. Not safe to change while a write_file runs.
struct WriteFileSeams {
  // Called after each piece is written to the file, with how many are.
  std::function<void(std::size_t written)> after_piece;
  // Write through a named temporary file, as where there are no unnamed files.
  bool named_temporary_only = false;
};
WriteFileSeams& write_file_seams();

// The whole of `path`, or of standard input for "-": not_found for a missing
// file, invalid_argument past 1 GiB. The caller wipes the text (Wiped).
keyfolio::Result<std::string> read_input(const std::string& path);

// Whether the open file `fd` is private to this process's user, as a file
// holding a secret must be: owned by the effective user, and with no
// permission bits for group or others (the mode KeySource requires of a key
// file). invalid_argument otherwise, naming `what` and saying how to fix it.
keyfolio::Result<void> check_private(int fd, const std::string& what);

// Zeroes a buffer of plaintext secrets when it goes out of scope.
struct Wiped {
  std::string& text;
  ~Wiped();
};

}  // namespace keyfolio::cli
