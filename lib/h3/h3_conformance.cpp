// The rules a strict peer checks that need the HTTP/3 layer's view of a
// stream: stream errors on request streams, header section size, waiting for
// the client's SETTINGS, requests uvwt does not serve, protocol negotiation.
// Each cites its rule; docs/protocol.md "What uvwt does" sums them up.

#include <algorithm>

#include "common/log.hpp"
#include "h3/h3_connection.hpp"
#include "h3/wt_codes.hpp"
#include "quic/quic_connection.hpp"
#include "session/session_impl.hpp"

namespace uvwt::detail {

namespace {
// HEADERS frame, QPACK field section with no dynamic table reference:
// ":status" as a literal with a static name reference (index 24) and a
// 3-digit literal value (RFC 9204, 4.5.4).
std::vector<std::uint8_t> status_only_headers(int status) {
  const std::string st = std::to_string(status);
  return {0x01,
          0x08,
          0x00,
          0x00,
          0x5f,
          0x09,
          0x03,
          static_cast<std::uint8_t>(st[0]),
          static_cast<std::uint8_t>(st[1]),
          static_cast<std::uint8_t>(st[2])};
}
}  // namespace

void H3Connection::abort_request_stream(std::int64_t sid, std::uint64_t code) {
  if (quic_ == nullptr || closed_) return;
  if (h3_ != nullptr) {
    nghttp3_conn_shutdown_stream_read(h3w(), sid);
    nghttp3_conn_shutdown_stream_write(h3w(), sid);
  }
  // RFC 9114 section 8: a stream error aborts both directions with the code.
  quic_->shutdown_stream_read(sid, code);
  quic_->shutdown_stream_write(sid, code);
}

bool H3Connection::guard_header_size(std::int64_t sid, StreamRoute &r, const std::uint8_t *data, std::size_t len) {
  if (r.header_guard.feed(std::span<const std::uint8_t>(data, len), cfg_.max_field_section_size)) return true;
  quic_->extend_stream_offset(sid, len);
  return false;
}

bool H3Connection::count_field(RequestState &rs, std::size_t name_len, std::size_t value_len) {
  // RFC 9114 4.2.2: name + value + 32 bytes per field.
  rs.field_bytes += name_len + value_len + 32;
  if (rs.field_bytes > cfg_.max_field_section_size) rs.too_large = true;
  return !rs.too_large;
}

void H3Connection::refuse_oversized(std::int64_t sid, bool nghttp3_has_headers) {
  owner_->on_error_counted();
  UVWT_WARN("%s: header section on stream %lld over max_field_section_size (%llu)", server_ ? "server" : "client",
            static_cast<long long>(sid), static_cast<unsigned long long>(cfg_.max_field_section_size));
  if (auto rit = routes_.find(sid); rit != routes_.end()) rit->second.refused = true;
  std::shared_ptr<SessionImpl> s;
  if (auto it = requests_.find(sid); it != requests_.end()) s = it->second.session;
  if (!server_ || s) {
    // RFC 9114 4.2.2: "A client can discard responses that it cannot
    // process"; trailers over the limit end an established session alike.
    if (s)
      s->fail(Error(Errc::protocol, "header section over max_field_section_size", CodeSpace::h3, kH3ExcessiveLoad));
    abort_request_stream(sid, kH3ExcessiveLoad);
    return;
  }
  // RFC 9114 4.2.2: a server "can send an HTTP 431"; 4.1: it stops reading
  // the rest of the request with H3_NO_ERROR and ends its response cleanly.
  quic_->shutdown_stream_read(sid, kH3NoError);
  if (nghttp3_has_headers)
    submit_simple_response(sid, 431, nullptr);  // nghttp3 decoded the section: it answers
  else
    raw_.queue(sid, status_only_headers(431), true);
  remember_gone(static_cast<SessionId>(sid));
  drop_early(static_cast<SessionId>(sid), kWtSessionGone);
  quic_->schedule_write();
}

bool H3Connection::settings_known_for(std::int64_t sid, RequestState &rs) {
  // draft-ietf-webtrans-http3-13..16 section 7.1 (3.1 in -16): "the server
  // MUST NOT process any incoming WebTransport requests until the client's
  // SETTINGS have been received" - they decide the dialect and whether
  // datagrams may be sent (RFC 9297 2.1.1).
  if (peer_ctrl_.settings_received()) return true;
  rs.waiting_settings = true;
  parked_connects_.push_back(sid);
  if (!settings_timer_) {
    settings_timer_ = std::make_unique<Timer>(deferred_->loop());
    settings_timer_->start(static_cast<std::uint64_t>(cfg_.peer_settings_timeout.count()),
                           [this, alive = std::weak_ptr<bool>(alive_)] {
                             if (alive.expired()) return;
                             // Not processed at all: H3_REQUEST_REJECTED (RFC 9114 8.1) lets the client retry.
                             auto parked = std::move(parked_connects_);
                             parked_connects_.clear();
                             for (const auto id : parked) {
                               auto it = requests_.find(id);
                               if (it == requests_.end() || !it->second.waiting_settings) continue;
                               it->second.waiting_settings = false;
                               abort_request_stream(id, kH3RequestRejected);
                               remember_gone(static_cast<SessionId>(id));
                               drop_early(static_cast<SessionId>(id), kWtSessionGone);
                             }
                             if (quic_ != nullptr) quic_->schedule_write();
                           });
  }
  return false;
}

void H3Connection::on_peer_settings() {
  settings_timer_.reset();
  auto parked = std::move(parked_connects_);
  parked_connects_.clear();
  for (const auto sid : parked) {
    auto it = requests_.find(sid);
    if (it == requests_.end() || !it->second.waiting_settings) continue;
    it->second.waiting_settings = false;
    handle_request_headers(sid, it->second);
  }
}

bool H3Connection::refuse_by_settings(std::int64_t sid, const RequestState &rs, bool draft02_header) {
  const PeerSettings &ps = peer_ctrl_.settings();
  if (rs.protocol == "webtransport-h3" && !ps.h3_datagram) {
    // draft-ietf-webtrans-http3-15/16 section 3.1: a client must send
    // SETTINGS_H3_DATAGRAM=1; otherwise its sessions are malformed (RFC 9114
    // 4.1.2: stream error H3_MESSAGE_ERROR).
    abort_request_stream(sid, kH3MessageError);
  } else if (rs.protocol == "webtransport" && !draft02_header && ps.enable_webtransport_draft02 == 0 &&
             ps.wt_max_sessions_draft07 == 0 && ps.wt_max_sessions_draft13 == 0) {
    // draft-15/16 section 2.1.2: over HTTP/3, "webtransport" names the
    // capsule-based protocol of draft-ietf-webtrans-http2 unless the client
    // speaks an older generation (its SETTINGS or the draft-02 header say
    // so). uvwt does not implement that variant: 501 rather than a 200 whose
    // capsules would be dropped (RFC 9110 15.6.2).
    submit_simple_response(sid, 501, nullptr);
  } else {
    return false;
  }
  owner_->on_error_counted();
  remember_gone(static_cast<SessionId>(sid));
  drop_early(static_cast<SessionId>(sid), kWtSessionGone);
  return true;
}

bool H3Connection::check_wt_protocol(std::int64_t sid, RequestState &rs, Dialect d) {
  if (rs.wt_protocol.empty() && !rs.wt_protocol_bad) return true;
  if (!rs.wt_protocol_bad && std::find(rs.offered.begin(), rs.offered.end(), rs.wt_protocol) != rs.offered.end())
    return true;
  if (d < Dialect::draft15) {
    // draft-13/14 define no answer to a bad choice: the field is ignored.
    rs.wt_protocol.clear();
    return true;
  }
  // draft-15/16 section 3.3: a WT-Protocol value the client did not offer
  // (or one that is not an sf-string) closes the session with WT_ALPN_ERROR.
  const std::string why = rs.wt_protocol_bad ? "wt-protocol is not a string"
                                             : "server chose wt-protocol '" + rs.wt_protocol + "' not offered";
  if (rs.session) rs.session->fail(Error(Errc::protocol, why, CodeSpace::webtransport, kWtAlpnError));
  owner_->on_error_counted();
  abort_request_stream(sid, kWtAlpnError);
  return false;
}

}  // namespace uvwt::detail
