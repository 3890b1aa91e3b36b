// The connection's life: IDLE -> CONNECTING -> CONNECTED -> CLOSING /
// DRAINING -> CLOSED or FAILED, and the callbacks each step owes.

#include "connection/connection_impl.hpp"

#include "common/clock.hpp"
#include "h3/wt_codes.hpp"
#include "connection/proxy_tunnel.hpp"

namespace uvwt::detail {

void ConnectionImpl::set_state(ConnectionState s) {
  if (s == state_) return;
  state_ = s;
  // Reported on a later turn (state changes happen inside ngtcp2 and nghttp3
  // callbacks); the queue keeps them in order.
  auto self = shared_from_this();
  deferred_->post([self, s] {
    if (self->on_state_change_) self->on_state_change_(s);
  });
}

ConnectionState ConnectionImpl::state() const noexcept {
  if (state_ != ConnectionState::connected && state_ != ConnectionState::closing) return state_;
  if (quic_ && !quic_->is_closed() && quic_->in_draining_period()) return ConnectionState::draining;
  if (state_ == ConnectionState::connected && h3_ && h3_->goaway_received() != 0) return ConnectionState::draining;
  return state_;
}

void ConnectionImpl::on_h3_ready() {
  if (state_ != ConnectionState::connecting) return;
  set_state(ConnectionState::connected);
  established_at_ = wall_seconds();
  on_activity();
  connect_timer_.reset();
  auto self = shared_from_this();
  deferred_->post([self] {
    if (self->connect_cb) {
      auto cb = std::move(self->connect_cb);
      self->connect_cb = nullptr;
      cb(Error());
    }
    if (self->on_established_) self->on_established_();
    self->resolve_waiters(self->ready_waiters_, Error());
  });
}

void ConnectionImpl::start_connect_timer(Duration timeout) {
  if (timeout.count() <= 0) return;
  connect_timer_ = std::make_unique<Timer>(loop_);
  std::weak_ptr<ConnectionImpl> weak = shared_from_this();
  connect_timer_->start(static_cast<std::uint64_t>(timeout.count()), [weak, timeout] {
    if (auto self = weak.lock()) {
      if (self->state_ == ConnectionState::connecting)
        self->abandon(Error(Errc::timeout, "connect timed out after " + std::to_string(timeout.count()) + " ms"));
    }
  });
}

void ConnectionImpl::close(std::uint64_t code, std::string reason, CloseCallback cb) {
  close_with(code, std::move(reason), Error(), std::move(cb));
}

void ConnectionImpl::close_with(std::uint64_t code, std::string reason, const Error &why, CloseCallback cb) {
  if (cb) close_cbs_.push_back(std::move(cb));
  if (finished_) {
    auto cbs = std::move(close_cbs_);
    close_cbs_.clear();
    deferred_->post([cbs = std::move(cbs)] {
      for (const auto &c : cbs) c();
    });
    return;
  }
  if (closing_started_ || is_closed()) return;
  closing_started_ = true;
  idle_timer_.reset();
  if (state_ == ConnectionState::idle || dialing()) {
    // Nothing of its own on the wire yet: the pending resolution finds it
    // closed, the attempts of a race are abandoned.
    stop_dialing(Error(Errc::cancelled, "connection closed while connecting"));
    close_error_ = why;
    closed_at_ = wall_seconds();
    set_state(ConnectionState::closed);
    auto self = shared_from_this();
    deferred_->post([self] { self->finish_close(); });
    return;
  }
  if (state_ == ConnectionState::connecting || state_ == ConnectionState::connected)
    set_state(ConnectionState::closing);
  auto self = shared_from_this();
  deferred_->post([self, code, reason = std::move(reason), why] {
    if (self->quic_ && !self->quic_->is_closed()) {
      // Sessions first: they tell the peer their own codes.
      if (self->h3_) self->h3_->close_all_sessions(0, "connection closing");
      self->quic_->write_now();  // let the sessions' close capsules out first
      self->quic_->set_close_error(why);
      // Application code 0 is HTTP/3's H3_NO_ERROR on the wire.
      self->quic_->close(code == 0 ? kH3NoError : code, reason);
    }
  });
}

void ConnectionImpl::abandon(const Error &err) {
  if (dialing()) {
    stop_dialing(err);
    return fail_before_start(err);
  }
  if (quic_ && !quic_->is_closed()) {
    quic_->set_close_error(err);
    // Tell the peer when we can (handshake done); otherwise just stop.
    if (quic_->handshake_completed())
      quic_->close(kH3NoError, err.message);
    else
      quic_->abandon(err);
  }
}

void ConnectionImpl::on_transport_closed(const Error &err) {
  close_error_ = err;
  closed_at_ = wall_seconds();
  // Closed: we or the peer closed it (whatever the code). Failed: it was
  // lost (timeout, unreachable) or broken (TLS, protocol).
  const bool closed = err.ok() || closing_started_ || err.errc == Errc::connection;
  set_state(closed ? ConnectionState::closed : ConnectionState::failed);
  if (!closed) ++error_count_;
  auto self = shared_from_this();
  deferred_->post([self] { self->finish_close(); });
}

void ConnectionImpl::finish_close() {
  if (finished_) return;
  auto self = shared_from_this();
  connect_timer_.reset();
  health_timer_.reset();
  probe_timer_.reset();
  idle_timer_.reset();
  health_probe_outstanding_ = false;
  const Error err = close_error_;
  if (connect_cb) {
    auto cb = std::move(connect_cb);
    connect_cb = nullptr;
    cb(err ? err : Error(Errc::connection, "connection closed before it was established"));
  }
  resolve_waiters(ready_waiters_, err ? err : Error(Errc::connection, "connection closed"));
  resolve_waiters(session_waiters_, err ? err : Error(Errc::connection, "connection closed"));
  if (state_ == ConnectionState::failed && on_lost_) {
    auto cb = std::move(on_lost_);
    on_lost_ = nullptr;
    cb(err);
  }
  if (on_closed_) {
    auto cb = std::move(on_closed_);
    on_closed_ = nullptr;
    cb(err);
  }
  auto finalize = [self] {
    self->finished_ = true;
    auto cbs = std::move(self->close_cbs_);
    self->close_cbs_.clear();
    for (const auto &c : cbs) c();
    self->resolve_waiters(self->closed_waiters_, Error());
    if (self->hooks_ != nullptr) self->hooks_->connection_finished(self);
    self->on_established_ = nullptr;
    self->on_session_ = nullptr;
    self->on_session_request_ = nullptr;
    self->on_state_change_ = nullptr;
    self->on_lost_ = nullptr;
    self->self_.reset();
  };
  if (tunnel_) tunnel_->release();  // the proxy connection may go now
  auto close_endpoint = [self, finalize] {
    if (self->own_ep_ && self->ep_ != nullptr)
      self->ep_->close(finalize);
    else
      finalize();
  };
  if (quic_)
    quic_->close_handles(close_endpoint);
  else
    close_endpoint();  // a client that never got to connect
}

}  // namespace uvwt::detail
