#include "backends/postgres/listener.hpp"

#include <cerrno>
#include <poll.h>
#include <sys/eventfd.h>
#include <unistd.h>

namespace keyfolio::detail::postgres {

Result<std::unique_ptr<Connection>> Listener::connect_and_listen(const std::shared_ptr<const Target>& target) {
  auto c = Connection::open(target);
  if (!c) return c.error();
  const std::string listen = "LISTEN \"" + target->channel + "\"";
  if (ResultPtr r = (*c)->exec(listen.c_str()); PQresultStatus(r.get()) != PGRES_COMMAND_OK) {
    return (*c)->fail(r.get(), "listening for changes");
  }
  return std::move(*c);
}

Result<std::shared_ptr<Listener>> Listener::open(std::shared_ptr<const Target> target,
                                                 std::shared_ptr<Subscribers<ChangeEvent>> subscribers) {
  auto c = connect_and_listen(target);
  if (!c) return c.error();
  // Listening before reading the log's end: a commit after this read
  // notifies, and one before it is not owed.
  ResultPtr r = (*c)->run(statement::last_seq, Params());
  if (PQresultStatus(r.get()) != PGRES_TUPLES_OK || PQntuples(r.get()) != 1) {
    return (*c)->fail(r.get(), "reading the change log");
  }
  const std::int64_t last = column_int64(r.get(), 0, 0);
  const int fd = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (fd < 0) return Error(errc::storage_error, target->label + ": cannot start the change feed (eventfd failed)");
  return std::make_shared<Listener>(std::move(target), std::move(*c), last, std::move(subscribers), fd);
}

Listener::Listener(std::shared_ptr<const Target> target, std::unique_ptr<Connection> c, std::int64_t last_seq,
                   std::shared_ptr<Subscribers<ChangeEvent>> subscribers, int wake_fd)
    : target_(std::move(target)),
      c_(std::move(c)),
      last_seq_(last_seq),
      subscribers_(std::move(subscribers)),
      wake_fd_(wake_fd) {}

Listener::~Listener() { ::close(wake_fd_); }

void Listener::stop() {
  stopping_.store(true);
  const std::uint64_t one = 1;
  [[maybe_unused]] const auto n = ::write(wake_fd_, &one, sizeof one);
}

void Listener::run(const std::shared_ptr<Listener>& self) {
  while (!self->stopping_.load()) {
    if (!self->c_) {
      // Lost: try again every poll interval, then catch up from the log.
      pollfd fd{self->wake_fd_, POLLIN, 0};
      ::poll(&fd, 1, static_cast<int>(self->target_->options.poll_interval.count()));
      if (self->stopping_.load()) break;
      auto c = connect_and_listen(self->target_);
      if (!c) continue;
      self->c_ = std::move(*c);
    } else if (!self->wait()) {
      self->c_.reset();
      continue;
    }
    if (self->stopping_.load()) break;
    self->subscribers_->deliver(self->read_log());
  }
}

bool Listener::wait() {
  PGconn* c = c_->get();
  pollfd fds[2] = {{PQsocket(c), POLLIN, 0}, {wake_fd_, POLLIN, 0}};
  const int n = ::poll(fds, 2, static_cast<int>(target_->options.poll_interval.count()));
  if (n < 0 && errno != EINTR) return false;
  if (n > 0 && fds[0].revents != 0) {
    if (PQconsumeInput(c) == 0) return false;
    while (PGnotify* note = PQnotifies(c)) PQfreemem(note);
  }
  return PQstatus(c) == CONNECTION_OK;
}

std::vector<ChangeEvent> Listener::read_log() {
  std::vector<ChangeEvent> events;
  ResultPtr r = c_->run(statement::changes_since, Params().int64(last_seq_));
  if (PQresultStatus(r.get()) != PGRES_TUPLES_OK) {
    if (c_->broken()) c_.reset();
    return events;
  }
  const int rows = PQntuples(r.get());
  if (rows > 0 && column_int64(r.get(), 0, 0) > last_seq_ + 1) {
    events.push_back({ChangeEvent::Kind::resync, {}, {}, 0});  // trimmed past what we saw
  }
  for (int i = 0; i < rows; ++i) {
    last_seq_ = column_int64(r.get(), i, 0);
    ChangeEvent e;
    switch (static_cast<LoggedKind>(column_int64(r.get(), i, 1))) {
      case LoggedKind::put: e.kind = ChangeEvent::Kind::put; break;
      case LoggedKind::erase: e.kind = ChangeEvent::Kind::erase; break;
      case LoggedKind::erase_all: e.kind = ChangeEvent::Kind::erase_all; break;
      case LoggedKind::resync: e.kind = ChangeEvent::Kind::resync; break;
    }
    e.collection = std::string(column_bytes(r.get(), i, 2));
    e.key = std::string(column_bytes(r.get(), i, 3));
    e.version = static_cast<std::uint64_t>(column_int64(r.get(), i, 4));
    events.push_back(std::move(e));
  }
  return events;
}

}  // namespace keyfolio::detail::postgres
