// Data-key rotation: what each collection's records become under the new key.
//
// Most records are re-sealed as they are. What is keyed by the data key
// itself changes with it: an account's fingerprint (in its record's clear
// header), the fingerprint a portfolio keeps of its account, and the
// portfolio index, whose keys are fingerprints. Accounts come first, so that
// the old fingerprints are known by the time portfolios are reached.
#include <keyfolio/account_manager.hpp>

#include "accounts/account_record.hpp"
#include "accounts/account_store.hpp"
#include "detail/text.hpp"
#include "storage/retry.hpp"

#include <boost/json.hpp>

#include <cstring>
#include <unordered_map>

namespace keyfolio {
namespace {

using detail::SealedStore;
using detail::SecureBuffer;
using detail::Vault;

SecureBuffer buffer_of(std::string_view text) {
  SecureBuffer out(text.size());
  if (!text.empty()) std::memcpy(out.data(), text.data(), text.size());
  return out;
}

class Rekeying {
 public:
  Rekeying(const Vault& old, const ExchangeCatalog& catalog) : old_(old), catalog_(catalog) {}

  Result<std::optional<SealedStore::Resealed>> operator()(std::size_t collection, const Record& record,
                                                          SecureBuffer plaintext, const Vault& fresh) {
    const std::string_view name = detail::covered_name(collection);
    if (name == detail::collections::accounts) return account(record, std::move(plaintext), fresh);
    if (name == detail::collections::portfolios) return portfolio(record, std::move(plaintext));
    if (name == detail::collections::portfolio_index) {
      // Keyed by the fingerprint of an account: under its new fingerprint,
      // or gone with the account it pointed to.
      auto it = fingerprints_.find(record.key);
      if (it == fingerprints_.end()) return std::nullopt;
      return SealedStore::Resealed{it->second, std::move(plaintext), {}};
    }
    return SealedStore::Resealed{record.key, std::move(plaintext), std::string(SealedStore::header_of(record.value).value_or(""))};
  }

 private:
  Result<std::optional<SealedStore::Resealed>> account(const Record& record, SecureBuffer plaintext,
                                                       const Vault& fresh) {
    const auto header = detail::account_record::header_of(record.value);
    auto decoded = detail::account_record::decode(record.key, record.version, plaintext.view(), catalog_);
    if (!decoded) {
      // It authenticates but does not decode here (another catalog): kept
      // as it is, its fingerprint learned again when it is read.
      std::string spelling = header ? std::string(header->spelling) : std::string();
      return SealedStore::Resealed{record.key, std::move(plaintext),
                                   spelling.empty() ? std::string() : detail::account_record::header({}, spelling)};
    }
    // The old fingerprint is in the header, authenticated now that the
    // record has opened; computed for a record without one.
    const auto before = header && header->fingerprint.size() == Vault::fingerprint_size
                            ? detail::Fingerprint::from_bytes(header->fingerprint)
                            : detail::fingerprint_under(old_, catalog_, decoded->id, decoded->credentials);
    const auto after = detail::fingerprint_under(fresh, catalog_, decoded->id, decoded->credentials);
    if (!before.empty()) fingerprints_.emplace(before.hex(), after.hex());
    return SealedStore::Resealed{record.key, std::move(plaintext),
                                 detail::account_record::header(after, decoded->id.spelling())};
  }

  Result<std::optional<SealedStore::Resealed>> portfolio(const Record& record, SecureBuffer plaintext) {
    boost::system::error_code ec;
    auto value = boost::json::parse(plaintext.view(), ec);
    auto* object = ec ? nullptr : value.if_object();
    auto* fingerprint = object != nullptr ? object->if_contains("fingerprint") : nullptr;
    if (fingerprint == nullptr || !fingerprint->is_string()) {
      return Error(errc::corrupt_data, "the stored portfolio " + detail::quote(record.key) +
                                           " does not parse; nothing was changed");
    }
    // A portfolio whose account is gone keeps no fingerprint: nothing can
    // be found by it any more.
    auto it = fingerprints_.find(std::string(fingerprint->get_string()));
    *fingerprint = it != fingerprints_.end() ? it->second : std::string();
    return SealedStore::Resealed{record.key, buffer_of(boost::json::serialize(value)), {}};
  }

  const Vault& old_;
  const ExchangeCatalog& catalog_;
  std::unordered_map<std::string, std::string> fingerprints_;  // old hex -> new hex
};

}  // namespace

Result<RotationResult> AccountManager::rotate_data_key(const KeySource& key, const Progress& progress) {
  constexpr int attempts = 3;  // a rotation reads the whole store: retried a few times only
  auto& sealed = store_->sealed();
  for (int attempt = 0; attempt < attempts; ++attempt) {
    const auto old = sealed.vault_now();
    Rekeying rekeying(*old, store_->catalog());
    store_->defer_account_events(true);
    auto rotated = sealed.rotate(
        key,
        [&](std::size_t c, const Record& r, SecureBuffer p, const Vault& fresh) {
          return rekeying(c, r, std::move(p), fresh);
        },
        progress);
    store_->defer_account_events(false);
    if (!rotated) {
      // Another writer's change may have been deferred meanwhile.
      (void)store_->refresh();
      if (rotated.error().code() == errc::conflict) continue;
      return rotated.error();
    }
    // Every account is at a new version now: the cache takes them in (a
    // failure here is mended by the next refresh()).
    if (!store_->reload_rotated(std::move(rotated->accounts), rotated->manifest_version)) {
      (void)store_->refresh();
      store_->sealed().forget_previous_key();
    }
    // No copy of the old keyring left in the backend's files.
    if (auto scrubbed = sealed.scrub("the data key was rotated"); !scrubbed) return scrubbed.error();
    return RotationResult{rotated->resealed, rotated->dropped};
  }
  return detail::lost_to_concurrent_writers("the data-key rotation", attempts);
}

}  // namespace keyfolio
