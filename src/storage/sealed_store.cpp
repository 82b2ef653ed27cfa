#include "storage/sealed_store.hpp"

namespace keyfolio::detail {
namespace {

constexpr std::string_view keyring_key = "keyring";

// How many records the collections sealed under a keyring hold: a store
// without a keyring is new only when there are none.
Result<std::size_t> sealed_records(StorageBackend& backend) {
  std::size_t count = 0;
  for (std::string_view collection :
       {collections::accounts, collections::portfolios, collections::portfolio_index, collections::snapshots}) {
    auto records = backend.scan(collection);
    if (!records) return records.error();
    count += records->size();
  }
  return count;
}

}  // namespace

NonceTag NonceTag::of(std::string_view sealed) {
  const std::string_view nonce = Vault::nonce_of(sealed);
  return nonce.size() >= size ? NonceTag(nonce.substr(0, size)) : NonceTag();
}

Result<SealedStore> SealedStore::open(std::shared_ptr<StorageBackend> backend, const KeySource& key) {
  // Twice at most: a conflict on creating means another process created the
  // store first, and the second round opens theirs.
  for (int attempt = 0; attempt < 2; ++attempt) {
    auto stored = backend->get(collections::meta, keyring_key);
    if (!stored) return stored.error();
    if (*stored) {
      auto opened = Vault::open_keyring((*stored)->value, key);
      if (!opened) return opened.error();
      return SealedStore(std::move(backend), std::move(*opened));
    }
    // A keyring gone from a store that holds records is damage, not a new
    // store: writing a new one would take any passphrase, a mistyped one
    // included, and leave every record unreadable.
    auto present = sealed_records(*backend);
    if (!present) return present.error();
    if (*present > 0) {
      return Error(errc::corrupt_data, "the store's keyring is missing, but " + std::to_string(*present) +
                                           " sealed records are present; no new keyring was written (restore the "
                                           "store, or its keyring, from a backup)");
    }
    auto fresh = Vault::generate();
    auto record = fresh.keyring_record(key);
    if (!record) return record.error();
    WriteBatch batch;
    batch.put(collections::meta, keyring_key, std::move(*record), must_not_exist);
    SealedStore created(backend, std::move(fresh));
    auto written = created.write(batch);
    if (written) return created;
    if (written.error().code() != errc::conflict) return written.error();
  }
  return Error(errc::conflict, "the store was being created concurrently; try again");
}

SealedStore::SealedStore(std::shared_ptr<StorageBackend> backend, Vault vault)
    : backend_(std::move(backend)), vault_(std::move(vault)) {}

NonceTag SealedStore::Batch::put(std::string_view collection, std::string_view key, std::uint64_t expected_version,
                                 std::string_view plaintext, std::string_view header) {
  std::string sealed = vault_->seal(collection, key, expected_version + 1, plaintext, header);
  NonceTag tag = NonceTag::of(sealed);
  write_.put(collection, key, std::move(sealed), expected_version);
  return tag;
}

void SealedStore::Batch::erase(std::string_view collection, std::string_view key, std::uint64_t expected_version) {
  write_.erase(collection, key, expected_version);
}

void SealedStore::Batch::expect(std::string_view collection, std::string_view key, std::uint64_t expected_version) {
  write_.expect(collection, key, expected_version);
}

void SealedStore::Batch::erase_all(std::string_view collection) { write_.erase_all(collection); }

Result<void> SealedStore::commit(const Batch& batch) { return write(batch.sealed()); }

Result<void> SealedStore::write(const WriteBatch& batch) { return backend_->write(batch); }

Result<std::optional<Record>> SealedStore::get(std::string_view collection, std::string_view key) const {
  return backend_->get(collection, key);
}

Result<std::vector<Record>> SealedStore::scan(std::string_view collection, std::string_view prefix) const {
  return backend_->scan(collection, prefix);
}

std::optional<SecureBuffer> SealedStore::open(std::string_view collection, std::string_view key,
                                              std::uint64_t version, std::string_view sealed) const {
  return vault_.open(collection, key, version, sealed);
}

std::optional<std::string_view> SealedStore::header_of(std::string_view sealed) noexcept {
  return Vault::header_of(sealed);
}

Result<Subscription> SealedStore::subscribe(ChangeHandler handler) const {
  return backend_->subscribe(std::move(handler));
}

Result<void> SealedStore::change_key(const KeySource& new_key) {
  auto current = backend_->get(collections::meta, keyring_key);
  if (!current) return current.error();
  if (!*current) return Error(errc::corrupt_data, "the store's keyring record is missing");
  auto record = vault_.keyring_record(new_key);
  if (!record) return record.error();
  WriteBatch batch;
  batch.put(collections::meta, keyring_key, std::move(*record), (*current)->version);
  auto written = write(batch);
  if (!written && written.error().code() == errc::conflict) {
    return Error(errc::conflict, "the store's key was changed concurrently; nothing was changed");
  }
  return written;
}

}  // namespace keyfolio::detail
