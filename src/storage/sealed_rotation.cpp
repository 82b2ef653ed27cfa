// SealedStore::rotate(): every record of the store re-sealed under a new
// data key and store id, with a new integrity record, in one write.
#include "storage/sealed_store.hpp"

#include "detail/text.hpp"

#include <algorithm>

namespace keyfolio::detail {

Result<SealedStore::Rotated> SealedStore::rotate(const KeySource& key, const Resealer& reseal,
                                                 const RotationProgress& progress) {
  std::lock_guard lock(state_->write_mutex);
  if (retired()) return retired_error();
  const auto old = vault();

  // One consistent reading of the store, checked.
  auto keyring = backend_->get(collections::meta, keyring_key);
  if (!keyring) return keyring.error();
  if (!*keyring) return Error(errc::corrupt_data, "the store's keyring record is missing");
  auto reading = read_once();
  if (!reading) return reading.error();
  if (!*reading) {
    return Error(errc::conflict, "the store changed while it was read for the rotation; nothing was changed");
  }
  const std::uint64_t manifest_version = (*reading)->manifest ? (*reading)->manifest->version : 0;
  const CollectionRecords* records = &(*reading)->records;
  auto report = check((*reading)->manifest, *records, *old);
  if (!report) return report.error();
  if (!report->intact() && !options_.recover) return Error(errc::corrupt_data, describe_failure(*report));

  Vault fresh = Vault::generate();
  auto ring = fresh.keyring_record(key);
  if (!ring) return ring.error();

  Manifest next;
  next.generation = std::max(report->generation, generation()) + 1;
  WriteBatch batch;
  // The keyring first: a change feed reports a batch in its order, so that
  // other handles are retired by the keyring before they hear of any
  // re-sealed record, and tell their subscribers of no account.
  batch.put(collections::meta, keyring_key, std::move(*ring), (*keyring)->version);
  Rotated rotated;
  std::size_t total = 0;
  for (const auto& collection : *records) total += collection.size();
  std::size_t done = 0;
  constexpr std::size_t progress_every = 4096;
  for (std::size_t c = 0; c < covered_collections; ++c) {
    const std::string_view name = covered_name(c);
    // Records that move to another key go in after every erase of the
    // collection, so that no new key meets an old one.
    std::vector<std::pair<std::string, std::string>> moved;
    for (const Record& record : (*records)[c]) {
      ++done;
      if (progress && done % progress_every == 0) progress(done, total);
      auto plain = old->open(name, record.key, record.version, record.value);
      if (!plain) {
        if (!options_.recover) {
          return Error(errc::corrupt_data, "the stored record " + std::string(name) + " " + quote(record.key) +
                                               " does not authenticate; nothing was changed (open the store to "
                                               "recover to rotate without what does not authenticate)");
        }
        batch.erase(name, record.key, record.version);
        ++rotated.dropped;
        continue;
      }
      auto out = reseal(c, record, std::move(*plain), fresh);
      if (!out) return out.error();
      if (!*out) {
        batch.erase(name, record.key, record.version);
        ++rotated.dropped;
        continue;
      }
      Resealed& r = **out;
      ++rotated.resealed;
      if (r.key == record.key) {
        std::string sealed = fresh.seal(name, r.key, record.version + 1, r.plaintext.view(), r.header);
        const auto digest = fresh.record_digest(name, r.key, record.version + 1, sealed);
        if (name == collections::accounts) rotated.accounts.push_back(Record{r.key, record.version + 1, sealed});
        next.tallies[c].add(digest);
        if (total - done < Manifest::journal_size) {
          next.remember({static_cast<std::uint8_t>(c), false, next.generation, record.version + 1, digest, r.key});
        }
        batch.put(name, r.key, std::move(sealed), record.version);
      } else {
        batch.erase(name, record.key, record.version);
        std::string sealed = fresh.seal(name, r.key, 1, r.plaintext.view(), r.header);
        const auto digest = fresh.record_digest(name, r.key, 1, sealed);
        if (name == collections::accounts) rotated.accounts.push_back(Record{r.key, 1, sealed});
        next.tallies[c].add(digest);
        if (total - done < Manifest::journal_size) {
          next.remember({static_cast<std::uint8_t>(c), false, next.generation, 1, digest, r.key});
        }
        moved.emplace_back(std::move(r.key), std::move(sealed));
      }
    }
    for (auto& [moved_key, sealed] : moved) batch.put(name, moved_key, std::move(sealed), must_not_exist);
  }
  batch.put(collections::meta, manifest_key,
            fresh.seal(collections::meta, manifest_key, manifest_version + 1, next.encode()), manifest_version);
  if (progress) progress(total, total);

  {
    std::lock_guard rotating(state_->rotation_mutex);
    state_->rotating_to = fresh.store_id_hex();
  }
  auto written = backend_->write(batch);
  if (written) {
    std::unique_lock swap(state_->vault_mutex);
    previous_ = std::move(vault_);
    vault_ = std::make_shared<const Vault>(std::move(fresh));
  }
  {
    std::lock_guard rotating(state_->rotation_mutex);
    state_->rotating_to.clear();
  }
  if (!written) {
    state_->manifest.reset();
    if (written.error().code() == errc::conflict) {
      return Error(errc::conflict, "the store was written by another handle during the rotation; nothing was changed");
    }
    return written.error();
  }
  saw_generation(next.generation);
  {
    std::lock_guard reported(state_->report_mutex);
    state_->report = IntegrityReport{next.generation, {}};
  }
  state_->manifest = std::move(next);
  state_->manifest_version = manifest_version + 1;
  rotated.manifest_version = manifest_version + 1;
  return rotated;
}

Result<void> SealedStore::scrub(std::string_view done) {
  auto scrubbed = backend_->scrub();
  if (scrubbed) return {};
  // The change itself has landed: say so, and what is left to do.
  return Error(scrubbed.error().code(), std::string(done) + ", but the old keyring may still be readable in the store's "
                                                            "files: " + scrubbed.error().message());
}

}  // namespace keyfolio::detail
