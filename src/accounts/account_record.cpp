#include "accounts/account_record.hpp"

#include "storage/sealed_store.hpp"

#include <algorithm>
#include <cstring>

namespace keyfolio::detail::account_record {
namespace {

constexpr unsigned char payload_format = 1;

class PayloadWriter {
 public:
  explicit PayloadWriter(std::size_t size) : buffer_(size) {}
  void u8(unsigned char v) { buffer_.data()[at_++] = static_cast<char>(v); }
  void u32(std::uint32_t v) { integer(v, 4); }
  void i64(std::int64_t v) { integer(static_cast<std::uint64_t>(v), 8); }
  void str(std::string_view s) {
    u32(static_cast<std::uint32_t>(s.size()));
    if (!s.empty()) std::memcpy(buffer_.data() + at_, s.data(), s.size());
    at_ += s.size();
  }
  SecureBuffer take() && { return std::move(buffer_); }

 private:
  void integer(std::uint64_t v, int n) {
    for (int i = 0; i < n; ++i) buffer_.data()[at_++] = static_cast<char>((v >> (8 * i)) & 0xff);
  }
  SecureBuffer buffer_;
  std::size_t at_ = 0;
};

class PayloadReader {
 public:
  explicit PayloadReader(std::string_view data) : data_(data) {}
  bool ok() const { return ok_; }
  bool done() const { return at_ == data_.size(); }
  unsigned char u8() { return static_cast<unsigned char>(take(1).empty() ? 0 : data_[at_ - 1]); }
  std::uint32_t u32() { return static_cast<std::uint32_t>(integer(4)); }
  std::int64_t i64() { return static_cast<std::int64_t>(integer(8)); }
  std::string_view str() { return take(u32()); }

 private:
  std::string_view take(std::size_t n) {
    if (!ok_ || data_.size() - at_ < n) {
      ok_ = false;
      return {};
    }
    at_ += n;
    return data_.substr(at_ - n, n);
  }
  std::uint64_t integer(int n) {
    const auto bytes = take(static_cast<std::size_t>(n));
    std::uint64_t v = 0;
    for (std::size_t i = 0; i < bytes.size(); ++i) v |= std::uint64_t{static_cast<unsigned char>(bytes[i])} << (8 * i);
    return v;
  }
  std::string_view data_;
  std::size_t at_ = 0;
  bool ok_ = true;
};

}  // namespace

std::string header(const Fingerprint& f, std::string_view spelling) {
  const std::string_view fingerprint = f.view();
  std::string out;
  if (1 + fingerprint.size() + spelling.size() > 255) return out;
  out.push_back(static_cast<char>(fingerprint.size()));
  out += fingerprint;
  out += spelling;
  return out;
}

std::optional<Header> header_of(std::string_view sealed) {
  auto header = SealedStore::header_of(sealed);
  if (!header || header->empty()) return std::nullopt;
  const std::size_t length = static_cast<unsigned char>((*header)[0]);
  if (header->size() < 1 + length) return std::nullopt;
  return Header{header->substr(1, length), header->substr(1 + length)};
}

SecureBuffer encode(const Account& account) {
  const std::string& spelling = account.id.spelling();
  std::size_t size = 1 + 8 + 8 + 4 + spelling.size() + 4;
  for (const auto& [field, value] : account.credentials) size += 8 + field.size() + value.size();
  PayloadWriter w(size);
  w.u8(payload_format);
  w.i64(account.created.time_since_epoch().count());
  w.i64(account.updated.time_since_epoch().count());
  w.str(spelling);
  w.u32(static_cast<std::uint32_t>(account.credentials.size()));
  for (const auto& [field, value] : account.credentials) {
    w.str(field);
    w.str(value.reveal());
  }
  return std::move(w).take();
}

std::optional<Account> decode(std::string_view key, std::uint64_t version, std::string_view plaintext,
                              const ExchangeCatalog& catalog) {
  PayloadReader r(plaintext);
  if (r.u8() != payload_format) return std::nullopt;
  const Timestamp created{std::chrono::milliseconds(r.i64())};
  const Timestamp updated{std::chrono::milliseconds(r.i64())};
  const auto spelling = r.str();
  const auto count = r.u32();
  if (!r.ok()) return std::nullopt;
  auto id = AccountId::parse(spelling, catalog);
  if (!id || id->canonical() != key) return std::nullopt;
  Credentials credentials;
  // A count no record of this size could hold is caught by the reads below.
  credentials.reserve(std::min<std::size_t>(count, plaintext.size() / 8));
  for (std::uint32_t i = 0; i < count; ++i) {
    const auto field = r.str();
    const auto value = r.str();
    if (!r.ok() || !credentials.add(field, SecretString(value), catalog)) return std::nullopt;
  }
  if (!r.done()) return std::nullopt;
  return Account{std::move(*id), std::move(credentials), version, created, updated};
}

}  // namespace keyfolio::detail::account_record
