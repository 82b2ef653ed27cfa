#include "backends/sqlite/wal_frames.hpp"

namespace keyfolio::detail::sqlite {

int WalFrames::hook(void* self, sqlite3*, const char*, int frames) {
  static_cast<WalFrames*>(self)->frames.store(frames, std::memory_order_relaxed);
  return SQLITE_OK;
}

void WalFrames::checkpoint(sqlite3* db) {
  int seen = frames.load(std::memory_order_relaxed);
  int logged = 0;
  int copied = 0;
  // Cleared only if no commit reported a newer size meanwhile (one that
  // landed during the checkpoint may not be copied yet).
  if (sqlite3_wal_checkpoint_v2(db, nullptr, SQLITE_CHECKPOINT_PASSIVE, &logged, &copied) == SQLITE_OK &&
      copied == logged) {
    frames.compare_exchange_strong(seen, 0, std::memory_order_relaxed);
  }
}

}  // namespace keyfolio::detail::sqlite
