// wait_ready, wait_for_ready_session, wait_closed: one answer each, on a
// later turn, bounded by an optional timeout.

#include "connection/connection_impl.hpp"

#include <utility>

namespace uvwt::detail {

void ConnectionImpl::add_waiter(LazyDeque<std::shared_ptr<Waiter>> &list, Duration timeout,
                                std::function<void(const Error &)> cb, const char *what) {
  if (timeout.count() <= 0) {
    // No wait, as asyncio's timeout 0: what did not hold already is a timeout.
    deferred_->post([cb = std::move(cb), msg = std::string(what) + " timed out (timeout 0: no wait)"] {
      cb(Error(Errc::timeout, msg));
    });
    return;
  }
  auto w = std::make_shared<Waiter>();
  w->cb = std::move(cb);
  if (timeout != Duration::max()) {
    w->timer = std::make_unique<Timer>(loop_);
    std::weak_ptr<Waiter> weak = w;
    std::string msg = std::string(what) + " timed out";
    w->timer->start(static_cast<std::uint64_t>(timeout.count()), [weak, msg, &list, this] {
      auto sp = weak.lock();
      if (!sp || !sp->cb) return;
      auto cb = std::move(sp->cb);
      sp->cb = nullptr;
      erase(list, sp);
      cb(Error(Errc::timeout, msg));
    });
  }
  list.push_back(std::move(w));
}

void ConnectionImpl::resolve_waiters(LazyDeque<std::shared_ptr<Waiter>> &list, const Error &err) {
  auto all = std::exchange(list, {});
  for (auto &w : all) {
    if (!w->cb) continue;
    auto cb = std::move(w->cb);
    w->cb = nullptr;
    w->timer.reset();
    cb(err);
  }
}

void ConnectionImpl::wait_ready(Duration timeout, DoneCallback cb) {
  if (state_ == ConnectionState::connected || is_closed()) {
    const Error err = state_ == ConnectionState::connected ? Error() : Error(Errc::connection, "connection is closed");
    deferred_->post([cb = std::move(cb), err] { cb(err); });
    return;
  }
  add_waiter(ready_waiters_, timeout, std::move(cb), "wait_ready");
}

void ConnectionImpl::wait_for_ready_session(Duration timeout, SessionIdCallback cb) {
  auto self = shared_from_this();
  auto deliver = [self, cb = std::move(cb)](const Error &err) {
    if (err) return cb(err, 0);
    auto id = self->get_ready_session_id();
    if (!id) return cb(Error(Errc::session, "no ready session"), 0);
    cb(Error(), *id);
  };
  if (get_ready_session_id() || is_closed()) {
    const Error err =
        is_closed() && !get_ready_session_id() ? Error(Errc::connection, "connection is closed") : Error();
    deferred_->post([deliver, err] { deliver(err); });
    return;
  }
  add_waiter(session_waiters_, timeout, deliver, "wait_for_ready_session");
}

void ConnectionImpl::wait_closed(CloseCallback cb) {
  if (finished_) {
    deferred_->post(std::move(cb));
    return;
  }
  add_waiter(
      closed_waiters_, Duration::max(), [cb = std::move(cb)](const Error &) { cb(); }, "wait_closed");
}

}  // namespace uvwt::detail
