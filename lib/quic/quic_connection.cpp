#include "quic/quic_connection.hpp"

#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <ngtcp2/ngtcp2_crypto_gnutls.h>

#include <algorithm>
#include <cassert>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "common/clock.hpp"
#include "common/log.hpp"
#include "quic/endpoint.hpp"
#include "quic/tls_context.hpp"
#include "quic/tls_session.hpp"
#include "quic/udp_socket.hpp"

namespace uvwt::detail {

namespace {
constexpr std::uint64_t kH3NoErrorCode = 0x100;

void fill_random(std::uint8_t *dest, std::size_t len) { gnutls_rnd(GNUTLS_RND_NONCE, dest, len); }

void rand_cb(std::uint8_t *dest, std::size_t destlen, const ngtcp2_rand_ctx *) { fill_random(dest, destlen); }

// ngtcp2's own packet log, for debugging only (UVWT_NGTCP2_LOG=1).
void ngtcp2_log(void *, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  std::vfprintf(stderr, fmt, ap);
  va_end(ap);
  std::fputc('\n', stderr);
}

ngtcp2_path make_path(const SockAddr &local, const SockAddr &remote) {
  ngtcp2_path p{};
  p.local.addr = const_cast<sockaddr *>(local.sa());
  p.local.addrlen = local.len;
  p.remote.addr = const_cast<sockaddr *>(remote.sa());
  p.remote.addrlen = remote.len;
  return p;
}

ngtcp2_cc_algo cc_algo(CongestionControl cc) {
  switch (cc) {
    case CongestionControl::reno:
      return NGTCP2_CC_ALGO_RENO;
    case CongestionControl::bbr:
      return NGTCP2_CC_ALGO_BBR;
    case CongestionControl::cubic:
      break;
  }
  return NGTCP2_CC_ALGO_CUBIC;
}

Error quic_error(const char *what, int rv) {
  return {Errc::connection, std::string(what) + ": " + ngtcp2_strerror(rv)};
}
}  // namespace

// ngtcp2's callbacks, translated to QuicApp calls.
struct QuicCallbacks {
  static QuicConnection *self(void *user_data) { return static_cast<QuicConnection *>(user_data); }

  static ngtcp2_conn *get_conn(ngtcp2_crypto_conn_ref *ref) {
    return static_cast<QuicConnection *>(ref->user_data)->conn_;
  }

  static int handshake_completed(ngtcp2_conn *, void *ud) {
    UVWT_DEBUG("%s: handshake completed with %s", self(ud)->server_ ? "server" : "client",
               self(ud)->remote_.to_string().c_str());
    // A server's handshake is confirmed as it completes (RFC 9001, 4.1.2):
    // its TLS session is released once this packet has been processed.
    if (self(ud)->server_) {
      self(ud)->release_tls_ = true;
      self(ud)->handshake_slot_.release();
    }
    self(ud)->app_.on_handshake_completed();
    return 0;
  }

  static int recv_crypto_data(ngtcp2_conn *conn, ngtcp2_encryption_level level, std::uint64_t offset,
                              const std::uint8_t *data, std::size_t len, void *ud) {
    auto *c = self(ud);
    if (c->tls_ == nullptr || c->tls_->released()) {
      // A server's TLS is gone once the handshake is confirmed; a client has
      // no post-handshake messages to send in QUIC.
      c->set_close_error(Error(Errc::protocol, "CRYPTO data after the handshake was confirmed"));
      return NGTCP2_ERR_CALLBACK_FAILURE;
    }
    return ngtcp2_crypto_recv_crypto_data_cb(conn, level, offset, data, len, ud);
  }

  static int recv_stream_data(ngtcp2_conn *, std::uint32_t flags, std::int64_t sid, std::uint64_t,
                              const std::uint8_t *data, std::size_t len, void *ud, void *) {
    auto *c = self(ud);
    c->counters_.bytes_received += len;
    if (!c->app_.on_stream_data(sid, (flags & NGTCP2_STREAM_DATA_FLAG_FIN) != 0, data, len))
      return NGTCP2_ERR_CALLBACK_FAILURE;
    return 0;
  }

  static int stream_open(ngtcp2_conn *, std::int64_t sid, void *ud) {
    self(ud)->open_streams_.insert(sid);
    return 0;
  }

  static int stream_close(ngtcp2_conn *, std::uint32_t flags, std::int64_t sid, std::uint64_t code, void *ud, void *) {
    auto *c = self(ud);
    c->count_stream_losses(sid);
    c->open_streams_.erase(sid);
    c->app_.on_stream_close(sid, (flags & NGTCP2_STREAM_CLOSE_FLAG_APP_ERROR_CODE_SET) != 0, code);
    return 0;
  }

  static int stream_reset(ngtcp2_conn *, std::int64_t sid, std::uint64_t final_size, std::uint64_t code, void *ud,
                          void *) {
    self(ud)->app_.on_stream_reset(sid, final_size, code);
    return 0;
  }

  static int stream_stop_sending(ngtcp2_conn *, std::int64_t sid, std::uint64_t code, void *ud, void *) {
    self(ud)->app_.on_stop_sending(sid, code);
    return 0;
  }

  static int acked_stream_data_offset(ngtcp2_conn *, std::int64_t sid, std::uint64_t, std::uint64_t len, void *ud,
                                      void *) {
    self(ud)->app_.on_acked_stream_data(sid, len);
    return 0;
  }

  static int extend_max_local_streams_bidi(ngtcp2_conn *, std::uint64_t, void *ud) {
    self(ud)->app_.on_extend_max_local_streams(true);
    return 0;
  }

  static int extend_max_local_streams_uni(ngtcp2_conn *, std::uint64_t, void *ud) {
    self(ud)->app_.on_extend_max_local_streams(false);
    return 0;
  }

  static int extend_max_stream_data(ngtcp2_conn *, std::int64_t sid, std::uint64_t, void *ud, void *) {
    self(ud)->app_.on_extend_max_stream_data(sid);
    return 0;
  }

  static int recv_datagram(ngtcp2_conn *, std::uint32_t, const std::uint8_t *data, std::size_t len, void *ud) {
    self(ud)->app_.on_datagram(data, len);
    return 0;
  }

  static int get_new_connection_id(ngtcp2_conn *, ngtcp2_cid *cid, std::uint8_t *token, std::size_t cidlen, void *ud) {
    auto *c = self(ud);
    // ngtcp2 asks for the length of our first id, which the endpoint's
    // factory chose: every id we issue is routable (QUIC-LB, worker byte).
    c->ep_.make_cid(*cid);
    if (cid->datalen != cidlen) return NGTCP2_ERR_CALLBACK_FAILURE;
    if (ngtcp2_crypto_generate_stateless_reset_token(token, c->ep_.static_secret().data(),
                                                     c->ep_.static_secret().size(), cid) != 0)
      return NGTCP2_ERR_CALLBACK_FAILURE;
    c->ep_.register_cid(*cid, c);
    return 0;
  }

  static int remove_connection_id(ngtcp2_conn *, const ngtcp2_cid *cid, void *ud) {
    self(ud)->ep_.unregister_cid(*cid);
    return 0;
  }

  // The peer's ids in use and their reset tokens: the endpoint routes a
  // stateless reset by its token.
  static int dcid_status(ngtcp2_conn *, ngtcp2_connection_id_status_type type, std::uint64_t, const ngtcp2_cid *,
                         const std::uint8_t *token, void *ud) {
    if (token == nullptr) return 0;
    auto *c = self(ud);
    std::array<std::uint8_t, NGTCP2_STATELESS_RESET_TOKENLEN> t;
    std::memcpy(t.data(), token, t.size());
    if (type == NGTCP2_CONNECTION_ID_STATUS_TYPE_ACTIVATE) {
      c->ep_.register_reset_token(token, c);
      c->reset_tokens_.push_back(t);
    } else {
      c->ep_.unregister_reset_token(token, c);
      std::erase(c->reset_tokens_, t);
    }
    return 0;
  }

  static int recv_stateless_reset(ngtcp2_conn *, const ngtcp2_pkt_stateless_reset *, void *ud) {
    auto *c = self(ud);
    UVWT_DEBUG("%s: stateless reset from %s", c->server_ ? "server" : "client", c->remote_.to_string().c_str());
    c->set_close_error(Error(Errc::connection, "stateless reset: the peer no longer knows this connection"));
    return 0;
  }

  static int ack_datagram(ngtcp2_conn *, std::uint64_t, void *ud) {
    self(ud)->dgram_window_.on_done();
    return 0;
  }

  static int lost_datagram(ngtcp2_conn *, std::uint64_t, void *ud) {
    ++self(ud)->counters_.datagrams_lost;
    self(ud)->dgram_window_.on_done();
    return 0;
  }

  static void frame_log(void *ud, const char *fmt, ...) {
    char line[512];
    va_list ap;
    va_start(ap, fmt);
    std::vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    self(ud)->app_.on_frame_log(line);
  }

  static void qlog_write(void *ud, std::uint32_t, const void *data, std::size_t len) {
    auto *c = self(ud);
    if (c->qlog_ != nullptr) std::fwrite(data, 1, len, c->qlog_);
  }

  static void fill(ngtcp2_callbacks &cb, bool server) {
    if (server) {
      cb.recv_client_initial = ngtcp2_crypto_recv_client_initial_cb;
    } else {
      cb.client_initial = ngtcp2_crypto_client_initial_cb;
      cb.recv_retry = ngtcp2_crypto_recv_retry_cb;
    }
    cb.recv_crypto_data = recv_crypto_data;
    cb.encrypt = ngtcp2_crypto_encrypt_cb;
    cb.decrypt = ngtcp2_crypto_decrypt_cb;
    cb.hp_mask = ngtcp2_crypto_hp_mask_cb;
    cb.update_key = ngtcp2_crypto_update_key_cb;
    cb.delete_crypto_aead_ctx = ngtcp2_crypto_delete_crypto_aead_ctx_cb;
    cb.delete_crypto_cipher_ctx = ngtcp2_crypto_delete_crypto_cipher_ctx_cb;
    cb.get_path_challenge_data = ngtcp2_crypto_get_path_challenge_data_cb;
    cb.version_negotiation = ngtcp2_crypto_version_negotiation_cb;
    cb.rand = rand_cb;
    cb.handshake_completed = handshake_completed;
    cb.recv_stream_data = recv_stream_data;
    cb.stream_open = stream_open;
    cb.stream_close = stream_close;
    cb.stream_reset = stream_reset;
    cb.stream_stop_sending = stream_stop_sending;
    cb.acked_stream_data_offset = acked_stream_data_offset;
    cb.extend_max_local_streams_bidi = extend_max_local_streams_bidi;
    cb.extend_max_local_streams_uni = extend_max_local_streams_uni;
    cb.extend_max_stream_data = extend_max_stream_data;
    cb.recv_datagram = recv_datagram;
    cb.get_new_connection_id = get_new_connection_id;
    cb.remove_connection_id = remove_connection_id;
    cb.dcid_status = dcid_status;
    cb.recv_stateless_reset = recv_stateless_reset;
    cb.ack_datagram = ack_datagram;
    cb.lost_datagram = lost_datagram;
    cb.path_validation = &QuicConnection::on_path_validation;
  }
};

QuicConnection::QuicConnection(Endpoint &ep, UdpSocket *sock, PacketPath *path, const SockAddr &local,
                               const SockAddr &remote, bool server, QuicApp &app)
    : ep_(ep), path_(path), local_(local), remote_(remote), server_(server), app_(app), tasks_(ep.deferred()) {
  if (path_ == nullptr) path_ = &socket_path_.emplace(ep, *sock);
  conn_ref_.get_conn = &QuicCallbacks::get_conn;
  conn_ref_.user_data = this;
  ngtcp2_ccerr_default(&last_error_);
}

QuicConnection::~QuicConnection() {
  timer_.reset();
  for (const auto *cid : {&scid_}) {
    if (cid->datalen > 0) ep_.unregister_cid(*cid);
  }
  if (conn_ != nullptr) {
    // Unregister every id ngtcp2 still knows for us.
    const std::size_t n = ngtcp2_conn_get_scid(conn_, nullptr);
    std::vector<ngtcp2_cid> ids(n);
    ngtcp2_conn_get_scid(conn_, ids.data());
    for (const auto &id : ids) ep_.unregister_cid(id);
    ngtcp2_conn_del(conn_);
  }
  if (has_original_dcid_) ep_.unregister_cid(original_dcid_);
  forget_reset_tokens();
  ep_.forget(this);
  if (qlog_ != nullptr) std::fclose(qlog_);
}

bool QuicConnection::init_common(const TransportConfig &cfg, ngtcp2_settings &settings,
                                 ngtcp2_transport_params &params) {
  timer_ = std::make_unique<PreciseTimer>(ep_.loop(), &QuicConnection::on_timer_fired, this, cfg.precise_timers);
  ngtcp2_settings_default(&settings);
  settings.initial_ts = now_ns();
  settings.cc_algo = cc_algo(cfg.congestion_control);
  settings.handshake_timeout = static_cast<ngtcp2_duration>(cfg.handshake_timeout.count()) * NGTCP2_MILLISECONDS;
  // The path bounds every packet: a tunnel's is the outer connection's
  // datagram room (docs/proxy.md), a socket's the Ethernet MTU.
  settings.max_tx_udp_payload_size = path_->max_udp_payload();
  settings.no_pmtud = path_->probe_mtu() ? 0 : 1;
  // Full-size packets at once: a tunnel knows its bound, and a proxy
  // connection must carry tunnelled packets before any probe succeeds.
  settings.no_tx_udp_payload_size_shaping = cfg.assume_full_mtu || !path_->probe_mtu() ? 1 : 0;
  max_dgrams_per_pkt_ = cfg.max_datagrams_per_packet;
  dgram_window_.set_limit(cfg.max_datagrams_in_flight);
  if (std::getenv("UVWT_NGTCP2_LOG") != nullptr) settings.log_printf = ngtcp2_log;
  if (app_.wants_frame_log()) settings.log_printf = &QuicCallbacks::frame_log;
  if (!cfg.qlog_dir.empty()) {
    char name[80];
    std::snprintf(name, sizeof name, "/%s-%016llx.sqlog", server_ ? "server" : "client",
                  static_cast<unsigned long long>(now_ns()) ^ reinterpret_cast<std::uintptr_t>(this));
    qlog_path_ = cfg.qlog_dir + name;
    qlog_ = std::fopen(qlog_path_.c_str(), "w");
    if (qlog_ != nullptr)
      settings.qlog_write = &QuicCallbacks::qlog_write;
    else
      UVWT_WARN("cannot open qlog file %s", qlog_path_.c_str());
  }

  ngtcp2_transport_params_default(&params);
  params.initial_max_stream_data_bidi_local = cfg.initial_max_stream_data;
  params.initial_max_stream_data_bidi_remote = cfg.initial_max_stream_data;
  params.initial_max_stream_data_uni = cfg.initial_max_stream_data;
  params.initial_max_data = cfg.initial_max_data;
  params.initial_max_streams_bidi = cfg.max_streams_bidi;
  // HTTP/3 needs at least three uni streams (control, QPACK x2) beyond the
  // application's: browsers count theirs against this too.
  params.initial_max_streams_uni = std::max<std::uint64_t>(cfg.max_streams_uni, 100);
  params.max_idle_timeout = static_cast<ngtcp2_duration>(cfg.idle_timeout.count()) * NGTCP2_MILLISECONDS;
  params.max_datagram_frame_size = cfg.max_datagram_frame_size;
  // A tunnel cannot carry larger packets than its own bound in either
  // direction: tell the peer (RFC 9000 §18.2, max_udp_payload_size), or
  // the target's full-size packets would be dropped by the proxy leg.
  if (!path_->probe_mtu()) params.max_udp_payload_size = path_->max_udp_payload();
  params.active_connection_id_limit = 7;
  return true;
}

std::unique_ptr<QuicConnection> QuicConnection::create_client(Endpoint &ep, UdpSocket &sock, const SockAddr &local,
                                                              const SockAddr &remote, TlsClientContext &tls,
                                                              const std::string &server_name,
                                                              const TransportConfig &cfg, QuicApp &app, Error &err) {
  std::unique_ptr<QuicConnection> c(new QuicConnection(ep, &sock, nullptr, local, remote, false, app));
  return init_client(std::move(c), tls, server_name, cfg, err);
}

std::unique_ptr<QuicConnection> QuicConnection::create_client(Endpoint &ep, PacketPath &path, const SockAddr &local,
                                                              const SockAddr &remote, TlsClientContext &tls,
                                                              const std::string &server_name,
                                                              const TransportConfig &cfg, QuicApp &app, Error &err) {
  std::unique_ptr<QuicConnection> c(new QuicConnection(ep, nullptr, &path, local, remote, false, app));
  return init_client(std::move(c), tls, server_name, cfg, err);
}

std::unique_ptr<QuicConnection> QuicConnection::init_client(std::unique_ptr<QuicConnection> c, TlsClientContext &tls,
                                                            const std::string &server_name, const TransportConfig &cfg,
                                                            Error &err) {
  Endpoint &ep = c->ep_;
  ngtcp2_cid dcid, scid;
  dcid.datalen = kCidLen;
  fill_random(dcid.data, dcid.datalen);
  scid.datalen = kCidLen;
  fill_random(scid.data, scid.datalen);
  ngtcp2_settings settings;
  ngtcp2_transport_params params;
  c->init_common(cfg, settings, params);
  ngtcp2_callbacks cbs{};
  QuicCallbacks::fill(cbs, false);
  const ngtcp2_path path = make_path(c->local_, c->remote_);
  const int rv = ngtcp2_conn_client_new(&c->conn_, &dcid, &scid, &path, NGTCP2_PROTO_VER_V1, &cbs, &settings, &params,
                                        nullptr, c.get());
  if (rv != 0) {
    err = quic_error("ngtcp2_conn_client_new", rv);
    return nullptr;
  }
  c->tls_ = TlsSession::create_client(tls, &c->conn_ref_, server_name, err);
  if (!c->tls_) return nullptr;
  ngtcp2_conn_set_tls_native_handle(c->conn_, c->tls_->native());
  if (cfg.keep_alive_interval.count() > 0) {
    c->keep_alive_ = static_cast<ngtcp2_duration>(cfg.keep_alive_interval.count()) * NGTCP2_MILLISECONDS;
    ngtcp2_conn_set_keep_alive_timeout(c->conn_, c->keep_alive_);
  }
  c->scid_ = scid;
  ep.register_cid(scid, c.get());
  return c;
}

std::unique_ptr<QuicConnection> QuicConnection::create_server(Endpoint &ep, UdpSocket &sock, const SockAddr &local,
                                                              const SockAddr &remote, const ngtcp2_pkt_hd &hd,
                                                              const ngtcp2_cid *original_dcid, TlsServerContext &tls,
                                                              const TransportConfig &cfg, QuicApp &app, Error &err) {
  std::unique_ptr<QuicConnection> c(new QuicConnection(ep, &sock, nullptr, local, remote, true, app));
  ngtcp2_settings settings;
  ngtcp2_transport_params params;
  c->init_common(cfg, settings, params);
  if (original_dcid != nullptr) {
    // The client proved its address with our Retry token.
    settings.token = hd.token;
    settings.tokenlen = hd.tokenlen;
    settings.token_type = NGTCP2_TOKEN_TYPE_RETRY;
    params.original_dcid = *original_dcid;
    params.retry_scid = hd.dcid;
    params.retry_scid_present = 1;
  } else {
    params.original_dcid = hd.dcid;
  }
  params.original_dcid_present = 1;
  ngtcp2_cid scid;
  ep.make_cid(scid);
  // The token belongs to the id the client will address us with once the
  // handshake is done (our SCID), and is the hash the endpoint recomputes
  // from a packet's DCID when it has to reset the connection.
  if (ngtcp2_crypto_generate_stateless_reset_token(params.stateless_reset_token, ep.static_secret().data(),
                                                   ep.static_secret().size(), &scid) == 0)
    params.stateless_reset_token_present = 1;
  ngtcp2_callbacks cbs{};
  QuicCallbacks::fill(cbs, true);
  const ngtcp2_path path = make_path(c->local_, c->remote_);
  const int rv =
      ngtcp2_conn_server_new(&c->conn_, &hd.scid, &scid, &path, hd.version, &cbs, &settings, &params, nullptr, c.get());
  if (rv != 0) {
    err = quic_error("ngtcp2_conn_server_new", rv);
    return nullptr;
  }
  c->tls_ = TlsSession::create_server(tls, &c->conn_ref_, err);
  if (!c->tls_) return nullptr;
  ngtcp2_conn_set_tls_native_handle(c->conn_, c->tls_->native());
  c->scid_ = scid;
  c->handshake_slot_ = ep.handshake_limits().open(remote);
  ep.register_cid(scid, c.get());
  // Packets still addressed to the client's chosen DCID must find us too.
  c->original_dcid_ = hd.dcid;
  c->has_original_dcid_ = true;
  ep.register_cid(hd.dcid, c.get());
  return c;
}

bool QuicConnection::handshake_completed() const noexcept {
  return conn_ != nullptr && ngtcp2_conn_get_handshake_completed(conn_) != 0;
}

bool QuicConnection::in_closing_or_draining() const noexcept {
  return conn_ != nullptr && (ngtcp2_conn_in_closing_period(conn_) != 0 || ngtcp2_conn_in_draining_period(conn_) != 0);
}

bool QuicConnection::in_draining_period() const noexcept {
  return conn_ != nullptr && ngtcp2_conn_in_draining_period(conn_) != 0;
}

std::size_t QuicConnection::max_datagram_payload() const noexcept {
  if (conn_ == nullptr) return 0;
  const ngtcp2_transport_params *p = ngtcp2_conn_get_remote_transport_params(conn_);
  if (p == nullptr || p->max_datagram_frame_size == 0) return 0;
  // A DATAGRAM frame must fit in one packet: path payload minus the short
  // header, AEAD tag and frame overhead (type + length varints).
  const std::size_t pkt = ngtcp2_conn_get_path_max_tx_udp_payload_size(conn_);
  const std::size_t overhead = 1 + 20 + 4 + 16 + 1 + 4;
  const std::size_t by_pkt = pkt > overhead ? pkt - overhead : 0;
  const std::size_t by_param = p->max_datagram_frame_size > 5 ? p->max_datagram_frame_size - 5 : 0;
  return std::min(by_pkt, by_param);
}

void QuicConnection::count_stream_losses(std::int64_t sid) {
  if (conn_ != nullptr) lost_closed_streams_ += ngtcp2_conn_get_stream_loss_count(conn_, sid);
}

void QuicConnection::forget_reset_tokens() {
  for (const auto &t : reset_tokens_) ep_.unregister_reset_token(t.data(), this);
  reset_tokens_.clear();
}

QuicStats QuicConnection::stats() const {
  QuicStats s = counters_;
  if (conn_ != nullptr) {
    ngtcp2_conn_info ci;
    ngtcp2_conn_get_conn_info(conn_, &ci);
    s.smoothed_rtt = static_cast<double>(ci.smoothed_rtt) / 1e9;
    s.min_rtt = static_cast<double>(ci.min_rtt) / 1e9;
    s.latest_rtt = static_cast<double>(ci.latest_rtt) / 1e9;
    s.rtt_variation = static_cast<double>(ci.rttvar) / 1e9;
    s.rtt_sampled = ci.min_rtt != UINT64_MAX;  // ngtcp2's "no sample yet"
    s.cwnd = ci.cwnd;
    s.bytes_in_flight = ci.bytes_in_flight;
    const std::uint64_t mtu = std::max<std::uint64_t>(1, ngtcp2_conn_get_path_max_tx_udp_payload_size(conn_));
    s.packets_in_flight = (ci.bytes_in_flight + mtu - 1) / mtu;
#if NGTCP2_VERSION_NUM >= 0x011000
    s.packets_lost = ci.pkt_lost;
#else
    std::uint64_t lost = lost_closed_streams_ + counters_.datagrams_lost;
    for (const std::int64_t sid : open_streams_) lost += ngtcp2_conn_get_stream_loss_count(conn_, sid);
    s.packets_lost = lost;
#endif
  } else {
    s.packets_lost = lost_closed_streams_ + counters_.datagrams_lost;
  }
  return s;
}

// The peer's TLS stack refused the handshake (CRYPTO_ERROR, RFC 9001 4.8):
// certificate alerts tell a certificate problem, the rest a failed handshake.
static Error tls_alert_error(std::uint8_t alert) {
  const char *name = gnutls_alert_get_name(static_cast<gnutls_alert_description_t>(alert));
  std::string msg = "TLS handshake refused by peer: alert " + std::to_string(alert);
  if (name != nullptr) msg += std::string(" (") + name + ")";
  switch (alert) {
    case GNUTLS_A_BAD_CERTIFICATE:
    case GNUTLS_A_UNSUPPORTED_CERTIFICATE:
    case GNUTLS_A_CERTIFICATE_REVOKED:
    case GNUTLS_A_CERTIFICATE_EXPIRED:
    case GNUTLS_A_CERTIFICATE_UNKNOWN:
    case GNUTLS_A_UNKNOWN_CA:
    case GNUTLS_A_CERTIFICATE_REQUIRED:
      return {Errc::certificate, msg, CodeSpace::tls_alert, alert};
    default:
      return {Errc::handshake, msg, CodeSpace::tls_alert, alert};
  }
}

void QuicConnection::set_close_error(Error e) {
  if (close_err_.ok()) close_err_ = std::move(e);
}

void QuicConnection::on_packet(const RecvPacket &pkt) {
  // ngtcp2 is never re-entered: a path that delivers packets synchronously
  // from inside a callback of this connection would break it.
  assert(!reentry_.active() && "packet delivered from inside this connection's callbacks");
  if (closed_ || conn_ == nullptr) return;
  if (ngtcp2_conn_in_closing_period(conn_) != 0) {
    // RFC 9000 10.2.1: answer packets in the closing period with the close again.
    send_connection_close();
    return;
  }
  if (ngtcp2_conn_in_draining_period(conn_) != 0) return;
  ++counters_.packets_received;
  counters_.packet_bytes_received += pkt.data.size();
  // Our side of the path is fixed for the connection's life (a client bound to
  // a wildcard keeps it; a server took the packet's destination at accept).
  ngtcp2_path path = make_path(local_, *pkt.remote);
  ngtcp2_pkt_info pi{};
  pi.ecn = pkt.ecn;
  // Held until the end of this function: a close() from inside the app's
  // callbacks runs after the read's outcome has been handled.
  CallbackScope scope(reentry_);
  const int rv = ngtcp2_conn_read_pkt(conn_, &path, &pi, pkt.data.data(), pkt.data.size(), now_ns());
  if (release_tls_ && rv == 0) {
    release_tls_ = false;
    ngtcp2_conn_set_tls_native_handle(conn_, nullptr);
    tls_->release();
  }
  if (rv != 0) {
    UVWT_DEBUG("%s: read_pkt from %s: %s", server_ ? "server" : "client", remote_.to_string().c_str(),
               ngtcp2_strerror(rv));
    on_read_error(rv);
    return;
  }
  // One write pass per receive batch, not per packet: the endpoint calls
  // write_now() once the whole batch is read, so ACKs and data coalesce.
  ep_.touched(this);
}

void QuicConnection::on_read_error(int rv) {
  switch (rv) {
    case NGTCP2_ERR_DRAINING:
      on_peer_close();
      return;
    case NGTCP2_ERR_DROP_CONN:
      enter_closed(Error(Errc::connection, "connection dropped"));
      return;
    default:
      break;
  }
  if (rv == NGTCP2_ERR_CRYPTO && tls_ != nullptr && !tls_->verify_error().ok()) {
    set_close_error(tls_->verify_error());
  } else if (rv == NGTCP2_ERR_CRYPTO) {
    set_close_error(Error(Errc::handshake, std::string("TLS handshake failed: ") + ngtcp2_strerror(rv)));
  } else if (rv == NGTCP2_ERR_CALLBACK_FAILURE && !close_err_.ok()) {
    // the app recorded why
  } else {
    set_close_error(quic_error("read_pkt", rv));
  }
  if (last_error_.error_code == 0) {
    if (rv == NGTCP2_ERR_CRYPTO)
      ngtcp2_ccerr_set_tls_alert(&last_error_, ngtcp2_conn_get_tls_alert(conn_), nullptr, 0);
    else if (rv == NGTCP2_ERR_CALLBACK_FAILURE && close_err_.code != 0)
      ngtcp2_ccerr_set_application_error(&last_error_, close_err_.code, nullptr, 0);
    else
      ngtcp2_ccerr_set_liberr(&last_error_, rv, nullptr, 0);
  }
  send_connection_close();
}

// The peer's CONNECTION_CLOSE as the application sees it.
Error QuicConnection::peer_close_error(const ngtcp2_ccerr &ce) {
  Error e(Errc::connection, "connection closed by peer");
  // H3_NO_ERROR is HTTP/3's "no error": report it as code 0. An application
  // close carries an HTTP/3 code (RFC 9114, 8.1).
  e.code = ce.error_code == kH3NoErrorCode ? 0 : ce.error_code;
  if (ce.type == NGTCP2_CCERR_TYPE_APPLICATION && e.code != 0) e.space = CodeSpace::h3;
  if (ce.type == NGTCP2_CCERR_TYPE_TRANSPORT) {
    e.space = CodeSpace::transport;
    if (ce.error_code == NGTCP2_CONNECTION_REFUSED)
      e = Error(Errc::refused, "connection refused by the server", CodeSpace::transport, ce.error_code);
    else if ((ce.error_code & ~0xffull) == NGTCP2_CRYPTO_ERROR)
      e = tls_alert_error(static_cast<std::uint8_t>(ce.error_code & 0xff));
    else if (ce.error_code != 0)
      e.errc = Errc::protocol;
  }
  if (ce.reasonlen > 0) e.message += ": " + std::string(reinterpret_cast<const char *>(ce.reason), ce.reasonlen);
  return e;
}

void QuicConnection::on_peer_close() {
  if (const ngtcp2_ccerr *ce = ngtcp2_conn_get_ccerr(conn_); ce != nullptr) set_close_error(peer_close_error(*ce));
  if (!server_ && !handshake_completed()) {
    // Nothing to drain for a client whose handshake never finished: its
    // endpoint drops whatever else the server sends, so fail at once instead
    // of after 3 PTO of the initial RTT guess (about 3 s).
    enter_closed(close_err_);
    return;
  }
  start_period_timer();  // the draining period lasts 3 PTO (RFC 9000 10.2.2)
}

void QuicConnection::on_socket_error(int errno_value) {
  if (closed_) return;
  if (!handshake_completed()) {
    enter_closed(Error(Errc::refused, std::string("peer unreachable: ") + std::strerror(errno_value), CodeSpace::system,
                       static_cast<std::uint64_t>(errno_value)));
  }
}

void QuicConnection::schedule_write() {
  if (write_scheduled_ || closed_ || reentry_.active()) return;  // a write follows the read anyway
  write_scheduled_ = true;
  tasks_.post([this] {
    write_scheduled_ = false;
    write_now();
  });
}

void QuicConnection::write_now() {
  if (closed_ || conn_ == nullptr || reentry_.active()) return;
  if (ngtcp2_conn_in_closing_period(conn_) != 0 || ngtcp2_conn_in_draining_period(conn_) != 0) return;
  if (path_->blocked()) {
    path_->wait_writable(this);
    return;
  }
  bool ok = false;
  {
    CallbackScope scope(reentry_);
    ok = write_packets();
  }  // a close asked for by the app while writing ran here
  if (!ok || closed_ || in_closing_or_draining()) return;
  arm_timer();
}

void QuicConnection::arm_timer() {
  if (closed_ || conn_ == nullptr || timer_ == nullptr) return;
  in_period_ = false;
  // Nanoseconds, not milliseconds: pacing gaps and loss timers on a fast
  // path are far below 1 ms (lib/quic/precise_timer.hpp).
  const ngtcp2_tstamp expiry = ngtcp2_conn_get_expiry(conn_);
  if (expiry == UINT64_MAX)
    timer_->stop();
  else
    timer_->start_at(expiry);
}

void QuicConnection::start_period_timer() {
  if (timer_ == nullptr) return;
  const ngtcp2_duration pto = ngtcp2_conn_get_pto(conn_);
  in_period_ = true;
  timer_->start_at(now_ns() + std::max<std::uint64_t>(NGTCP2_MILLISECONDS, 3 * pto));
}

void QuicConnection::on_timer_fired(void *arg) {
  auto *c = static_cast<QuicConnection *>(arg);
  if (c->in_period_)
    c->enter_closed(c->close_err_);
  else
    c->on_timer();
}

void QuicConnection::on_timer() {
  if (closed_) return;
  const int rv = ngtcp2_conn_handle_expiry(conn_, now_ns());
  if (rv != 0) {
    if (ngtcp2_conn_in_draining_period(conn_) != 0 || ngtcp2_conn_in_closing_period(conn_) != 0) {
      enter_closed(close_err_.ok() ? Error() : close_err_);
      return;
    }
    if (rv == NGTCP2_ERR_IDLE_CLOSE) {
      enter_closed(Error(Errc::timeout, handshake_completed() ? "idle timeout" : "handshake timed out"));
    } else if (rv == NGTCP2_ERR_HANDSHAKE_TIMEOUT) {
      enter_closed(Error(Errc::timeout, "handshake timed out"));
    } else {
      set_close_error(quic_error("handle_expiry", rv));
      ngtcp2_ccerr_set_liberr(&last_error_, rv, nullptr, 0);
      send_connection_close();
    }
    return;
  }
  write_now();
}

void QuicConnection::send_connection_close() {
  if (closed_ || conn_ == nullptr) return;
  if (ngtcp2_conn_in_draining_period(conn_) != 0) return;
  const bool already_closing = ngtcp2_conn_in_closing_period(conn_) != 0;
  std::uint8_t *buf = ep_.tx_buffer(NGTCP2_MAX_UDP_PAYLOAD_SIZE);
  ngtcp2_path_storage ps;
  ngtcp2_path_storage_zero(&ps);
  ngtcp2_pkt_info pi{};
  const ngtcp2_ssize n = ngtcp2_conn_write_connection_close(conn_, &ps.path, &pi, buf, NGTCP2_MAX_UDP_PAYLOAD_SIZE,
                                                            &last_error_, now_ns());
  if (n > 0) {
    ++counters_.packets_sent;
    path_->send(local_, remote_, pi.ecn, buf, static_cast<std::size_t>(n), static_cast<std::size_t>(n));
  }
  if (n < 0 || !handshake_completed() || !linger_) {
    // Nothing to wait for: no closing period before the handshake finished,
    // nor when the endpoint itself is going away.
    enter_closed(close_err_);
    return;
  }
  // Stay in the closing period for 3 PTO so late packets get the close again
  // (the period starts once: repeats for late packets do not extend it).
  if (!already_closing) start_period_timer();
}

void QuicConnection::close(std::uint64_t app_code, const std::string &reason) {
  if (closed_ || conn_ == nullptr) return;
  if (reentry_.active()) {
    // Inside ngtcp2: finish the current call first.
    reentry_.run_or_defer([this, app_code, reason] { close(app_code, reason); });
    return;
  }
  if (in_closing_or_draining()) {
    if (!linger_) enter_closed(close_err_);  // no need to wait out the period
    return;
  }
  ngtcp2_ccerr_set_application_error(&last_error_, app_code, reinterpret_cast<const std::uint8_t *>(reason.data()),
                                     reason.size());
  send_connection_close();
}

void QuicConnection::abandon(const Error &err) { enter_closed(err); }

void QuicConnection::enter_closed(Error err) {
  if (closed_) return;
  closed_ = true;
  UVWT_DEBUG("%s: connection with %s closed: %s", server_ ? "server" : "client", remote_.to_string().c_str(),
             err ? err.to_string().c_str() : "ok");
  if (timer_ != nullptr) timer_->stop();
  set_close_error(std::move(err));
  app_.on_quic_closed(close_err_);
  if (on_finished) {
    auto fin = std::move(on_finished);
    fin();
  }
}

void QuicConnection::close_handles(std::function<void()> cb) {
  // The timer shares its loop's handle: dropping it is synchronous, so only
  // the callback needs deferring.
  timer_.reset();
  ep_.defer(std::move(cb));
}

int QuicConnection::open_bidi_stream(std::int64_t &sid) {
  const int rv = ngtcp2_conn_open_bidi_stream(conn_, &sid, nullptr);
  if (rv == 0) open_streams_.insert(sid);
  return rv;
}
int QuicConnection::open_uni_stream(std::int64_t &sid) {
  const int rv = ngtcp2_conn_open_uni_stream(conn_, &sid, nullptr);
  if (rv == 0) open_streams_.insert(sid);
  return rv;
}

void QuicConnection::shutdown_stream_read(std::int64_t sid, std::uint64_t code) {
  if (conn_ != nullptr && !closed_) ngtcp2_conn_shutdown_stream_read(conn_, 0, sid, code);
  schedule_write();
}

void QuicConnection::shutdown_stream_write(std::int64_t sid, std::uint64_t code) {
  if (conn_ != nullptr && !closed_) ngtcp2_conn_shutdown_stream_write(conn_, 0, sid, code);
  schedule_write();
}

void QuicConnection::extend_stream_offset(std::int64_t sid, std::uint64_t n) {
  if (conn_ == nullptr || closed_ || n == 0) return;
  ngtcp2_conn_extend_max_stream_offset(conn_, sid, n);
  ngtcp2_conn_extend_max_offset(conn_, n);
  schedule_write();
}

void QuicConnection::extend_max_streams(bool bidi, std::uint64_t n) {
  if (conn_ == nullptr || closed_) return;
  if (bidi)
    ngtcp2_conn_extend_max_streams_bidi(conn_, n);
  else
    ngtcp2_conn_extend_max_streams_uni(conn_, n);
  schedule_write();
}

void QuicConnection::resume_stream(std::int64_t) { schedule_write(); }

void QuicConnection::ping() {
  if (conn_ == nullptr || closed_ || !handshake_completed() || in_closing_or_draining()) return;
  if (reentry_.active()) {
    reentry_.run_or_defer([this] { ping(); });
    return;
  }
  // ngtcp2 1.x has no "send a PING now": it adds one when the keep-alive
  // timer has run out at the moment a packet is written, so expire it for
  // this one write and then put the real setting back.
  ngtcp2_conn_set_keep_alive_timeout(conn_, 1);
  ++counters_.pings_sent;
  write_now();
  ngtcp2_conn_set_keep_alive_timeout(conn_, keep_alive_);
}

}  // namespace uvwt::detail
