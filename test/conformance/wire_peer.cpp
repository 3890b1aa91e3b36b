#include "conformance/wire_peer.hpp"

#include <nghttp3/nghttp3.h>

#include <algorithm>
#include <cstring>

#include "quic/quic_connection.hpp"
#include "quic/tls_context.hpp"
#include "support/fixture.hpp"

namespace uvwt::test {

using detail::QuicConnection;
using detail::SockAddr;

// ------------------------------------------------------------------ builders

WireBytes wire_varint(std::uint64_t v) {
  const std::size_t len = v < 64 ? 1 : v < 16384 ? 2 : v < (1ull << 30) ? 4 : 8;
  return wire_varint_len(v, len);
}

WireBytes wire_varint_len(std::uint64_t v, std::size_t len) {
  WireBytes out(len);
  for (std::size_t i = len; i-- > 0;) {
    out[i] = static_cast<std::uint8_t>(v);
    v >>= 8;
  }
  const std::uint8_t prefix = len == 1 ? 0x00 : len == 2 ? 0x40 : len == 4 ? 0x80 : 0xc0;
  out[0] = static_cast<std::uint8_t>((out[0] & 0x3f) | prefix);
  return out;
}

WireBytes wire_cat(std::initializer_list<std::span<const std::uint8_t>> parts) {
  WireBytes out;
  for (const auto &p : parts) out.insert(out.end(), p.begin(), p.end());
  return out;
}

WireBytes wire_bytes(std::string_view s) { return WireBytes(s.begin(), s.end()); }

WireBytes wire_frame(std::uint64_t type, std::span<const std::uint8_t> payload) {
  return wire_cat({wire_varint(type), wire_varint(payload.size()), payload});
}

WireBytes wire_settings_payload(const std::vector<WireSetting> &settings) {
  WireBytes p;
  for (const auto &s : settings) {
    const auto id = wire_varint(s.id), v = wire_varint(s.value);
    p.insert(p.end(), id.begin(), id.end());
    p.insert(p.end(), v.begin(), v.end());
  }
  return p;
}

WireBytes wire_control_stream(const std::vector<WireSetting> &settings) {
  return wire_cat({wire_varint(0x00), wire_frame(0x04, wire_settings_payload(settings))});
}

WireBytes wire_data_frame(std::span<const std::uint8_t> payload) { return wire_frame(0x00, payload); }

namespace {
// RFC 7541, 5.1 prefixed integer (QPACK uses the same, RFC 9204 4.1.1).
void put_prefixed(WireBytes &out, std::uint8_t first_bits, unsigned prefix, std::uint64_t v) {
  const std::uint64_t max = (1u << prefix) - 1;
  if (v < max) {
    out.push_back(static_cast<std::uint8_t>(first_bits | v));
    return;
  }
  out.push_back(static_cast<std::uint8_t>(first_bits | max));
  v -= max;
  while (v >= 128) {
    out.push_back(static_cast<std::uint8_t>((v & 0x7f) | 0x80));
    v >>= 7;
  }
  out.push_back(static_cast<std::uint8_t>(v));
}
}  // namespace

WireBytes wire_field_section(const WireFields &fields) {
  WireBytes out = {0x00, 0x00};  // required insert count 0, delta base 0
  for (const auto &[name, value] : fields) {
    put_prefixed(out, 0x20, 3, name.size());  // 001 N=0 H=0, name length
    out.insert(out.end(), name.begin(), name.end());
    put_prefixed(out, 0x00, 7, value.size());  // H=0, value length
    out.insert(out.end(), value.begin(), value.end());
  }
  return out;
}

WireBytes wire_headers_frame(const WireFields &fields) { return wire_frame(0x01, wire_field_section(fields)); }

WireBytes wire_capsule(std::uint64_t type, std::span<const std::uint8_t> value) {
  return wire_cat({wire_varint(type), wire_varint(value.size()), value});
}

WireBytes wire_capsule_header(std::uint64_t type, std::uint64_t claimed_len) {
  return wire_cat({wire_varint(type), wire_varint(claimed_len)});
}

WireBytes wire_close_session_value(std::uint32_t code, std::span<const std::uint8_t> reason) {
  const std::uint8_t c[4] = {static_cast<std::uint8_t>(code >> 24), static_cast<std::uint8_t>(code >> 16),
                             static_cast<std::uint8_t>(code >> 8), static_cast<std::uint8_t>(code)};
  return wire_cat({c, reason});
}

WireBytes wire_wt_bidi_preamble(std::uint64_t session_id) {
  return wire_cat({wire_varint(0x41), wire_varint(session_id)});
}

WireBytes wire_wt_uni_preamble(std::uint64_t session_id) {
  return wire_cat({wire_varint(0x54), wire_varint(session_id)});
}

std::vector<WireSetting> wire_dialect_settings(WireDialect d, std::uint64_t max_sessions,
                                               const std::vector<WireSetting> &extra) {
  std::vector<WireSetting> s;
  switch (d) {
    case WireDialect::draft02:
      s = {{0x2b603742, 1}, {0x33, 1}, {0xffd277, 1}};
      break;
    case WireDialect::draft07:
      s = {{0x08, 1}, {0x33, 1}, {0xc671706a, max_sessions}};
      break;
    case WireDialect::draft13:
    case WireDialect::draft14:
      s = {{0x08, 1}, {0x33, 1}, {0x14e9cd29, max_sessions}};
      break;
    case WireDialect::draft15:
      s = {{0x08, 1}, {0x33, 1}, {0x2c7cf000, 1}};
      break;
  }
  s.insert(s.end(), extra.begin(), extra.end());
  return s;
}

WireFields wire_connect_request(WireDialect d, const std::string &authority, const std::string &path,
                                const WireFields &extra) {
  WireFields f = {{":method", "CONNECT"},
                  {":scheme", "https"},
                  {":authority", authority},
                  {":path", path},
                  {":protocol", d == WireDialect::draft15 ? "webtransport-h3" : "webtransport"}};
  if (d == WireDialect::draft02) f.emplace_back("sec-webtransport-http3-draft02", "1");
  f.insert(f.end(), extra.begin(), extra.end());
  return f;
}

// ------------------------------------------------------------------ parsers

namespace {
struct Reader {
  std::span<const std::uint8_t> in;
  std::size_t pos = 0;
  std::optional<std::uint64_t> varint() {
    if (pos >= in.size()) return std::nullopt;
    const std::size_t n = std::size_t{1} << (in[pos] >> 6);
    if (pos + n > in.size()) return std::nullopt;
    std::uint64_t v = in[pos] & 0x3f;
    for (std::size_t i = 1; i < n; ++i) v = (v << 8) | in[pos + i];
    pos += n;
    return v;
  }
};
}  // namespace

std::vector<WireFrame> wire_frames(std::span<const std::uint8_t> bytes) {
  std::vector<WireFrame> out;
  Reader r{bytes};
  for (;;) {
    const std::size_t start = r.pos;
    const auto type = r.varint();
    const auto len = r.varint();
    if (!type || !len || r.pos + *len > bytes.size()) {
      (void)start;
      break;
    }
    out.push_back({*type, WireBytes(bytes.begin() + static_cast<std::ptrdiff_t>(r.pos),
                                    bytes.begin() + static_cast<std::ptrdiff_t>(r.pos + *len))});
    r.pos += *len;
  }
  return out;
}

std::vector<WireSetting> wire_parse_settings(std::span<const std::uint8_t> payload) {
  std::vector<WireSetting> out;
  Reader r{payload};
  for (;;) {
    const auto id = r.varint();
    const auto v = r.varint();
    if (!id || !v) break;
    out.push_back({*id, *v});
  }
  return out;
}

std::optional<WireFields> wire_decode_fields(std::span<const std::uint8_t> section) {
  const nghttp3_mem *mem = nghttp3_mem_default();
  nghttp3_qpack_decoder *dec = nullptr;
  nghttp3_qpack_stream_context *sctx = nullptr;
  if (nghttp3_qpack_decoder_new(&dec, 0, 0, mem) != 0) return std::nullopt;
  if (nghttp3_qpack_stream_context_new(&sctx, 0, mem) != 0) {
    nghttp3_qpack_decoder_del(dec);
    return std::nullopt;
  }
  WireFields out;
  bool ok = false;
  const std::uint8_t *p = section.data();
  std::size_t left = section.size();
  for (;;) {
    nghttp3_qpack_nv nv{};
    std::uint8_t flags = 0;
    const nghttp3_ssize n = nghttp3_qpack_decoder_read_request(dec, sctx, &nv, &flags, p, left, 1);
    if (n < 0) break;
    p += n;
    left -= static_cast<std::size_t>(n);
    if ((flags & NGHTTP3_QPACK_DECODE_FLAG_EMIT) != 0) {
      const nghttp3_vec name = nghttp3_rcbuf_get_buf(nv.name), value = nghttp3_rcbuf_get_buf(nv.value);
      out.emplace_back(std::string(reinterpret_cast<const char *>(name.base), name.len),
                       std::string(reinterpret_cast<const char *>(value.base), value.len));
      nghttp3_rcbuf_decref(nv.name);
      nghttp3_rcbuf_decref(nv.value);
      continue;
    }
    if ((flags & NGHTTP3_QPACK_DECODE_FLAG_FINAL) != 0) ok = true;
    break;
  }
  nghttp3_qpack_stream_context_del(sctx);
  nghttp3_qpack_decoder_del(dec);
  if (!ok) return std::nullopt;
  return out;
}

std::vector<WireCapsule> wire_capsules(std::span<const std::uint8_t> bytes) {
  std::vector<WireCapsule> out;
  Reader r{bytes};
  for (;;) {
    const auto type = r.varint();
    const auto len = r.varint();
    if (!type || !len || r.pos + *len > bytes.size()) break;
    out.push_back({*type, WireBytes(bytes.begin() + static_cast<std::ptrdiff_t>(r.pos),
                                    bytes.begin() + static_cast<std::ptrdiff_t>(r.pos + *len))});
    r.pos += *len;
  }
  return out;
}

std::optional<std::string> wire_field(const WireFields &f, std::string_view name) {
  for (const auto &[n, v] : f)
    if (n == name) return v;
  return std::nullopt;
}

// ------------------------------------------------------------------ peer

TransportConfig WirePeer::Options::default_transport() {
  TransportConfig t;
  t.idle_timeout = std::chrono::milliseconds(10'000);
  t.max_streams_bidi = 100;
  t.max_streams_uni = 100;
  return t;
}

WirePeer::WirePeer(uv_loop_t *loop, Options opts) : loop_(loop), opts_(std::move(opts)) {
  ep_ = std::make_shared<detail::Endpoint>(std::make_shared<detail::Deferred>(loop_), opts_.transport);
}

WirePeer::~WirePeer() {
  // close() released everything; a peer never closed would leave handles behind.
  CHECK(quic_ == nullptr);
}

std::unique_ptr<WirePeer> WirePeer::connect(uv_loop_t *loop, std::uint16_t port, Options opts) {
  std::unique_ptr<WirePeer> p(new WirePeer(loop, std::move(opts)));
  Error err;
  detail::TlsClientOptions to;
  to.use_system_trust = false;
  to.pinned_sha256 = {test_certificate().sha256};
  p->client_tls_ = detail::TlsClientContext::create(to, err);
  REQUIRE(err.ok());
  detail::UdpSocket *sock = nullptr;
  REQUIRE(p->ep_->bind(SockAddr::any(AF_INET, 0), &sock).ok());
  const SockAddr remote = *SockAddr::parse("127.0.0.1", port);
  p->quic_ = QuicConnection::create_client(*p->ep_, *sock, sock->local_addr(), remote, *p->client_tls_, "localhost",
                                           p->opts_.transport, *p, err);
  REQUIRE(p->quic_);
  p->port_ = port;
  p->quic_->write_now();
  return p;
}

std::unique_ptr<WirePeer> WirePeer::connect(uv_loop_t *loop, std::uint16_t port) {
  return connect(loop, port, Options());
}

std::unique_ptr<WirePeer> WirePeer::listen(uv_loop_t *loop) { return listen(loop, Options()); }

std::unique_ptr<WirePeer> WirePeer::listen(uv_loop_t *loop, Options opts) {
  std::unique_ptr<WirePeer> p(new WirePeer(loop, std::move(opts)));
  Error err;
  detail::TlsServerOptions to;
  to.cert_pem = test_certificate().cert_pem;
  to.key_pem = test_certificate().key_pem;
  to.session_tickets = false;
  p->server_tls_ = detail::TlsServerContext::create(to, err);
  REQUIRE(err.ok());
  p->ep_->set_acceptor(p.get());
  detail::UdpSocket *sock = nullptr;
  REQUIRE(p->ep_->bind(*SockAddr::parse("127.0.0.1", 0), &sock).ok());
  p->port_ = sock->local_addr().port();
  return p;
}

bool WirePeer::accept_initial(detail::UdpSocket &sock, const detail::RecvPacket &pkt, const ngtcp2_pkt_hd &hd,
                              const ngtcp2_cid *original_dcid) {
  if (quic_ != nullptr) return false;  // one connection per peer
  Error err;
  const SockAddr local = pkt.local != nullptr ? *pkt.local : sock.local_addr();
  quic_ = QuicConnection::create_server(*ep_, sock, local, *pkt.remote, hd, original_dcid, *server_tls_,
                                        opts_.transport, *this, err);
  if (!quic_) return false;
  quic_->on_packet(pkt);
  return true;
}

void WirePeer::on_handshake_completed() {
  handshake_done_ = true;
  if (!opts_.send_control) return;
  const auto ctrl = open_uni();
  send(ctrl, wire_control_stream(opts_.settings));
  const std::uint8_t enc = 0x02, dec = 0x03;
  send(open_uni(), std::span<const std::uint8_t>(&enc, 1));
  send(open_uni(), std::span<const std::uint8_t>(&dec, 1));
}

std::int64_t WirePeer::open_bidi() {
  std::int64_t sid = -1;
  if (quic_ == nullptr || quic_->open_bidi_stream(sid) != 0) return -1;
  return sid;
}

std::int64_t WirePeer::open_uni() {
  std::int64_t sid = -1;
  if (quic_ == nullptr || quic_->open_uni_stream(sid) != 0) return -1;
  return sid;
}

void WirePeer::send(std::int64_t sid, std::span<const std::uint8_t> bytes, bool fin) {
  REQUIRE(sid >= 0);
  auto &o = out_[sid];
  if (!bytes.empty()) {
    o.chunks.emplace_back(bytes.begin(), bytes.end());
    o.queued += bytes.size();
  }
  o.fin = o.fin || fin;
  queue_write(sid);
}

void WirePeer::queue_write(std::int64_t sid) {
  auto &o = out_[sid];
  if (!o.queued_for_write && !o.shut && (o.sent < o.queued || (o.fin && !o.fin_sent))) {
    o.queued_for_write = true;
    write_queue_.push_back(sid);
  }
  if (quic_ != nullptr) quic_->schedule_write();
}

void WirePeer::reset_stream(std::int64_t sid, std::uint64_t code) {
  out_[sid].shut = true;
  if (quic_ != nullptr) quic_->shutdown_stream_write(sid, code);
}

std::uint64_t WirePeer::sent(std::int64_t sid) const {
  const auto it = out_.find(sid);
  return it == out_.end() ? 0 : it->second.sent;
}

void WirePeer::set_blackhole(bool on) {
  ImpairmentConfig cfg;
  cfg.enabled = on;
  cfg.blackhole = on;
  ep_->set_impairment(cfg);
}

void WirePeer::stop_sending(std::int64_t sid, std::uint64_t code) {
  if (quic_ != nullptr) quic_->shutdown_stream_read(sid, code);
}

void WirePeer::send_datagram(std::span<const std::uint8_t> payload) {
  dgram_out_.emplace_back(payload.begin(), payload.end());
  if (quic_ != nullptr) quic_->schedule_write();
}

void WirePeer::close_connection(std::uint64_t code, const std::string &reason) {
  if (quic_ != nullptr) quic_->close(code, reason);
}

std::int64_t WirePeer::send_request(const WireFields &fields, bool fin) {
  const auto sid = open_bidi();
  if (sid >= 0) send(sid, wire_headers_frame(fields), fin);
  return sid;
}

void WirePeer::send_capsule(std::int64_t sid, std::uint64_t type, std::span<const std::uint8_t> value, bool fin) {
  send(sid, wire_data_frame(wire_capsule(type, value)), fin);
}

std::int64_t WirePeer::open_wt_stream(bool bidi, std::uint64_t session_id, std::span<const std::uint8_t> payload,
                                      bool fin) {
  const auto sid = bidi ? open_bidi() : open_uni();
  if (sid < 0) return sid;
  const auto pre = bidi ? wire_wt_bidi_preamble(session_id) : wire_wt_uni_preamble(session_id);
  send(sid, wire_cat({pre, payload}), fin);
  return sid;
}

const WirePeer::StreamLog &WirePeer::stream(std::int64_t sid) const {
  static const StreamLog kEmpty;
  auto it = streams_.find(sid);
  return it == streams_.end() ? kEmpty : it->second;
}

std::optional<std::vector<WireSetting>> WirePeer::peer_settings() const {
  // uvwt's control stream: a uni stream it opened whose type is 0x00.
  const bool server = client_tls_ == nullptr;
  for (const auto &[sid, log] : streams_) {
    const bool remote_uni = (sid & 3) == (server ? 2 : 3);
    if (!remote_uni || log.data.empty() || log.data[0] != 0x00) continue;
    const auto frames = wire_frames(std::span<const std::uint8_t>(log.data).subspan(1));
    if (frames.empty() || frames.front().type != 0x04) return std::nullopt;
    return wire_parse_settings(frames.front().payload);
  }
  return std::nullopt;
}

std::optional<std::uint64_t> WirePeer::peer_setting(std::uint64_t id) const {
  const auto s = peer_settings();
  if (!s) return std::nullopt;
  for (const auto &x : *s)
    if (x.id == id) return x.value;
  return std::nullopt;
}

std::vector<WireFrame> WirePeer::frames(std::int64_t sid) const { return wire_frames(stream(sid).data); }

std::optional<WireFields> WirePeer::headers(std::int64_t sid) const {
  for (const auto &f : frames(sid)) {
    if (f.type != 0x01) continue;
    auto fields = wire_decode_fields(f.payload);
    if (!fields) return std::nullopt;
    const auto st = wire_field(*fields, ":status");
    if (st && st->size() == 3 && (*st)[0] == '1') continue;  // interim
    return fields;
  }
  return std::nullopt;
}

std::optional<int> WirePeer::status(std::int64_t sid) const {
  const auto h = headers(sid);
  if (!h) return std::nullopt;
  const auto st = wire_field(*h, ":status");
  if (!st) return std::nullopt;
  return std::atoi(st->c_str());
}

std::vector<WireCapsule> WirePeer::capsules(std::int64_t sid) const {
  WireBytes data;
  for (const auto &f : frames(sid))
    if (f.type == 0x00) data.insert(data.end(), f.payload.begin(), f.payload.end());
  return wire_capsules(data);
}

std::vector<std::int64_t> WirePeer::requests() const {
  std::vector<std::int64_t> out;
  for (const auto &[sid, log] : streams_)
    if ((sid & 3) == 0) out.push_back(sid);
  return out;
}

WirePeer::CloseLog WirePeer::close_log() const {
  CloseLog c = close_log_;
  if (!c.from_peer && quic_ != nullptr && quic_->native() != nullptr &&
      ngtcp2_conn_in_draining_period(quic_->native()) != 0) {
    const ngtcp2_ccerr *ce = ngtcp2_conn_get_ccerr(quic_->native());
    c.closed = true;
    c.from_peer = true;
    c.application = ce->type == NGTCP2_CCERR_TYPE_APPLICATION;
    c.code = ce->error_code;
    c.reason.assign(reinterpret_cast<const char *>(ce->reason), ce->reasonlen);
  }
  return c;
}

void WirePeer::capture_peer_close() {
  if (close_log_.from_peer) return;
  close_log_ = close_log();
}

bool WirePeer::on_stream_data(std::int64_t sid, bool fin, const std::uint8_t *data, std::size_t len) {
  auto &log = streams_[sid];
  log.data.insert(log.data.end(), data, data + len);
  log.fin = log.fin || fin;
  quic_->extend_stream_offset(sid, len);
  return true;
}

void WirePeer::on_stream_close(std::int64_t sid, bool, std::uint64_t) {
  streams_[sid].closed = true;
  const bool local = ((sid & 1) != 0) == (client_tls_ == nullptr);
  if (!local) quic_->extend_max_streams((sid & 2) == 0, 1);
}

void WirePeer::on_stream_reset(std::int64_t sid, std::uint64_t final_size, std::uint64_t code) {
  streams_[sid].reset_code = code;
  streams_[sid].final_size = final_size;
}

// ngtcp2 1.x has no callback for a received STOP_SENDING (stream_stop_sending
// reports our own), so the peer reads ngtcp2's frame log, e.g.
// "... frm rx 7 1RTT STOP_SENDING(0x05) id=0x0 app_error_code=(unknown)(0x10e)".
void WirePeer::on_frame_log(const char *line) {
  const std::string_view l(line);
  if (l.find(" frm rx ") == std::string_view::npos) return;
  const auto at = l.find("STOP_SENDING(0x05) id=0x");
  if (at == std::string_view::npos) return;
  const auto code_at = l.rfind("(0x");
  if (code_at == std::string_view::npos || code_at < at) return;
  const auto sid = std::strtoll(std::string(l.substr(at + 24)).c_str(), nullptr, 16);
  const auto code = std::strtoull(std::string(l.substr(code_at + 3)).c_str(), nullptr, 16);
  auto &log = streams_[sid];
  if (!log.stop_sending_code) log.stop_sending_code = code;
}

void WirePeer::on_stop_sending(std::int64_t, std::uint64_t) {}  // our own stop (ngtcp2's callback)

void WirePeer::on_extend_max_stream_data(std::int64_t sid) { queue_write(sid); }

void WirePeer::on_datagram(const std::uint8_t *data, std::size_t len) { datagrams_.emplace_back(data, data + len); }

void WirePeer::next_stream_write(detail::StreamWrite &w) {
  while (!write_queue_.empty()) {
    const std::int64_t sid = write_queue_.front();
    auto &o = out_[sid];
    if (o.shut || (o.sent >= o.queued && (!o.fin || o.fin_sent))) {
      o.queued_for_write = false;
      write_queue_.pop_front();
      continue;
    }
    w.stream_id = sid;
    w.fin = o.fin;
    w.vec_count = 0;
    std::uint64_t begin = 0;
    for (auto &c : o.chunks) {
      const std::uint64_t end = begin + c.size();
      if (end > o.sent && w.vec_count < detail::StreamWrite::kMaxVecs) {
        const std::uint64_t skip = o.sent > begin ? o.sent - begin : 0;
        w.vec[w.vec_count].base = c.data() + skip;
        w.vec[w.vec_count].len = c.size() - skip;
        ++w.vec_count;
      }
      begin = end;
    }
    if (w.vec_count == detail::StreamWrite::kMaxVecs) w.fin = false;  // more chunks after these
    return;
  }
}

void WirePeer::on_stream_written(std::int64_t sid, std::size_t n, bool fin_sent) {
  auto &o = out_[sid];
  o.sent += n;
  o.fin_sent = o.fin_sent || fin_sent;
  if (o.sent >= o.queued && (!o.fin || o.fin_sent) && !write_queue_.empty() && write_queue_.front() == sid) {
    write_queue_.pop_front();
    o.queued_for_write = false;
  }
}

void WirePeer::on_stream_blocked(std::int64_t sid, bool shut) {
  auto &o = out_[sid];
  o.shut = o.shut || shut;
  if (!write_queue_.empty() && write_queue_.front() == sid) write_queue_.pop_front();
  o.queued_for_write = false;
}

const ngtcp2_vec *WirePeer::next_datagram() {
  if (dgram_out_.empty()) return nullptr;
  dgram_vec_.base = dgram_out_.front().data();
  dgram_vec_.len = dgram_out_.front().size();
  return &dgram_vec_;
}

void WirePeer::on_datagram_written(bool) {
  if (!dgram_out_.empty()) dgram_out_.pop_front();
}

void WirePeer::on_quic_closed(const Error &) {
  capture_peer_close();
  quic_closed_ = true;
  close_log_.closed = true;
}

void WirePeer::close(TestLoop &tl) {
  bool handles = quic_ == nullptr, socks = false;
  if (quic_ != nullptr) {
    capture_peer_close();
    quic_->set_linger(false);
    if (!quic_closed_) quic_->close(0x100, "");
    if (!quic_closed_) quic_->abandon(Error(Errc::closed, "test peer closed"));
    quic_->close_handles([&handles] { handles = true; });
  }
  REQUIRE(tl.run_until([&] { return handles; }, 5'000));
  quic_.reset();
  ep_->close([&socks] { socks = true; });
  REQUIRE(tl.run_until([&] { return socks; }, 5'000));
  ep_.reset();
}

}  // namespace uvwt::test
