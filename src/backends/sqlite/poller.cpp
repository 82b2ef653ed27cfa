#include "backends/sqlite/poller.hpp"

#include "backends/sqlite/schema.hpp"
#include "backends/sqlite/statement.hpp"

#include <utility>

namespace keyfolio::detail::sqlite {

Result<std::shared_ptr<Poller>> Poller::open(const std::filesystem::path& path, const SqliteOptions& options,
                                             std::shared_ptr<Subscribers<ChangeEvent>> subscribers,
                                             std::shared_ptr<WalFrames> wal) {
  auto watcher = connect(path, options);
  if (!watcher) return watcher.error();
  if (auto r = watcher->prepare_all(); !r) return r.error();
  std::int64_t last = 0;
  std::int64_t data_version = 0;
  {
    Use bounds(watcher->log_bounds);
    if (const int rc = bounds.step(); rc != SQLITE_ROW) return watcher->fail("reading the change log", rc);
    last = bounds.int64(1);
  }
  {
    Use version(watcher->data_version);
    if (const int rc = version.step(); rc != SQLITE_ROW) return watcher->fail("polling", rc);
    data_version = version.int64(0);
  }
  return std::make_shared<Poller>(std::move(*watcher), last, data_version, options.poll_interval,
                                  std::move(subscribers), std::move(wal));
}

Poller::Poller(Connection watcher, std::int64_t last_seq, std::int64_t data_version,
               std::chrono::milliseconds interval, std::shared_ptr<Subscribers<ChangeEvent>> subscribers,
               std::shared_ptr<WalFrames> wal)
    : watcher_(std::move(watcher)),
      last_seq_(last_seq),
      data_version_(data_version),
      interval_(interval),
      subscribers_(std::move(subscribers)),
      wal_(std::move(wal)) {}

void Poller::run(const std::shared_ptr<Poller>& self) {
  std::unique_lock lock(self->mutex_);
  while (!self->stopping_) {
    self->wake_.wait_for(lock, self->interval_, [&] { return self->stopping_; });
    if (self->stopping_) break;
    lock.unlock();
    self->subscribers_->deliver(self->poll_once());
    self->checkpoint();
    lock.lock();
  }
}

void Poller::stop() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
}

// What was committed since the last poll. data_version moves for commits
// of other connections only; the watcher never writes, so every change
// shows, this handle's own included. Reading it looks at the log's index in
// shared memory, without disk I/O, so an idle store costs a poll next to
// nothing; the log itself is read only when it moved.
std::vector<ChangeEvent> Poller::poll_once() {
  std::vector<ChangeEvent> events;
  {
    Use version(watcher_.data_version);
    if (version.step() != SQLITE_ROW) return events;
    const std::int64_t now = version.int64(0);
    if (now == data_version_) return events;
    data_version_ = now;
  }
  if (sqlite3_exec(watcher_.db.get(), "BEGIN", nullptr, nullptr, nullptr) != SQLITE_OK) {
    events.push_back({ChangeEvent::Kind::resync, {}, {}, 0});
    return events;
  }
  std::int64_t first = 0;
  {
    Use bounds(watcher_.log_bounds);
    if (bounds.step() == SQLITE_ROW) first = bounds.int64(0);
  }
  if (first > last_seq_ + 1) events.push_back({ChangeEvent::Kind::resync, {}, {}, 0});  // trimmed past us
  {
    Use rows(watcher_.changes_since);
    rows.integer(1, last_seq_);
    for (;;) {
      const int rc = rows.step();
      if (rc != SQLITE_ROW) {
        if (rc != SQLITE_DONE) events.push_back({ChangeEvent::Kind::resync, {}, {}, 0});
        break;
      }
      last_seq_ = rows.int64(0);
      ChangeEvent e;
      switch (static_cast<LoggedKind>(rows.int64(1))) {
        case LoggedKind::put: e.kind = ChangeEvent::Kind::put; break;
        case LoggedKind::erase: e.kind = ChangeEvent::Kind::erase; break;
        case LoggedKind::erase_all: e.kind = ChangeEvent::Kind::erase_all; break;
        case LoggedKind::resync: e.kind = ChangeEvent::Kind::resync; break;
      }
      e.collection = rows.text(2);
      e.key = rows.text(3);
      e.version = static_cast<std::uint64_t>(rows.int64(4));
      events.push_back(std::move(e));
    }
  }
  sqlite3_exec(watcher_.db.get(), "COMMIT", nullptr, nullptr, nullptr);
  return events;
}

// The checkpoint a commit left due, once no commit has come for a whole
// interval; while writes keep coming, each runs it first.
void Poller::checkpoint() {
  const int frames = wal_->frames.load(std::memory_order_relaxed);
  const bool idle = frames == frames_seen_;
  frames_seen_ = frames;
  if (idle && wal_->due()) wal_->checkpoint(watcher_.db.get());
}

}  // namespace keyfolio::detail::sqlite
