#include "client/connection_pool.hpp"

#include <algorithm>

#include "connection/dialer.hpp"
#include "connection/connection_impl.hpp"

namespace uvwt::detail {

ConnectionPool::Entry *ConnectionPool::entry_of(const ConnectionImpl *c) {
  for (auto &e : entries_)
    if (auto live = e->conn.lock(); live && live.get() == c) return e.get();
  return nullptr;
}

void ConnectionPool::drop_gone() {
  std::erase_if(entries_, [](const std::unique_ptr<Entry> &e) {
    auto c = e->conn.lock();
    return !c || c->is_closed();
  });
}

bool ConnectionPool::has_room(const Entry &e) const {
  auto c = e.conn.lock();
  // state() says draining once the peer sent GOAWAY or CONNECTION_CLOSE.
  if (!c || e.full || c->state() != ConnectionState::connected) return false;
  const std::size_t cap = cfg_.max_sessions_per_pooled_connection;
  return cap == 0 || e.sessions < cap;
}

std::shared_ptr<ConnectionImpl> ConnectionPool::find(const std::string &authority) {
  drop_gone();
  for (auto &e : entries_) {
    if (e->authority != authority || !has_room(*e)) continue;
    e->linger.reset();  // wanted again
    return e->conn.lock();
  }
  return nullptr;
}

void ConnectionPool::session_started(const std::string &authority, const std::shared_ptr<ConnectionImpl> &c) {
  Entry *e = entry_of(c.get());
  if (e == nullptr) {
    entries_.push_back(std::make_unique<Entry>());
    e = entries_.back().get();
    e->authority = authority;
    e->conn = c;
  }
  e->linger.reset();
  ++e->sessions;
}

void ConnectionPool::mark_full(const std::shared_ptr<ConnectionImpl> &c) {
  if (Entry *e = entry_of(c.get())) e->full = true;
}

void ConnectionPool::session_ended(const std::shared_ptr<ConnectionImpl> &c) {
  Entry *e = entry_of(c.get());
  if (e == nullptr) return;
  if (e->sessions > 0) --e->sessions;
  if (e->sessions == 0) linger_then_close(*e);
}

void ConnectionPool::linger_then_close(Entry &e) {
  const auto ms = cfg_.pool_idle_linger.count();
  // Full or draining: nobody will reuse it, so it need not wait.
  if (ms <= 0 || !has_room(e)) return shut_connection(e.conn.lock(), Error(Errc::session, "last session closed"));
  e.linger = std::make_unique<Timer>(loop_);
  std::weak_ptr<ConnectionImpl> weak = e.conn;
  e.linger->start(static_cast<std::uint64_t>(ms),
                  [weak] { shut_connection(weak.lock(), Error(Errc::session, "pooled connection idle")); });
}

std::size_t ConnectionPool::sessions_on(const std::shared_ptr<ConnectionImpl> &c) const {
  for (const auto &e : entries_)
    if (auto live = e->conn.lock(); live && live == c) return e->sessions;
  return 0;
}

}  // namespace uvwt::detail
