#include "files.hpp"

#include "cli.hpp"

#include <sodium.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstdint>
#include <cstring>
#include <fcntl.h>
#include <filesystem>
#include <optional>
#include <sys/stat.h>
#include <unistd.h>

namespace keyfolio::cli {

namespace fs = std::filesystem;

keyfolio::Error io_error(const std::string& what, const std::string& path) {
  return keyfolio::Error(keyfolio::errc::storage_error, "could not " + what + " " + path + ": " + std::strerror(errno));
}

keyfolio::Error already_exists(const std::string& path) {
  return keyfolio::Error(keyfolio::errc::conflict, path + " exists; give --force to replace it");
}

namespace {

bool write_all(int fd, std::string_view data) {
  while (!data.empty()) {
    const ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    data.remove_prefix(static_cast<std::size_t>(n));
  }
  return true;
}

}  // namespace

WriteFileSeams& write_file_seams() {
  static WriteFileSeams seams;
  return seams;
}

namespace {

// Writes every piece to `fd` and makes it durable; false with errno set.
bool write_pieces(int fd, const std::vector<std::string_view>& pieces) {
  for (std::size_t i = 0; i < pieces.size(); ++i) {
    if (!write_all(fd, pieces[i])) return false;
    if (write_file_seams().after_piece) write_file_seams().after_piece(i + 1);
  }
  return ::fsync(fd) == 0;
}

// Closes a descriptor on every way out.
struct Closed {
  int fd;
  ~Closed() { ::close(fd); }
};

// Where `path`'s file goes, and the hidden name of a temporary file beside
// it (ending in XXXXXX, for mkstemp or random_name).
struct Place {
  std::string directory;
  std::string temp_pattern;
};

Place place_of(const std::string& path) {
  const fs::path target(path);
  const fs::path directory = target.parent_path().empty() ? fs::path(".") : target.parent_path();
  return {directory.string(), (directory / ("." + target.filename().string() + ".XXXXXX")).string()};
}

// `pattern` with its trailing XXXXXX replaced by random letters and digits.
std::string random_name(std::string pattern) {
  static constexpr std::string_view alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
  for (std::size_t i = pattern.size() - 6; i < pattern.size(); ++i) {
    pattern[i] = alphabet[randombytes_uniform(static_cast<std::uint32_t>(alphabet.size()))];
  }
  return pattern;
}

// Gives the unnamed (O_TMPFILE) file `fd` the name `path`, never replacing a
// file there (EEXIST). The /proc/self/fd form is open to every process where
// /proc is mounted; without /proc (ENOENT), AT_EMPTY_PATH names the
// descriptor itself, which needs CAP_DAC_READ_SEARCH before Linux 6.10 (and
// fails with ENOENT without it).
int link_unnamed(int fd, const std::string& path) {
  const std::string proc = "/proc/self/fd/" + std::to_string(fd);
  if (::linkat(AT_FDCWD, proc.c_str(), AT_FDCWD, path.c_str(), AT_SYMLINK_FOLLOW) == 0) return 0;
  if (errno != ENOENT) return -1;
  return ::linkat(fd, "", AT_FDCWD, path.c_str(), AT_EMPTY_PATH);
}

// Writes through a file with no name (O_TMPFILE), named only once complete
// and durable, so that a process killed while writing leaves nothing behind.
// nullopt when the kernel or file system has no such files, or the file
// cannot be named: the caller writes through a named temporary file instead.
std::optional<keyfolio::Result<void>> write_unnamed(const std::string& path, const std::vector<std::string_view>& pieces,
                                                    bool replace) {
  const Place place = place_of(path);
  const int fd = ::open(place.directory.c_str(), O_TMPFILE | O_WRONLY | O_CLOEXEC, 0600);
  if (fd < 0) {
    if (errno == EOPNOTSUPP || errno == EISDIR || errno == EINVAL) return std::nullopt;
    return io_error("create a file in the directory of", path);
  }
  const Closed closed{fd};
  if (!write_pieces(fd, pieces)) return io_error("write", path);
  if (link_unnamed(fd, path) == 0) return keyfolio::Result<void>{};
  if (errno == ENOENT) return std::nullopt;  // neither form of linkat is open to this process
  if (errno != EEXIST) return io_error("write", path);
  if (!replace) return already_exists(path);
  // Replacing a file: linkat cannot, so the complete file gets a temporary
  // name beside it and is renamed over the old one. A crash between the two
  // leaves it under that name (whole, private to its owner).
  for (int tries = 0; tries < 16; ++tries) {
    const std::string temp = random_name(place.temp_pattern);
    if (link_unnamed(fd, temp) != 0) {
      if (errno == EEXIST) continue;
      return io_error("write", path);
    }
    if (::rename(temp.c_str(), path.c_str()) != 0) {
      const int saved = errno;
      ::unlink(temp.c_str());
      errno = saved;
      return io_error("write", path);
    }
    return keyfolio::Result<void>{};
  }
  errno = EEXIST;
  return io_error("create a file in the directory of", path);
}

// Writes through a private temporary file beside `path`, renamed into place
// once complete: a failed write never leaves a partial file or replaces a
// good one, but a process killed while writing leaves the temporary file.
keyfolio::Result<void> write_named(const std::string& path, const std::vector<std::string_view>& pieces, bool replace) {
  std::string temp = place_of(path).temp_pattern;
  const int fd = ::mkstemp(temp.data());  // created 0600
  if (fd < 0) return io_error("create a file in the directory of", path);
  const bool ok = write_pieces(fd, pieces);
  const int saved = errno;
  ::close(fd);
  if (!ok) {
    ::unlink(temp.c_str());
    errno = saved;
    return io_error("write", path);
  }
  // Without --force, link() refuses to replace a file that appeared meanwhile.
  int placed = replace ? ::rename(temp.c_str(), path.c_str()) : ::link(temp.c_str(), path.c_str());
  int place_errno = errno;
  if (!replace && placed != 0 && (place_errno == EPERM || place_errno == ENOTSUP || place_errno == EXDEV)) {
    // A file system without hard links: claim the name first, then move the
    // complete file over the placeholder this process just created.
    const int claim = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    place_errno = errno;
    if (claim >= 0) {
      ::close(claim);
      placed = ::rename(temp.c_str(), path.c_str());
      place_errno = errno;
      if (placed != 0) ::unlink(path.c_str());
    }
  }
  if (!replace || placed != 0) ::unlink(temp.c_str());
  if (placed != 0) {
    errno = place_errno;
    if (errno == EEXIST) return already_exists(path);
    return io_error("write", path);
  }
  return {};
}

}  // namespace

// Writes `pieces` to `path` (or standard output for "-"), complete or not at
// all: a failed export never leaves a partial file or replaces a good one.
keyfolio::Result<void> write_file(const std::string& path, const std::vector<std::string_view>& pieces, bool replace) {
  if (path == "-") {
    for (auto piece : pieces) {
      if (!write_all(STDOUT_FILENO, piece)) return io_error("write to", "standard output");
    }
    return {};
  }
  std::optional<keyfolio::Result<void>> written;
  if (!write_file_seams().named_temporary_only) written = write_unnamed(path, pieces, replace);
  if (!written) written = write_named(path, pieces, replace);
  if (!*written) return *written;
  // The new name itself is durable once its directory is.
  const std::string directory = place_of(path).directory;
  if (const int dir = ::open(directory.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC); dir >= 0) {
    ::fsync(dir);
    ::close(dir);
  }
  return {};
}

keyfolio::Result<std::string> read_input(const std::string& path) {
  constexpr std::size_t limit = std::size_t{1} << 30;
  const int fd = path == "-" ? STDIN_FILENO : ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT) return keyfolio::Error(keyfolio::errc::not_found, "no file " + path);
    return io_error("open", path);
  }
  std::string text;
  char buffer[65536];
  // Both wiped on every way out, an exception included: otherwise the last
  // chunk read stays in the buffer, and what was read before an error stays
  // in the text's freed memory. A complete read has moved the text into its
  // result before this runs, and wipes only what the move left behind.
  struct WipeOnExit {
    char* buffer;
    std::size_t size;
    std::string& text;
    ~WipeOnExit() {
      sodium_memzero(buffer, size);
      sodium_memzero(text.data(), text.size());
    }
  } wipe{buffer, sizeof buffer, text};
  for (;;) {
    const ssize_t n = ::read(fd, buffer, sizeof buffer);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      if (fd != STDIN_FILENO) ::close(fd);
      return io_error("read", path);
    }
    if (n == 0) break;
    if (text.size() + static_cast<std::size_t>(n) > limit) {
      if (fd != STDIN_FILENO) ::close(fd);
      return invalid(path + " is larger than 1 GiB; split it");
    }
    // Grown by hand so that no copy of a secret is left behind in freed memory.
    if (text.capacity() < text.size() + static_cast<std::size_t>(n)) {
      std::string bigger;
      bigger.reserve(std::max(text.capacity() * 2, text.size() + static_cast<std::size_t>(n)));
      bigger = text;
      sodium_memzero(text.data(), text.size());
      text.swap(bigger);
    }
    text.append(buffer, static_cast<std::size_t>(n));
  }
  if (fd != STDIN_FILENO) ::close(fd);
  return text;
}

keyfolio::Result<void> check_private(int fd, const std::string& what) {
  struct stat st {};
  if (::fstat(fd, &st) != 0) return io_error("stat", what);
  if (st.st_uid != ::geteuid()) {
    return invalid(what + " is owned by user " + std::to_string(st.st_uid) + ", not by you (user " +
                   std::to_string(::geteuid()) + "); chown it to yourself and chmod 600 it, or use a file of your own");
  }
  if ((st.st_mode & 077) != 0) {
    char mode[8];
    std::snprintf(mode, sizeof mode, "%04o", static_cast<unsigned>(st.st_mode & 07777));
    return invalid(what + " is accessible by other users (mode " + mode + "); chmod 600 it");
  }
  return {};
}

Wiped::~Wiped() { sodium_memzero(text.data(), text.size()); }

}  // namespace keyfolio::cli
