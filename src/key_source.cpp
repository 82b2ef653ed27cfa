#include <keyfolio/key_source.hpp>

#include "crypto/encoding.hpp"
#include "crypto/kdf.hpp"
#include "memory/secure_arena.hpp"
#include "detail/text.hpp"

#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

namespace keyfolio {
namespace {

Error bad_key(std::string message) { return Error(errc::invalid_argument, std::move(message)); }

// Reads a key file into secure memory: 32 raw bytes, or 64 hex digits with
// at most one trailing newline.
Result<SecretString> read_key_file(const std::filesystem::path& path) {
  const std::string name = detail::quote(path.string(), 200);
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) return bad_key("cannot open key file " + name + ": " + std::strerror(errno));
  struct Closer {
    int fd;
    ~Closer() { ::close(fd); }
  } closer{fd};
  struct stat st {};
  if (::fstat(fd, &st) != 0) return bad_key("cannot stat key file " + name + ": " + std::strerror(errno));
  if (!S_ISREG(st.st_mode)) return bad_key("key file " + name + " is not a regular file");
  if ((st.st_mode & 077) != 0) {
    char mode[8];
    std::snprintf(mode, sizeof mode, "%04o", static_cast<unsigned>(st.st_mode & 07777));
    return bad_key("key file " + name + " is accessible by other users (mode " + mode + "); chmod 600 it");
  }
  constexpr std::size_t max_read = 2 * KeySource::key_size + 2;
  detail::SecureBuffer buffer(max_read + 1);
  std::size_t total = 0;
  while (total < buffer.size()) {
    const ssize_t n = ::read(fd, buffer.data() + total, buffer.size() - total);
    if (n < 0) {
      if (errno == EINTR) continue;
      return bad_key("cannot read key file " + name + ": " + std::strerror(errno));
    }
    if (n == 0) break;
    total += static_cast<std::size_t>(n);
  }
  if (total == KeySource::key_size) return SecretString(std::string_view(buffer.data(), total));
  std::size_t digits = total;
  if (digits > 0 && buffer.data()[digits - 1] == '\n') --digits;
  if (digits > 0 && buffer.data()[digits - 1] == '\r') --digits;
  if (auto key = detail::crypto::secret_from_hex(std::string_view(buffer.data(), digits), KeySource::key_size)) {
    return SecretString(key->view());
  }
  return bad_key("key file " + name + " must hold 32 raw bytes or 64 hex digits");
}

}  // namespace

KdfCost KdfCost::interactive() noexcept { return detail::crypto::argon2id_interactive(); }
KdfCost KdfCost::moderate() noexcept { return detail::crypto::argon2id_moderate(); }
KdfCost KdfCost::sensitive() noexcept { return detail::crypto::argon2id_sensitive(); }
KdfCost KdfCost::minimum_for_tests() noexcept { return detail::crypto::argon2id_minimum(); }

KeySource KeySource::passphrase(SecretString passphrase, KdfCost cost) {
  return KeySource(Kind::passphrase, std::move(passphrase), cost, {});
}
KeySource KeySource::raw_key(SecretString key) { return KeySource(Kind::raw_key, std::move(key), {}, {}); }
KeySource KeySource::key_file(std::filesystem::path path) {
  return KeySource(Kind::key_file, SecretString(), {}, std::move(path));
}

std::string KeySource::describe() const {
  switch (kind_) {
    case Kind::passphrase: return "passphrase";
    case Kind::raw_key: return "raw key";
    case Kind::key_file: return "key file " + detail::quote(path_.string(), 200);
  }
  return "key source";
}

Result<SecretString> KeySource::derive(std::string_view salt, const KdfCost& cost) const {
  switch (kind_) {
    case Kind::raw_key:
      if (material_.size() != key_size) {
        return bad_key("a raw key must be " + std::to_string(key_size) + " bytes, not " +
                       std::to_string(material_.size()));
      }
      return material_;
    case Kind::key_file:
      return read_key_file(path_);
    case Kind::passphrase:
      break;
  }
  if (material_.empty()) return bad_key("the passphrase is empty");
  if (salt.size() != detail::crypto::argon2id_salt_size) return bad_key("the passphrase salt has the wrong size");
  if (!detail::crypto::argon2id_accepts(cost)) {
    return bad_key("Argon2id cost out of range (ops " + std::to_string(cost.ops) + ", memory " +
                   std::to_string(cost.memory_bytes) + " bytes)");
  }
  static_assert(key_size == detail::crypto::derived_key_size);
  auto key = detail::crypto::argon2id(material_, salt, cost);
  if (!key) {
    return Error(errc::unavailable, "Argon2id could not get " + std::to_string(cost.memory_bytes) +
                                        " bytes of memory to derive the key");
  }
  return std::move(*key);
}

}  // namespace keyfolio
