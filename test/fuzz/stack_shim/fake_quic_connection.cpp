// The scripted QUIC side of the fuzz-h3_connection target (see
// stack_shim/quic/quic_connection.hpp): records what the HTTP/3 layer asks of
// the transport and aborts on a call ngtcp2 would refuse or that breaks the
// contract between the layers.

#include "quic/quic_connection.hpp"

#include <ngtcp2/ngtcp2.h>

#include "fuzz_support.hpp"
#include "h3/wt_codes.hpp"

namespace uvwt::detail {

namespace {
// A connection error the HTTP/3 layer may send: an HTTP/3 or QPACK code
// (RFC 9114 section 8.1, RFC 9204 section 6) or a WebTransport one.
bool valid_close_code(std::uint64_t c) {
  return (c >= kH3NoError && c <= kH3VersionFallback) || (c >= 0x200 && c <= 0x202) || c == kH3DatagramError ||
         c == kWtBufferedStreamRejected || c == kWtSessionGone || c == kWtFlowControlError || c == kWtAlpnError ||
         c == kWtRequirementsNotMet;
}
}  // namespace

int QuicConnection::open_bidi_stream(std::int64_t &sid) {
  if (opened_bidi_ >= local_bidi_limit) return NGTCP2_ERR_STREAM_ID_BLOCKED;
  sid = static_cast<std::int64_t>(opened_bidi_++ * 4 + (server_ ? 1 : 0));
  streams_[sid];
  return 0;
}

int QuicConnection::open_uni_stream(std::int64_t &sid) {
  if (opened_uni_ >= local_uni_limit) return NGTCP2_ERR_STREAM_ID_BLOCKED;
  sid = static_cast<std::int64_t>(opened_uni_++ * 4 + (server_ ? 3 : 2));
  streams_[sid];
  return 0;
}

void QuicConnection::shutdown_stream_read(std::int64_t sid, std::uint64_t code) {
  FUZZ_CHECK(sid >= 0);
  (void)code;
  if (auto it = streams_.find(sid); it != streams_.end()) it->second.read_shut = true;
}

void QuicConnection::shutdown_stream_write(std::int64_t sid, std::uint64_t code) {
  FUZZ_CHECK(sid >= 0);
  (void)code;
  if (auto it = streams_.find(sid); it != streams_.end()) it->second.write_shut = true;
}

void QuicConnection::extend_stream_offset(std::int64_t sid, std::uint64_t n) {
  auto it = streams_.find(sid);
  FUZZ_CHECK(it != streams_.end());
  // Credit returned beyond what arrived would let the peer send without limit.
  it->second.credited += n;
  FUZZ_CHECK(it->second.credited <= it->second.received);
}

void QuicConnection::extend_max_streams(bool bidi, std::uint64_t n) {
  // Only closed peer streams are replaced by new stream credit.
  max_streams_extended[bidi ? 0 : 1] += n;
  FUZZ_CHECK(max_streams_extended[bidi ? 0 : 1] <= peer_streams_closed[bidi ? 0 : 1]);
}

void QuicConnection::close(std::uint64_t app_code, const std::string &reason) {
  (void)reason;
  FUZZ_CHECK(valid_close_code(app_code));
  if (close_requested_) return;  // the first close wins, as in QuicConnection
  close_requested_ = true;
  close_code_ = app_code;
}

}  // namespace uvwt::detail
