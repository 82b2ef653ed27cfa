#include "storage/sealed_store.hpp"

#include "detail/text.hpp"

#include <algorithm>
#include <unordered_map>
#include <utility>

namespace keyfolio::detail {
namespace {

// How many times a write goes again on top of another handle's write before
// it gives up with `conflict`.
constexpr int write_attempts = 16;
// How many times read_checked() reads the store again because a writer
// changed it while it was being read.
constexpr int read_attempts = 8;

Error conflict_at(std::string_view collection, std::string_view key) {
  return Error(errc::conflict, "write conflict on " + std::string(collection) + " " + quote(key));
}

}  // namespace

NonceTag NonceTag::of(std::string_view sealed) {
  const std::string_view nonce = Vault::nonce_of(sealed);
  return nonce.size() >= size ? NonceTag(nonce.substr(0, size)) : NonceTag();
}

// --- Opening and creating -----------------------------------------------

Result<SealedStore> SealedStore::open(std::shared_ptr<StorageBackend> backend, const KeySource& key,
                                      Options options) {
  // A few rounds at most: a conflict on creating or upgrading means another
  // process did it first, and the next round opens theirs.
  for (int attempt = 0; attempt < 3; ++attempt) {
    auto stored = backend->get(collections::meta, keyring_key);
    if (!stored) return stored.error();
    if (*stored) {
      auto opened = Vault::open_keyring((*stored)->value, key);
      if (!opened) return opened.error();
      SealedStore store(backend, std::move(opened->vault), options);
      if (!opened->legacy) return store;
      auto upgraded = store.upgrade((*stored)->version, std::move(opened->upgraded));
      if (upgraded) return store;
      if (upgraded.error().code() != errc::conflict) return upgraded.error();
      continue;
    }
    // A keyring gone from a store that holds records is damage, not a new
    // store: writing a new one would take any passphrase, a mistyped one
    // included, and leave every record unreadable.
    SealedStore fresh(backend, Vault::generate(), options);
    auto present = fresh.read_all();
    if (!present) return present.error();
    std::size_t count = 0;
    for (const auto& records : *present) count += records.size();
    if (count > 0) {
      return Error(errc::corrupt_data, "the store's keyring is missing, but " + std::to_string(count) +
                                           " sealed records are present; no new keyring was written (restore the "
                                           "store, or its keyring, from a backup)");
    }
    if (!options.create) return Error(errc::not_found, "no keyfolio store in " + backend->describe());
    auto record = fresh.vault()->keyring_record(key);
    if (!record) return record.error();
    auto created = fresh.create(std::move(*record));
    if (created) return fresh;
    if (created.error().code() != errc::conflict) return created.error();
  }
  return Error(errc::conflict, "the store was being created or upgraded concurrently; try again");
}

Result<bool> SealedStore::exists(StorageBackend& backend) {
  auto stored = backend.get(collections::meta, keyring_key);
  if (!stored) return stored.error();
  return stored->has_value();
}

SealedStore::SealedStore(std::shared_ptr<StorageBackend> backend, Vault vault, Options options)
    : backend_(std::move(backend)), vault_(std::make_shared<const Vault>(std::move(vault))), options_(options) {}

// A new store: its keyring and an empty integrity record, together.
Result<void> SealedStore::create(std::string keyring) {
  Manifest manifest;
  manifest.generation = 1;
  return write_first(std::move(keyring), must_not_exist, std::move(manifest));
}

Result<void> SealedStore::write_first(std::string keyring, std::uint64_t keyring_version, Manifest manifest) {
  WriteBatch batch;
  batch.put(collections::meta, keyring_key, std::move(keyring), keyring_version);
  batch.put(collections::meta, manifest_key, vault()->seal(collections::meta, manifest_key, 1, manifest.encode()),
            must_not_exist);
  std::lock_guard lock(state_->write_mutex);
  if (auto written = backend_->write(batch); !written) return written;
  saw_generation(manifest.generation);
  state_->manifest = std::move(manifest);
  state_->manifest_version = 1;
  return {};
}

// A store from before integrity records: its first one, made from the
// records as they are, written with the keyring that says it keeps one.
Result<void> SealedStore::upgrade(std::uint64_t keyring_version, std::string keyring) {
  auto existing = backend_->get(collections::meta, manifest_key);
  if (!existing) return existing.error();
  if (*existing) {
    // Only an older keyring put back over a store that already keeps an
    // integrity record gets here.
    return Error(errc::corrupt_data,
                 "the store's keyring predates the integrity record the store holds (an older keyring was put back); "
                 "restore the store from a backup");
  }
  auto records = read_all();
  if (!records) return records.error();
  return write_first(std::move(keyring), keyring_version, tally(*records, *vault(), 1));
}

Manifest SealedStore::tally(const CollectionRecords& records, const Vault& vault, std::uint64_t generation) {
  Manifest manifest;
  manifest.generation = generation;
  for (std::size_t c = 0; c < covered_collections; ++c) {
    for (const Record& r : records[c]) {
      manifest.tallies[c].add(vault.record_digest(covered_name(c), r.key, r.version, r.value));
    }
  }
  return manifest;
}

// --- Writing ------------------------------------------------------------

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

void SealedStore::Batch::replaces(std::string_view collection, const Record& current) {
  const auto c = covered_index(collection);
  if (!c) return;
  replaced_.push_back(Replaced{*c, current.key, current.version,
                               vault_->record_digest(collection, current.key, current.version, current.value)});
}

Result<void> SealedStore::commit(Batch& batch) {
  if (batch.write_.empty()) return {};
  return write(batch.write_, *batch.vault_, nullptr, batch.replaced_);
}

Result<void> SealedStore::write(WriteBatch& batch, const Vault& vault, const Manifest* replacement,
                               std::span<const Batch::Replaced> replaced) {
  std::lock_guard lock(state_->write_mutex);
  if (retired()) return retired_error();
  if (&vault != vault_.get()) {
    return Error(errc::conflict, "the write was sealed under a data key that has since been rotated");
  }
  for (int attempt = 0; attempt < write_attempts; ++attempt) {
    if (!state_->manifest) {
      if (auto loaded = load_manifest(vault); !loaded) return loaded;
    }
    Result<Manifest> next = replacement != nullptr ? Result<Manifest>(*replacement)
                                                   : apply(*state_->manifest, batch, vault, replaced);
    if (!next) {
      state_->manifest.reset();
      return next.error();
    }
    next->generation = state_->manifest->generation + 1;
    const std::uint64_t version = state_->manifest_version;
    batch.put(collections::meta, manifest_key, vault.seal(collections::meta, manifest_key, version + 1, next->encode()),
              version);
    auto written = backend_->write(batch);
    batch.pop_back();
    if (written) {
      saw_generation(next->generation);
      state_->manifest = std::move(*next);
      state_->manifest_version = version + 1;
      return {};
    }
    if (written.error().code() != errc::conflict) {
      state_->manifest.reset();
      return written;
    }
    if (replacement != nullptr) return written;
    // Another handle's write came first when the integrity record moved:
    // this one goes again on top of it. Otherwise the batch's own
    // expectation failed.
    auto stored = backend_->get(collections::meta, manifest_key);
    if (!stored) return stored.error();
    const std::uint64_t now = *stored ? (*stored)->version : 0;
    if (now == version) return written;
    state_->manifest.reset();
  }
  return Error(errc::conflict, "the write lost to concurrent writers " + std::to_string(write_attempts) + " times");
}

Result<void> SealedStore::load_manifest(const Vault& vault) {
  auto stored = backend_->get(collections::meta, manifest_key);
  if (!stored) return stored.error();
  if (!*stored) return Error(errc::corrupt_data, "the store's integrity record is missing");
  auto manifest = open_manifest(**stored, vault);
  if (!manifest) return manifest.error();
  saw_generation(manifest->generation);
  state_->manifest = std::move(*manifest);
  state_->manifest_version = (*stored)->version;
  return {};
}

Result<Manifest> SealedStore::open_manifest(const Record& record, const Vault& vault) const {
  auto plain = vault.open(collections::meta, manifest_key, record.version, record.value);
  if (!plain) {
    // Under a data key rotated by another handle, nothing opens any more.
    if (auto keyring = backend_->get(collections::meta, keyring_key); keyring && *keyring) {
      const auto id = Vault::keyring_store_id((**keyring).value);
      if (id && *id != vault.store_id_hex()) {
        state_->retired.store(true, std::memory_order_release);
        return retired_error();
      }
    }
    return Error(errc::corrupt_data, "the store's integrity record does not authenticate");
  }
  auto manifest = Manifest::decode(plain->view());
  if (!manifest) return Error(errc::corrupt_data, "the store's integrity record is malformed");
  return std::move(*manifest);
}

// The integrity record after `batch`: each put adds its record's digest,
// each erase or overwrite takes the old one away (read from the backend at
// the version the batch expects: one read per changed record, whatever the
// store's size). Inserts need no read.
Result<Manifest> SealedStore::apply(const Manifest& base, const WriteBatch& batch, const Vault& vault,
                                   std::span<const Batch::Replaced> replaced) {
  struct Live {
    bool present = false;
    std::uint64_t version = 0;
    Vault::Digest digest{};
  };
  Manifest next = base;
  const std::uint64_t generation = base.generation + 1;
  // Keys this batch has changed so far, by collection. A batch staged in key
  // order (an import) meets each key once: its keys are kept in a list, and
  // indexed only when a key comes out of order.
  struct Touched {
    bool ordered = true;
    std::vector<std::pair<std::string_view, Live>> in_order;
    std::unordered_map<std::string_view, Live> by_key;
  };
  std::array<Touched, covered_collections> touched;
  std::array<bool, covered_collections> cleared{};
  // The records the caller read for this batch, which need no reading.
  std::array<std::unordered_map<std::string_view, const Batch::Replaced*>, covered_collections> known;
  for (const auto& r : replaced) known[r.collection].emplace(r.key, &r);
  const auto operations = batch.operations();
  // Only the last changes can stay in the journal.
  const std::size_t journal_from =
      operations.size() > Manifest::journal_size ? operations.size() - Manifest::journal_size : 0;

  for (std::size_t i = 0; i < operations.size(); ++i) {
    const auto& op = operations[i];
    const auto c = covered_index(op.collection);
    if (!c || op.kind == WriteBatch::Kind::expect) continue;
    if (op.kind == WriteBatch::Kind::erase_all) {
      next.tallies[*c] = {};
      cleared[*c] = true;
      touched[*c] = {};
      std::erase_if(next.journal, [&](const Manifest::Change& change) { return change.collection == *c; });
      continue;
    }
    // The record as it stands before this operation.
    Touched& seen = touched[*c];
    if (seen.ordered && !seen.in_order.empty() && !(seen.in_order.back().first < op.key)) {
      seen.ordered = false;
      for (const auto& [key, live] : seen.in_order) seen.by_key[key] = live;
      seen.in_order = {};
    }
    const Live* changed = nullptr;
    if (!seen.ordered) {
      if (auto it = seen.by_key.find(op.key); it != seen.by_key.end()) changed = &it->second;
    }
    Live before;
    if (changed != nullptr) {
      before = *changed;
    } else if (auto it = known[*c].find(op.key); !cleared[*c] && it != known[*c].end()) {
      before = {true, it->second->version, it->second->digest};
    } else if (!cleared[*c] && op.expected_version != must_not_exist) {
      auto stored = backend_->get(op.collection, op.key);
      if (!stored) return stored.error();
      if (*stored) {
        before = {true, (*stored)->version,
                  vault.record_digest(op.collection, op.key, (*stored)->version, (*stored)->value)};
      }
    }
    // A put expecting absence is checked by the backend itself.
    if (op.expected_version != must_not_exist && (!before.present || before.version != op.expected_version)) {
      return conflict_at(op.collection, op.key);
    }
    if (before.present) next.tallies[*c].subtract(before.digest);

    Live after;
    if (op.kind == WriteBatch::Kind::put) {
      after = {true, op.expected_version + 1,
               vault.record_digest(op.collection, op.key, op.expected_version + 1, op.value)};
      next.tallies[*c].add(after.digest);
    }
    if (seen.ordered) {
      seen.in_order.emplace_back(op.key, after);
    } else {
      seen.by_key[op.key] = after;
    }
    if (i < journal_from) continue;
    Manifest::Change change;
    change.collection = static_cast<std::uint8_t>(*c);
    change.generation = generation;
    change.key = op.key;
    change.erased = !after.present;
    change.version = after.version;
    change.digest = after.digest;
    next.remember(std::move(change));
  }
  return next;
}

// --- Reading ------------------------------------------------------------

Result<std::optional<Record>> SealedStore::get(std::string_view collection, std::string_view key) const {
  if (retired()) return retired_error();
  return backend_->get(collection, key);
}

Result<std::vector<Record>> SealedStore::scan(std::string_view collection, std::string_view prefix) const {
  if (retired()) return retired_error();
  return backend_->scan(collection, prefix);
}

Result<CollectionRecords> SealedStore::read_all() const {
  CollectionRecords records;
  for (std::size_t c = 0; c < covered_collections; ++c) {
    auto scanned = backend_->scan(covered_name(c));
    if (!scanned) return scanned.error();
    records[c] = std::move(*scanned);
  }
  return records;
}

Result<std::optional<SealedStore::Reading>> SealedStore::read_once() const {
  auto before = backend_->get(collections::meta, manifest_key);
  if (!before) return before.error();
  auto records = read_all();
  if (!records) return records.error();
  auto after = backend_->get(collections::meta, manifest_key);
  if (!after) return after.error();
  // Every write rewrites the integrity record: the same version before and
  // after means one consistent reading.
  const auto version_of = [](const std::optional<Record>& r) { return r ? r->version : 0; };
  if (version_of(*before) != version_of(*after)) return std::nullopt;
  return Reading{std::move(*before), std::move(*records)};
}

Result<CollectionRecords> SealedStore::read_checked() const {
  for (int attempt = 0; attempt < read_attempts; ++attempt) {
    if (retired()) return retired_error();
    const auto v = vault();
    auto reading = read_once();
    if (!reading) return reading.error();
    if (!*reading) continue;
    auto& records = (*reading)->records;
    auto report = check((*reading)->manifest, records, *v);
    if (!report) return report.error();
    {
      std::lock_guard lock(state_->report_mutex);
      state_->report = *report;
    }
    if (!report->intact() && !options_.recover) return Error(errc::corrupt_data, describe_failure(*report));
    return std::move(records);
  }
  return Error(errc::unavailable, "the store kept changing while it was read (" + std::to_string(read_attempts) +
                                      " attempts); try again");
}

Result<IntegrityReport> SealedStore::check(const std::optional<Record>& stored, const CollectionRecords& records,
                                           const Vault& vault) const {
  IntegrityReport report;
  using Kind = IntegrityFinding::Kind;
  if (!stored) {
    report.findings.push_back({Kind::manifest_damaged, {}, {}, "the store's integrity record is missing"});
  } else {
    auto manifest = open_manifest(*stored, vault);
    if (!manifest) {
      if (manifest.error().code() != errc::corrupt_data) return manifest.error();
      report.findings.push_back({Kind::manifest_damaged, {}, {}, manifest.error().message()});
    } else {
      report.generation = manifest->generation;
      saw_generation(manifest->generation);
      report.findings = compare(*manifest, records, vault);
    }
  }
  if (options_.minimum_generation > report.generation) {
    report.findings.push_back(
        {Kind::rolled_back, {}, {},
         "the store is at generation " + std::to_string(report.generation) + ", older than the generation " +
             std::to_string(options_.minimum_generation) + " required (an older copy of the whole store?)"});
  }
  return report;
}

IntegrityReport SealedStore::integrity() const {
  std::lock_guard lock(state_->report_mutex);
  return state_->report;
}

void SealedStore::saw_generation(std::uint64_t generation) const noexcept {
  auto& seen = state_->generation;
  std::uint64_t current = seen.load(std::memory_order_relaxed);
  while (current < generation && !seen.compare_exchange_weak(current, generation, std::memory_order_acq_rel)) {
  }
}

std::optional<SecureBuffer> SealedStore::open(std::string_view collection, std::string_view key,
                                              std::uint64_t version, std::string_view sealed) const {
  if (retired()) return std::nullopt;
  std::shared_ptr<const Vault> current, previous;
  {
    std::shared_lock lock(state_->vault_mutex);
    current = vault_;
    previous = previous_;
  }
  auto plain = current->open(collection, key, version, sealed);
  if (!plain && previous) plain = previous->open(collection, key, version, sealed);
  return plain;
}

void SealedStore::forget_previous_key() {
  std::unique_lock lock(state_->vault_mutex);
  previous_.reset();
}

std::optional<std::string_view> SealedStore::header_of(std::string_view sealed) noexcept {
  return Vault::header_of(sealed);
}

Result<Subscription> SealedStore::subscribe(ChangeHandler handler) const {
  return backend_->subscribe(std::move(handler));
}

// --- The keyring --------------------------------------------------------

Result<void> SealedStore::change_key(const KeySource& new_key) {
  auto current = backend_->get(collections::meta, keyring_key);
  if (!current) return current.error();
  if (!*current) return Error(errc::corrupt_data, "the store's keyring record is missing");
  const auto v = vault();
  auto record = v->keyring_record(new_key);
  if (!record) return record.error();
  WriteBatch batch;
  batch.put(collections::meta, keyring_key, std::move(*record), (*current)->version);
  auto written = write(batch, *v);
  if (!written && written.error().code() == errc::conflict) {
    return Error(errc::conflict, "the store's key was changed concurrently; nothing was changed");
  }
  if (!written) return written;
  return scrub("the key was changed");
}

void SealedStore::keyring_changed() const {
  auto keyring = backend_->get(collections::meta, keyring_key);
  if (!keyring || !*keyring) return;  // read again at the next reload
  const auto id = Vault::keyring_store_id((**keyring).value);
  if (!id || *id == vault()->store_id_hex()) return;
  {
    std::lock_guard lock(state_->rotation_mutex);
    if (*id == state_->rotating_to) return;  // this handle's own rotation
  }
  state_->retired.store(true, std::memory_order_release);
}

Error SealedStore::retired_error() {
  return Error(errc::wrong_key, "the store's data key was rotated by another handle; open the store again");
}

}  // namespace keyfolio::detail
