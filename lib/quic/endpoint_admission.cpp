// The server endpoint's answer to an Initial for an unknown connection:
// accept it, send a Retry (address validation, RFC 9000 8.1.2), or refuse it,
// within the handshake limits; and the rate limit on every answer sent
// without connection state.
#include <ngtcp2/ngtcp2_crypto.h>

#include <gnutls/crypto.h>

#include "common/clock.hpp"
#include "common/log.hpp"
#include "quic/endpoint.hpp"

namespace uvwt::detail {

namespace {
constexpr std::size_t kMaxStatelessPerBatch = 64;
}  // namespace

void Endpoint::set_admission(const HandshakeLimitsConfig &limits, std::uint32_t stateless_per_second,
                             std::uint32_t stateless_burst) {
  limits_.configure(limits);
  // A rate of 0 means no stateless answers at all, not a one-off burst.
  stateless_bucket_.configure(stateless_per_second, stateless_per_second == 0 ? 0 : stateless_burst);
}

bool Endpoint::stateless_allowed() {
  // Over time the bucket; within one receive batch also a fixed cap, which
  // bounds the work one burst of garbage causes whatever the bucket holds.
  if (++stateless_this_tick_ <= kMaxStatelessPerBatch && stateless_bucket_.take(now_ns())) return true;
  ++counters_.stateless_rate_limited;
  return false;
}

void Endpoint::admit_initial(UdpSocket &sock, const RecvPacket &pkt, const ngtcp2_pkt_hd &hd) {
  // 0-RTT that overtook its Initial is dropped: the client retransmits it
  // (RFC 9000 5.2.2 lets a server discard it), and only an Initial may
  // create state or draw a Retry.
  if (hd.type != NGTCP2_PKT_INITIAL) return;
  ngtcp2_cid odcid;
  const ngtcp2_cid *original_dcid = nullptr;
  if (hd.tokenlen > 0 && hd.token[0] == NGTCP2_CRYPTO_TOKEN_MAGIC_RETRY2) {
    const int rv = ngtcp2_crypto_verify_retry_token2(&odcid, hd.token, hd.tokenlen, secret_.data(), secret_.size(),
                                                     hd.version, pkt.remote->sa(), pkt.remote->len, &hd.dcid,
                                                     limits_.config().retry_token_lifetime_ns, now_ns());
    if (rv != 0) {
      ++counters_.invalid_tokens;
      refuse_bad_token(sock, pkt, hd, rv);
      return;
    }
    original_dcid = &odcid;
  }
  switch (limits_.judge(*pkt.remote, original_dcid != nullptr)) {
    case HandshakeLimits::Verdict::accept:
      acceptor_->accept_initial(sock, pkt, hd, original_dcid);
      return;
    case HandshakeLimits::Verdict::retry:
      send_retry(sock, pkt, hd);
      return;
    case HandshakeLimits::Verdict::refuse:
      ++counters_.handshakes_refused;
      refuse_initial(sock, pkt, hd, "too many handshakes in progress");
      return;
  }
}

void Endpoint::refuse_bad_token(UdpSocket &sock, const RecvPacket &pkt, const ngtcp2_pkt_hd &hd, int verdict) {
  // A token that does not even decrypt is forged: dropped unanswered, so
  // garbage draws nothing. One of ours that expired (or names another
  // address) means a client that took our Retry and will take no second one
  // (RFC 9000 17.2.5.2): RFC 9000 8.1.2, "the server SHOULD immediately
  // close (Section 10.2) the connection with an INVALID_TOKEN error" rather
  // than let it time out.
  if (verdict != NGTCP2_CRYPTO_ERR_VERIFY_TOKEN) {
    UVWT_DEBUG("Initial from %s with a forged Retry token dropped", pkt.remote->to_string().c_str());
    return;
  }
  ++counters_.expired_tokens;
  refuse_initial(sock, pkt, hd, "Retry token expired or not for this address", NGTCP2_INVALID_TOKEN);
}

// The token binds the client's address and the connection id of its first
// Initial, keyed by the endpoint's static secret: the server keeps nothing.
void Endpoint::send_retry(UdpSocket &sock, const RecvPacket &pkt, const ngtcp2_pkt_hd &hd) {
  ngtcp2_cid scid;
  scid.datalen = kCidLen;
  gnutls_rnd(GNUTLS_RND_NONCE, scid.data, scid.datalen);
  // The "2" token tells a forged token from an expired one on return.
  std::uint8_t token[NGTCP2_CRYPTO_MAX_RETRY_TOKENLEN2];
  const ngtcp2_ssize tokenlen = ngtcp2_crypto_generate_retry_token2(
      token, secret_.data(), secret_.size(), hd.version, pkt.remote->sa(), pkt.remote->len, &scid, &hd.dcid, now_ns());
  if (tokenlen < 0) return;
  std::uint8_t buf[NGTCP2_MAX_UDP_PAYLOAD_SIZE];
  const ngtcp2_ssize n = ngtcp2_crypto_write_retry(buf, sizeof buf, hd.version, &hd.scid, &scid, &hd.dcid, token,
                                                   static_cast<std::size_t>(tokenlen));
  if (n <= 0) return;
  const auto r = sock.send(*pkt.remote, pkt.local, 0, std::span<const std::uint8_t>(buf, static_cast<std::size_t>(n)),
                           static_cast<std::size_t>(n));
  if (r.ok()) ++counters_.retries_sent;
}

}  // namespace uvwt::detail
