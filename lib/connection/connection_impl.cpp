// Creating a connection: a client that resolves, binds and starts its
// handshake (directly or through a proxy tunnel), or a server connection
// accepted from an Initial.

#include "connection/connection_impl.hpp"

#include <gnutls/crypto.h>

#include <cstdio>

#include "common/clock.hpp"
#include "connection/proxy_tunnel.hpp"
#include "quic/session_tickets.hpp"
#include "quic/ticket_cache.hpp"
#include "quic/tls_context.hpp"

namespace uvwt::detail {

namespace {
std::string make_connection_id() {
  std::uint8_t b[8];
  gnutls_rnd(GNUTLS_RND_NONCE, b, sizeof b);
  char out[20];
  std::snprintf(out, sizeof out, "%02x%02x%02x%02x%02x%02x%02x%02x", b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]);
  return out;
}
}  // namespace

ConnectionImpl::ConnectionImpl(std::shared_ptr<Deferred> deferred, bool client,
                               std::variant<ClientConfig, ServerConfig> cfg)
    : loop_(deferred->loop()),
      client_(client),
      cfg_(std::move(cfg)),
      deferred_(std::move(deferred)),
      id_(make_connection_id()) {}

ConnectionImpl::~ConnectionImpl() {
  // Members go in reverse order: QUIC state before the endpoint it is registered with.
  quic_.reset();
  h3_.reset();
}

const TransportConfig &ConnectionImpl::config() const noexcept {
  if (const auto *c = std::get_if<ClientConfig>(&cfg_)) return *c;
  return std::get<ServerConfig>(cfg_);
}

std::shared_ptr<ConnectionImpl> ConnectionImpl::make_client(std::shared_ptr<Deferred> deferred,
                                                            const ClientConfig &cfg) {
  auto c = std::make_shared<ConnectionImpl>(std::move(deferred), true, cfg);
  c->self_ = c;
  return c;
}

void ConnectionImpl::connect_to(const SockAddr &remote, const std::string &server_name,
                                std::shared_ptr<TlsClientContext> tls) {
  // Closed by the user while the host was being resolved.
  if (closing_started_ || state_ != ConnectionState::idle) return;
  client_tls_ = std::move(tls);
  ep_keep_ = std::make_shared<Endpoint>(deferred_, config());
  ep_ = ep_keep_.get();
  own_ep_ = true;
  if (pending_impairment_) ep_->set_impairment(*pending_impairment_);
  UdpSocket *sock = nullptr;
  Error err = ep_->bind(SockAddr::any(remote.family(), 0), &sock);
  if (err) return fail_before_start(err);
  h3_ = std::make_unique<H3Connection>(*this, deferred_, false, config(), nullptr, remote.to_address());
  h3_->set_client_dialects(std::get<ClientConfig>(cfg_).dialects);
  quic_ = QuicConnection::create_client(*ep_, *sock, sock->local_addr(), remote, *client_tls_, server_name, config(),
                                        *h3_, err);
  if (!quic_) {
    h3_.reset();
    return fail_before_start(err);
  }
  h3_->attach(quic_.get());
  offer_ticket(server_name, remote.port());
  set_state(ConnectionState::connecting);
  quic_->write_now();
}

void ConnectionImpl::connect_via(std::shared_ptr<ProxyTunnel> tunnel, const std::string &server_name,
                                 std::shared_ptr<TlsClientContext> tls) {
  if (closing_started_ || state_ != ConnectionState::idle) return;
  client_tls_ = std::move(tls);
  tunnel_ = std::move(tunnel);
  // A socketless endpoint: connection ids, timers' loop and the tunnel's
  // packets (Endpoint::deliver).
  ep_keep_ = std::make_shared<Endpoint>(deferred_, config());
  ep_ = ep_keep_.get();
  own_ep_ = true;
  h3_ = std::make_unique<H3Connection>(*this, deferred_, false, config(), nullptr, tunnel_->target().to_address());
  Error err;
  quic_ = QuicConnection::create_client(*ep_, *tunnel_, tunnel_->local(), tunnel_->target(), *client_tls_, server_name,
                                        config(), *h3_, err);
  if (!quic_) {
    h3_.reset();
    return fail_before_start(err);
  }
  tunnel_->attach(ep_, weak_from_this());
  h3_->attach(quic_.get());
  offer_ticket(server_name, tunnel_->target().port());
  set_state(ConnectionState::connecting);
  quic_->write_now();
}

void ConnectionImpl::offer_ticket(const std::string &server_name, std::uint16_t port) {
  const auto &cfg = std::get<ClientConfig>(cfg_);
  if (!cfg.session_resumption) return;
  use_ticket_cache(*quic_, cfg.ticket_cache, ticket_authority(server_name, port, cfg.alpn), cfg.early_data);
}

void ConnectionImpl::path_lost(const Error &err) {
  if (!quic_ || quic_->is_closed()) return;
  quic_->set_linger(false);
  abandon(err);
}

void ConnectionImpl::fail_before_start(const Error &err) {
  if (finished_ || is_closed()) return;
  stop_dialing(err);
  close_error_ = err;
  closed_at_ = wall_seconds();
  ++error_count_;
  set_state(ConnectionState::failed);
  auto self = shared_from_this();
  deferred_->post([self] { self->finish_close(); });
}

Error ConnectionImpl::migrate() {
  if (!is_client() || !own_ep_ || tunnel_ || !quic_)
    return Error(Errc::client, "only a direct client connection can migrate");
  UdpSocket *sock = nullptr;
  if (Error e = ep_->bind(SockAddr::any(quic_->remote_addr().family(), 0), &sock)) return e;
  // The old socket stays open: packets already in flight to it still arrive.
  return quic_->migrate(*sock);
}

void ConnectionImpl::set_impairment(const ImpairmentConfig &cfg) {
  if (ep_ != nullptr)
    ep_->set_impairment(cfg);
  else
    pending_impairment_ = cfg;
}

std::shared_ptr<ConnectionImpl> ConnectionImpl::accept(const std::shared_ptr<Endpoint> &epp, UdpSocket &sock,
                                                       const RecvPacket &pkt, const ngtcp2_pkt_hd &hd,
                                                       const ngtcp2_cid *original_dcid, const ServerConfig &cfg,
                                                       std::shared_ptr<TlsServerContext> tls,
                                                       ConnectionServerHooks *hooks, Error &err) {
  Endpoint &ep = *epp;
  auto c = std::make_shared<ConnectionImpl>(ep.deferred(), false, cfg);
  c->server_tls_ = std::move(tls);
  c->ep_keep_ = epp;
  c->ep_ = &ep;
  c->hooks_ = hooks;
  const SockAddr local = pkt.local != nullptr ? *pkt.local : sock.local_addr();
  c->h3_ = std::make_unique<H3Connection>(*c, c->deferred_, true, c->config(), &std::get<ServerConfig>(c->cfg_),
                                          pkt.remote->to_address());
  c->quic_ = QuicConnection::create_server(ep, sock, local, *pkt.remote, hd, original_dcid, *c->server_tls_,
                                           c->config(), *c->h3_, err);
  if (!c->quic_) return nullptr;
  c->h3_->attach(c->quic_.get());
  c->self_ = c;
  c->set_state(ConnectionState::connecting);
  c->on_activity();
  c->quic_->on_packet(pkt);
  return c;
}

}  // namespace uvwt::detail
