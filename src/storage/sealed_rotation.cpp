// SealedStore::rotate(): every record of the store re-sealed under a new
// data key and store id, with a new integrity record, in one write.
#include "storage/sealed_store.hpp"

#include "detail/text.hpp"

#include <algorithm>
#include <atomic>
#include <exception>
#include <optional>
#include <thread>
#include <vector>

namespace keyfolio::detail {
namespace {

// What became of one record: sealed anew (at `key`, which may be another),
// dropped by the resealer, refused by it (`error`), or not authenticating
// under the old key.
struct Outcome {
  enum class Kind { resealed, dropped, failed, undecryptable };
  Kind kind = Kind::dropped;
  std::string key;
  std::string sealed;
  Vault::Digest digest{};
  std::optional<Error> error;
};

// Calls `progress` every few thousand records, on the calling thread only,
// with the count of all threads.
class Progress {
 public:
  Progress(const SealedStore::RotationProgress& progress, std::size_t total) : progress_(progress), total_(total) {}

  void step(bool calling_thread) {
    const std::size_t done = done_.fetch_add(1, std::memory_order_relaxed) + 1;
    if (!calling_thread || !progress_ || done / every == reported_ / every) return;
    reported_ = done;
    progress_(done, total_);
  }

 private:
  static constexpr std::size_t every = 4096;
  const SealedStore::RotationProgress& progress_;
  const std::size_t total_;
  std::atomic<std::size_t> done_{0};
  std::size_t reported_ = 0;  // by the calling thread
};

// Opens each record of `in` (collection `c`) under `old` and seals what
// `reseal` makes of it under `fresh`, into `out` at the same index: on up
// to four threads for a large collection (the calling thread one of them),
// each a contiguous part. Every record is done, failures included, so that
// the caller finds the first failure in record order.
void reseal_all(std::size_t c, const std::vector<Record>& in, std::vector<Outcome>& out, const Vault& old,
                        const Vault& fresh, const SealedStore::Resealer& reseal, Progress& progress) {
  const std::string_view name = covered_name(c);
  constexpr std::size_t per_thread = 4096;  // fewer records are not worth a thread
  const std::size_t threads =
      std::clamp<std::size_t>(std::min<std::size_t>(std::thread::hardware_concurrency(), in.size() / per_thread), 1, 4);
  std::vector<std::exception_ptr> thrown(threads);
  const auto part = [&](std::size_t t) {
    const std::size_t from = in.size() * t / threads;
    const std::size_t to = in.size() * (t + 1) / threads;
    try {
      for (std::size_t i = from; i < to; ++i) {
        const Record& record = in[i];
        Outcome& o = out[i];
        progress.step(t == 0);
        auto plain = old.open(name, record.key, record.version, record.value);
        if (!plain) {
          o.kind = Outcome::Kind::undecryptable;
          continue;
        }
        auto made = reseal(c, record, std::move(*plain), fresh);
        if (!made) {
          o.kind = Outcome::Kind::failed;
          o.error = made.error();
          continue;
        }
        if (!*made) continue;  // dropped
        SealedStore::Resealed& r = **made;
        const std::uint64_t version = r.key == record.key ? record.version + 1 : 1;
        o.sealed = fresh.seal(name, r.key, version, r.plaintext.view(), r.header);
        o.digest = fresh.record_digest(name, r.key, version, o.sealed);
        o.key = std::move(r.key);
        o.kind = Outcome::Kind::resealed;
      }
    } catch (...) {
      thrown[t] = std::current_exception();
    }
  };
  std::vector<std::thread> helpers;
  helpers.reserve(threads - 1);
  for (std::size_t t = 1; t < threads; ++t) helpers.emplace_back(part, t);
  part(0);
  for (auto& h : helpers) h.join();
  for (const auto& e : thrown) {
    if (e) std::rethrow_exception(e);
  }
}

}  // namespace

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
  Progress reporting(progress, total);
  std::size_t seen = 0;  // records put into the batch so far
  for (std::size_t c = 0; c < covered_collections; ++c) {
    const std::string_view name = covered_name(c);
    const std::vector<Record>& in = (*records)[c];
    // Opened and sealed anew on several threads; put into the batch in
    // order.
    std::vector<Outcome> out(in.size());
    reseal_all(c, in, out, *old, fresh, reseal, reporting);
    // Records that move to another key go in after every erase of the
    // collection, so that no new key meets an old one.
    std::vector<std::pair<std::string, std::string>> moved;
    for (std::size_t i = 0; i < in.size(); ++i) {
      const Record& record = in[i];
      Outcome& o = out[i];
      if (o.kind == Outcome::Kind::failed) return std::move(*o.error);
      if (o.kind == Outcome::Kind::undecryptable && !options_.recover) {
        return Error(errc::corrupt_data, "the stored record " + std::string(name) + " " + quote(record.key) +
                                             " does not authenticate; nothing was changed (open the store to "
                                             "recover to rotate without what does not authenticate)");
      }
      if (o.kind != Outcome::Kind::resealed) {
        ++seen;
        batch.erase(name, record.key, record.version);
        ++rotated.dropped;
        continue;
      }
      ++rotated.resealed;
      const bool same_key = o.key == record.key;
      const std::uint64_t version = same_key ? record.version + 1 : 1;
      next.tallies[c].add(o.digest);
      if (total - ++seen < Manifest::journal_size) {
        next.remember({static_cast<std::uint8_t>(c), false, next.generation, version, o.digest, o.key});
      }
      if (same_key) {
        batch.put(name, o.key, std::move(o.sealed), record.version);
      } else {
        batch.erase(name, record.key, record.version);
        moved.emplace_back(std::move(o.key), std::move(o.sealed));
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
