// CONNECT-UDP request streams (RFC 9298) on H3Connection: kept apart from
// the WebTransport session code; the HTTP/3 callbacks call the tunnel_* hooks
// first and fall through to WebTransport when a stream is not a tunnel.

#include <cstring>

#include "common/log.hpp"
#include "h3/connect_udp.hpp"
#include "h3/datagram.hpp"
#include "h3/h3_connection.hpp"
#include "h3/wt_codes.hpp"
#include "quic/quic_connection.hpp"

namespace uvwt::detail {

namespace {

nghttp3_nv nv(std::string_view name, std::string_view value) {
  nghttp3_nv n{};
  n.name = reinterpret_cast<const std::uint8_t *>(name.data());
  n.namelen = name.size();
  n.value = reinterpret_cast<const std::uint8_t *>(value.data());
  n.valuelen = value.size();
  return n;
}
}  // namespace

Error H3Connection::open_udp_tunnel(const std::string &authority, const std::string &path, const Headers &headers,
                                    std::weak_ptr<UdpTunnelHandler> handler, std::int64_t &sid) {
  if (server_) return {Errc::configuration, "servers do not open CONNECT-UDP tunnels"};
  if (!h3_ready_ || closed_) return {Errc::connection, "HTTP/3 connection not ready"};
  const PeerSettings &ps = peer_ctrl_.settings();
  // Extended CONNECT needs SETTINGS_ENABLE_CONNECT_PROTOCOL (RFC 9220 §3) and
  // HTTP Datagrams need SETTINGS_H3_DATAGRAM plus the QUIC transport
  // parameter max_datagram_frame_size (RFC 9297 §2.1.1, §3).
  if (!ps.enable_connect_protocol || !ps.h3_datagram || quic_->max_datagram_payload() == 0)
    return {Errc::unsupported,
            "proxy does not offer extended CONNECT with HTTP Datagrams (SETTINGS_ENABLE_CONNECT_PROTOCOL, "
            "SETTINGS_H3_DATAGRAM, max_datagram_frame_size)"};
  if (goaway_ != 0) return {Errc::connection, "proxy is going away (GOAWAY)"};
  if (quic_->open_bidi_stream(sid) != 0) return {Errc::flow_control, "no stream credit for CONNECT-UDP"};
  routes_.emplace(sid, StreamRoute(true)).first->second.route = Route::http3;
  requests_[sid];
  tunnels_[sid].handler = std::move(handler);
  // RFC 9298 §3.4: extended CONNECT with ":protocol connect-udp", ":scheme",
  // ":authority" and ":path" (the expanded template), and
  // "capsule-protocol: ?1" (RFC 9297 §3.4) since the stream uses capsules.
  std::vector<nghttp3_nv> nva{nv(":method", "CONNECT"), nv(":protocol", kConnectUdpProtocol),
                              nv(":scheme", "https"),   nv(":authority", authority),
                              nv(":path", path),        nv("capsule-protocol", "?1")};
  for (const auto &[k, v] : headers) nva.push_back(nv(k, v));
  if (const int rv = nghttp3_conn_submit_request(h3w(), sid, nva.data(), nva.size(), &data_reader(), nullptr);
      rv != 0) {
    tunnels_.erase(sid);
    quic_->shutdown_stream_write(sid, kH3RequestCancelled);
    return {Errc::protocol, std::string("cannot submit CONNECT-UDP: ") + nghttp3_strerror(rv)};
  }
  quic_->schedule_write();
  return {};
}

bool H3Connection::tunnel_headers(std::int64_t sid, RequestState &rs) {
  if (server_) {
    if (rs.method != "CONNECT" || rs.protocol != kConnectUdpProtocol || !udp_acceptor_) return false;
    UdpTunnelRequest req;
    req.stream_id = sid;
    req.authority = rs.authority;
    req.path = rs.path;
    req.headers = rs.headers;
    req.client = remote_;
    for (const auto &[k, v] : rs.headers)
      if (k == "capsule-protocol") req.capsule_protocol = capsule_protocol_true(v);
    tunnels_[sid];
    owner_->on_activity();
    udp_acceptor_(req);
    return true;
  }
  auto it = tunnels_.find(sid);
  if (it == tunnels_.end()) return false;
  UVWT_DEBUG("CONNECT-UDP stream %lld: HTTP %d", static_cast<long long>(sid), rs.status);
  if (rs.status >= 100 && rs.status < 200) return true;  // interim
  auto h = it->second.handler.lock();
  if (rs.status >= 200 && rs.status < 300) {
    it->second.open = true;
  } else {
    // RFC 9298 §3.5: anything but 2xx means no tunnel; the request ends here.
    tunnels_.erase(it);
    quic_->shutdown_stream_write(sid, kH3NoError);
  }
  if (h) h->on_tunnel_response(rs.status, rs.headers);
  return true;
}

Error H3Connection::accept_udp_tunnel(std::int64_t sid, std::weak_ptr<UdpTunnelHandler> handler) {
  auto it = tunnels_.find(sid);
  if (it == tunnels_.end() || it->second.open || closed_) return {Errc::stream, "no CONNECT-UDP request waits on it"};
  // RFC 9298 §3.5: a 2xx response, with "capsule-protocol: ?1" (RFC 9297 §3.4).
  const nghttp3_nv nva[] = {nv(":status", "200"), nv("capsule-protocol", "?1")};
  if (const int rv = nghttp3_conn_submit_response(h3w(), sid, nva, 2, &data_reader()); rv != 0) {
    tunnels_.erase(it);
    return {Errc::protocol, std::string("cannot submit response: ") + nghttp3_strerror(rv)};
  }
  it->second.open = true;
  it->second.handler = std::move(handler);
  quic_->schedule_write();
  return {};
}

void H3Connection::refuse_udp_tunnel(std::int64_t sid, int status, const Headers &headers) {
  auto it = tunnels_.find(sid);
  if (it == tunnels_.end() || it->second.open || closed_) return;
  tunnels_.erase(it);
  const std::string st = std::to_string(status);
  std::vector<nghttp3_nv> nva{nv(":status", st)};
  for (const auto &[k, v] : headers) nva.push_back(nv(k, v));
  // No body reader: the response ends the stream (FIN).
  nghttp3_conn_submit_response(h3w(), sid, nva.data(), nva.size(), nullptr);
  quic_->schedule_write();
}

Error H3Connection::send_udp_datagram(std::int64_t sid, std::span<const std::uint8_t> udp_payload) {
  auto it = tunnels_.find(sid);
  if (it == tunnels_.end() || !it->second.open) return {Errc::closed, "tunnel is not open"};
  const std::size_t prefix = datagram_prefix_size(static_cast<std::uint64_t>(sid)) + 1;
  if (prefix + udp_payload.size() > kDatagramSlot) return {Errc::datagram, "UDP payload too large for the tunnel"};
  // Straight into the ring: quarter stream id (RFC 9297 §2.1), context id 0
  // and the UDP payload (RFC 9298 §5), no allocation per datagram.
  std::uint8_t *p = dgram_out_.reserve();
  if (p == nullptr) return {Errc::flow_control, "datagram send queue full"};
  std::size_t n = encode_datagram_prefix(static_cast<std::uint64_t>(sid), p);
  p[n++] = kUdpPayloadContext;
  std::memcpy(p + n, udp_payload.data(), udp_payload.size());
  dgram_out_.commit(n + udp_payload.size());
  quic_->schedule_write();
  return {};
}

std::size_t H3Connection::max_udp_payload(std::int64_t sid) const {
  if (quic_ == nullptr) return 0;
  const std::size_t q = quic_->max_datagram_payload();
  const std::size_t prefix = datagram_prefix_size(static_cast<std::uint64_t>(sid)) + 1;
  return q > prefix ? std::min(q, kDatagramSlot) - prefix : 0;
}

bool H3Connection::tunnel_datagram(SessionId id, std::span<const std::uint8_t> payload) {
  auto it = tunnels_.find(static_cast<std::int64_t>(id));
  if (it == tunnels_.end()) return false;
  const auto udp = udp_payload_of(payload);
  auto h = it->second.handler.lock();
  if (!it->second.open || !udp || !h) {
    // Before the 2xx, or a context nobody registered (RFC 9298 §4): dropped.
    ++dgram_dropped_;
    return true;
  }
  h->on_tunnel_datagram(*udp);
  return true;
}

bool H3Connection::tunnel_fin(std::int64_t sid) {
  auto it = tunnels_.find(sid);
  if (it == tunnels_.end()) return false;
  // The peer ended its side: the tunnel is over (RFC 9298 §3); end ours too.
  auto h = it->second.handler.lock();
  tunnels_.erase(it);
  nghttp3_conn_resume_stream(h3w(), sid);
  quic_->schedule_write();
  if (h) h->on_tunnel_closed(Error(Errc::connection, "tunnel closed by the peer"));
  return true;
}

bool H3Connection::tunnel_read_data(std::int64_t sid, std::uint32_t *pflags) {
  (void)pflags;
  // An open tunnel sends no body (no capsules of its own): it waits, and
  // once it has left tunnels_ the regular reader ends the stream.
  return tunnels_.count(sid) != 0;
}

bool H3Connection::tunnel_stream_closed(std::int64_t sid, bool has_code, std::uint64_t code) {
  auto it = tunnels_.find(sid);
  if (it == tunnels_.end()) return false;
  auto h = it->second.handler.lock();
  tunnels_.erase(it);
  if (h)
    h->on_tunnel_closed(has_code && code != kH3NoError
                            ? Error(Errc::stream, "tunnel stream reset by the peer", CodeSpace::h3, code)
                            : Error(Errc::connection, "tunnel stream closed"));
  return true;
}

void H3Connection::close_udp_tunnel(std::int64_t sid, bool abort) {
  auto it = tunnels_.find(sid);
  if (it == tunnels_.end() || closed_) return;
  const bool open = it->second.open;
  tunnels_.erase(it);
  if (abort || (server_ && !open)) {
    quic_->shutdown_stream_read(sid, kH3RequestCancelled);
    quic_->shutdown_stream_write(sid, kH3RequestCancelled);
    return;
  }
  // The reader now says EOF: FIN. The peer answers with its own FIN
  // (tunnel_fin on its side), which closes the stream.
  nghttp3_conn_resume_stream(h3w(), sid);
  quic_->schedule_write();
}

void H3Connection::close_all_tunnels(const Error &why) {
  auto all = std::move(tunnels_);
  tunnels_.clear();
  for (auto &[sid, t] : all)
    if (auto h = t.handler.lock()) h->on_tunnel_closed(why);
}

}  // namespace uvwt::detail
