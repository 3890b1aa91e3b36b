#include "quic/session_tickets.hpp"

#include "common/log.hpp"
#include "quic/quic_connection.hpp"
#include "quic/ticket_cache.hpp"
#include "quic/tls_session.hpp"

#include <ngtcp2/ngtcp2.h>

#include <array>

namespace uvwt::detail {

namespace {

void offer_ticket(QuicConnection &c, ResumptionTicket t, bool early_data) {
  TlsSession &tls = *c.tls();
  // 0-RTT needs the server's earlier transport parameters (RFC 9000, 7.4.1).
  bool early = early_data && t.early_data && !t.transport_params.empty();
  if (early && ngtcp2_conn_decode_and_set_0rtt_transport_params(c.native(), t.transport_params.data(),
                                                                t.transport_params.size()) != 0) {
    UVWT_DEBUG("remembered transport parameters unusable: resuming without 0-RTT");
    early = false;
  }
  if (Error e = tls.set_resumption_data(t.tls_data, early)) UVWT_DEBUG("ticket not used: %s", e.message.c_str());
}

// The server's transport parameters as 0-RTT must respect them, kept with
// the ticket. Encoded when the ticket arrives: the handshake is complete,
// so the peer's parameters are known and authenticated.
Bytes zero_rtt_params(ngtcp2_conn *conn) {
  std::array<std::uint8_t, 256> buf{};
  const ngtcp2_ssize n = ngtcp2_conn_encode_0rtt_transport_params(conn, buf.data(), buf.size());
  if (n <= 0) return {};
  return Bytes(buf.data(), buf.data() + n);
}

}  // namespace

void use_ticket_cache(QuicConnection &c, const std::shared_ptr<TicketCache> &cache, const std::string &authority,
                      bool early_data) {
  TlsSession *tls = c.tls();
  if (tls == nullptr || tls->is_server()) return;
  ngtcp2_conn *conn = c.native();
  auto impl = std::dynamic_pointer_cast<TicketCacheImpl>(cache);
  if (impl) {
    if (auto t = impl->take(authority)) offer_ticket(c, std::move(*t), early_data);
    std::weak_ptr<TicketCacheImpl> weak = impl;
    // The handlers live in the TlsSession, which the connection (and so
    // `conn`) outlives.
    tls->set_ticket_handler([weak, authority, conn](TlsSession::IssuedTicket issued) {
      auto cache = weak.lock();
      if (!cache) return;
      ResumptionTicket t;
      t.tls_data = std::move(issued.data);
      t.transport_params = zero_rtt_params(conn);
      t.early_data = issued.early_data;
      t.expires = cache->now() + std::chrono::seconds(issued.lifetime_s);
      cache->store(authority, std::move(t));
    });
  }
  if (!tls->early_data_offered()) return;
  // ngtcp2 must learn of a refusal to retire what it sent in 0-RTT (ngtcp2.h,
  // ngtcp2_conn_tls_early_data_rejected); its GnuTLS helper does not tell it.
  tls->set_early_data_handler([conn](bool accepted) {
    if (!accepted) ngtcp2_conn_tls_early_data_rejected(conn);
  });
}

}  // namespace uvwt::detail
