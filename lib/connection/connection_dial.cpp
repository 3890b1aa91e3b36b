// A client connection that races the host's addresses with the same Dialer
// (Happy Eyeballs, RFC 8305) as Client::connect. The attempts are connections
// of their own; the user's connection takes over the winner's transport, so
// that what create_client returned is what connected.

#include "connection/connection_impl.hpp"
#include "connection/dialer.hpp"

namespace uvwt::detail {

void ConnectionImpl::dial(const std::string &host, std::uint16_t port, std::shared_ptr<TlsClientContext> tls,
                          Duration connect_timeout) {
  if (closing_started_ || state_ != ConnectionState::idle) return;
  std::weak_ptr<ConnectionImpl> weak = shared_from_this();
  // An impairment set on this connection (state IDLE) applies to every attempt's first packet.
  auto setup = [weak](ConnectionImpl &attempt) {
    if (auto self = weak.lock(); self && self->pending_impairment_) attempt.set_impairment(*self->pending_impairment_);
  };
  auto on_attempt = [weak, connect_timeout](const std::shared_ptr<ConnectionImpl> &) {
    auto self = weak.lock();
    if (!self || self->state_ != ConnectionState::idle) return;
    self->set_state(ConnectionState::connecting);
    self->start_connect_timer(connect_timeout);
  };
  auto done = [weak](const Error &err, const std::shared_ptr<ConnectionImpl> &winner) {
    auto self = weak.lock();
    if (!self) return shut_connection(winner, Error(Errc::cancelled, "connection gone"));
    self->dialer_.reset();
    if (err) return self->fail_before_start(err);
    self->take_over(*winner);
  };
  dialer_ = Dialer::start(deferred_, std::get<ClientConfig>(cfg_), std::move(tls), host, port, std::move(on_attempt),
                          std::move(done), std::move(setup));
}

void ConnectionImpl::take_over(ConnectionImpl &winner) {
  if (closing_started_ || is_closed() || !winner.quic_) {
    shut_connection(winner.shared_from_this(), Error(Errc::cancelled, "connect abandoned"));
    return;
  }
  ep_keep_ = std::move(winner.ep_keep_);
  ep_ = ep_keep_.get();
  own_ep_ = true;
  client_tls_ = std::move(winner.client_tls_);
  h3_ = std::move(winner.h3_);
  quic_ = std::move(winner.quic_);
  h3_->rebind_owner(*this);
  // The winner is an empty shell now: nothing of it is on the wire or the
  // loop, so it ends without a close of its own.
  winner.ep_ = nullptr;
  winner.own_ep_ = false;
  winner.finished_ = true;
  winner.state_ = ConnectionState::closed;
  winner.self_.reset();
  on_h3_ready();
}

void ConnectionImpl::stop_dialing(const Error &why) {
  if (auto d = std::exchange(dialer_, nullptr)) d->cancel(why);
}

}  // namespace uvwt::detail
