#include "session/session_impl.hpp"

#include <algorithm>

#include "common/clock.hpp"
#include "common/log.hpp"
#include "h3/datagram.hpp"
#include "h3/wt_codes.hpp"
#include "session/session_host.hpp"
#include "session/stream_impl.hpp"

namespace uvwt::detail {

SessionImpl::SessionImpl(SessionHost &host, SessionId id, bool client, SessionInfo info, const TransportConfig &cfg)
    : host_(host), keep_(host.host_connection()), id_(id), client_(client), info_(std::move(info)), cfg_(cfg) {
  info_.session_id = id;
  info_.created_at = wall_seconds();
  // A Maximum Streams value over 2^60: draft-ietf-webtrans-http3-16 5.6.2
  // closes the session with WT_FLOW_CONTROL_ERROR; -13/-14 only say the
  // value cannot exceed 2^60, so the capsule is malformed (RFC 9297 3.3:
  // H3_MESSAGE_ERROR).
  parser_.set_stream_limit_code(info_.dialect == "draft15" ? kWtFlowControlError : kH3MessageError);
  // Section 5.4 of -14 and -16 (the draft13 dialect speaks -13/-14, draft15
  // -15/-16) prohibits the per-stream capsules of WebTransport over HTTP/2;
  // draft-02/-07 never defined them (unknown types: skipped, RFC 9297 3.2).
  if (info_.dialect == "draft13" || info_.dialect == "draft15") parser_.prohibit_stream_data_capsules();
  stats_.created_at = info_.created_at;
}

SessionImpl::~SessionImpl() = default;

std::shared_ptr<Connection> SessionImpl::connection() const { return keep_; }

void SessionImpl::set_ready(std::string protocol) {
  if (info_.state != SessionState::connecting) return;
  info_.state = SessionState::connected;
  info_.protocol = std::move(protocol);
  info_.ready_at = wall_seconds();
  stats_.ready_at = info_.ready_at;
  if (ready_cb) {
    auto cb = std::move(ready_cb);
    cb(Error(), shared_from_this());
  }
}

void SessionImpl::fail(const Error &err) {
  if (info_.state == SessionState::closed) return;
  SessionCloseInfo ci;
  ci.error = err;
  ci.remote = true;
  finish(ci);
}

void SessionImpl::open_stream(bool bidi, StreamCallback cb) {
  auto self = shared_from_this();
  if (info_.state != SessionState::connected) {
    host_.defer([cb = std::move(cb), st = info_.state] {
      cb(Error(Errc::session, st == SessionState::connecting ? "session is not ready" : "session is closed"), nullptr);
    });
    return;
  }
  if (max_local_streams_ != 0 && local_streams_ >= max_local_streams_) {
    host_.defer([cb = std::move(cb), n = max_local_streams_] {
      cb(Error(Errc::flow_control, "too many open streams: max_streams (" + std::to_string(n) + ") reached"), nullptr);
    });
    return;
  }
  ++local_streams_;  // released when the stream closes, or here when it never opened
  if (!fc_.can_open(bidi)) {
    // Draft-15 section 5.6.2: no more streams than the peer's
    // WT_MAX_STREAMS; the open waits for a larger one (bounded).
    if (waiting_opens_.size() >= kMaxWaitingOpens) {
      --local_streams_;
      host_.defer([cb = std::move(cb)] {
        cb(Error(Errc::flow_control, "too many streams waiting for the peer's WT_MAX_STREAMS"), nullptr);
      });
      return;
    }
    waiting_opens_.push_back({bidi, std::move(cb)});
    if (const auto limit = fc_.take_streams_blocked(bidi)) {
      std::uint8_t buf[32];
      queue_flow_capsule(buf, encode_streams_blocked(bidi, *limit, buf, sizeof buf));
    }
    return;
  }
  start_open(bidi, std::move(cb));
}

void SessionImpl::start_open(bool bidi, StreamCallback cb) {
  auto self = shared_from_this();
  fc_.on_opened(bidi);
  host_.open_wt_stream(self, bidi, [self, bidi, cb = std::move(cb)](const Error &err, std::int64_t sid) {
    if (err) {
      --self->local_streams_;
      return cb(err, nullptr);
    }
    if (self->info_.state != SessionState::connected && self->info_.state != SessionState::draining)
      return cb(Error(Errc::session, "session closed while the stream was opening"), nullptr);
    auto it = self->streams_.find(sid);
    if (it == self->streams_.end()) return cb(Error(Errc::stream, "stream vanished"), nullptr);
    ++self->stats_.streams_opened;
    (void)bidi;
    cb(Error(), it->second);
  });
}

void SessionImpl::add_stream(const std::shared_ptr<StreamImpl> &st, bool incoming) {
  streams_[st->id()] = st;
  if (!incoming) return;
  ++stats_.streams_accepted;
  const bool bidi = st->direction() == StreamDirection::bidirectional;
  auto &cb = bidi ? on_bidi_ : on_uni_;
  if (cb) {
    cb(st);
  } else {
    (bidi ? pending_bidi_ : pending_uni_).push_back(st);
  }
}

void SessionImpl::remove_stream(std::int64_t sid) {
  // Bit 0 of a QUIC stream ID is set for server-initiated streams.
  const bool local = ((sid & 1) == 0) == client_;
  if (streams_.erase(sid) == 0) return;
  if (local && local_streams_ > 0) --local_streams_;
  if (!local) {
    // A peer stream is done: its slot may be given back (section 5.6.2).
    fc_.on_peer_stream_closed((sid & 2) == 0);
    send_flow_updates();
  }
}

void SessionImpl::open_waiting_streams() {
  for (std::size_t n = waiting_opens_.size(); n > 0 && !waiting_opens_.empty(); --n) {
    if (info_.state != SessionState::connected && info_.state != SessionState::draining) return;
    auto w = std::move(waiting_opens_.front());
    waiting_opens_.pop_front();
    if (fc_.can_open(w.bidi)) {
      start_open(w.bidi, std::move(w.cb));
    } else {
      waiting_opens_.push_back(std::move(w));  // the other direction's limit
    }
  }
}

void SessionImpl::fail_waiting_opens() {
  auto waiting = std::move(waiting_opens_);
  waiting_opens_.clear();
  for (auto &w : waiting) {
    if (local_streams_ > 0) --local_streams_;
    host_.defer([cb = std::move(w.cb)] {
      cb(Error(Errc::session, "session closed while the stream waited for the peer's WT_MAX_STREAMS"), nullptr);
    });
  }
}

void SessionImpl::queue_flow_capsule(std::uint8_t *buf, std::size_t n) {
  if (n == 0 || (info_.state != SessionState::connected && info_.state != SessionState::draining)) return;
  queue_capsule(std::vector<std::uint8_t>(buf, buf + n), false);
}

void SessionImpl::note_data_blocked() {
  // Section 5.6.5: WT_DATA_BLOCKED carries the limit we are blocked at.
  if (const auto limit = fc_.take_data_blocked()) {
    std::uint8_t buf[32];
    queue_flow_capsule(buf, encode_data_blocked(*limit, buf, sizeof buf));
  }
}

void SessionImpl::send_flow_updates() {
  if (!fc_.enabled()) return;
  std::uint8_t buf[32];
  if (const auto v = fc_.take_max_data_update()) queue_flow_capsule(buf, encode_max_data(*v, buf, sizeof buf));
  for (const bool bidi : {true, false})
    if (const auto v = fc_.take_max_streams_update(bidi))
      queue_flow_capsule(buf, encode_max_streams(bidi, *v, buf, sizeof buf));
}

bool SessionImpl::on_stream_payload(std::size_t n) {
  if (fc_.on_payload_received(n)) return true;
  // Section 5.6.4: stream body data past our WT_MAX_DATA.
  abort_with(kWtFlowControlError, "peer sent " + std::to_string(fc_.received()) + " bytes of stream data, over the " +
                                      std::to_string(fc_.local_max_data()) + " its WT_MAX_DATA allowed");
  return false;
}

void SessionImpl::on_stream_consumed(std::size_t n) {
  fc_.on_consumed(n);
  send_flow_updates();
}

bool SessionImpl::on_peer_stream_opened(bool bidi) {
  if (fc_.on_peer_stream(bidi)) return true;
  // Section 5.6.2: an incoming stream over the advertised Maximum Streams.
  abort_with(kWtFlowControlError, std::string("peer opened more ") + (bidi ? "bidirectional" : "unidirectional") +
                                      " streams than its WT_MAX_STREAMS allowed");
  return false;
}

void SessionImpl::send_credit_grew() {
  // Every stream that waited for session credit may send again.
  auto streams = streams_;
  for (auto &[sid, st] : streams) st->session_credit_granted();
}

void SessionImpl::abort_with(std::uint64_t h3_code, const std::string &why) {
  if (info_.state == SessionState::closed) return;
  protocol_error(Error(Errc::protocol, why, CodeSpace::h3, h3_code));
}

void SessionImpl::on_bidi_stream(IncomingStreamCallback cb) {
  on_bidi_ = std::move(cb);
  if (!on_bidi_ || pending_bidi_.empty()) return;
  auto self = shared_from_this();
  host_.defer([self] {
    while (self->on_bidi_ && !self->pending_bidi_.empty()) {
      auto st = std::move(self->pending_bidi_.front());
      self->pending_bidi_.pop_front();
      self->on_bidi_(st);
    }
  });
}

void SessionImpl::on_uni_stream(IncomingStreamCallback cb) {
  on_uni_ = std::move(cb);
  if (!on_uni_ || pending_uni_.empty()) return;
  auto self = shared_from_this();
  host_.defer([self] {
    while (self->on_uni_ && !self->pending_uni_.empty()) {
      auto st = std::move(self->pending_uni_.front());
      self->pending_uni_.pop_front();
      self->on_uni_(st);
    }
  });
}

Error SessionImpl::send_datagram(std::span<const std::uint8_t> data) {
  if (info_.state != SessionState::connected && info_.state != SessionState::draining)
    return {Errc::session, "session is not open"};
  const std::size_t max = max_datagram_size();
  if (max == 0) return {Errc::datagram, "peer does not accept datagrams"};
  if (data.size() > max)
    return {Errc::datagram,
            "datagram of " + std::to_string(data.size()) + " bytes exceeds the maximum of " + std::to_string(max)};
  Error err = host_.send_datagram(*this, data);
  if (err.ok()) {
    ++stats_.datagrams_sent;
    stats_.bytes_sent += data.size();
  } else {
    ++stats_.datagrams_dropped;
  }
  return err;
}

std::size_t SessionImpl::max_datagram_size() const noexcept { return host_.max_datagram_payload(*this); }

void SessionImpl::on_datagram(DatagramCallback cb) {
  on_datagram_ = std::move(cb);
  if (!on_datagram_ || pending_dgrams_.empty()) return;
  auto self = shared_from_this();
  host_.defer([self] {
    while (self->on_datagram_ && !self->pending_dgrams_.empty()) {
      auto d = std::move(self->pending_dgrams_.front());
      self->pending_dgrams_.pop_front();
      self->on_datagram_(d);
    }
  });
}

void SessionImpl::on_datagram_payload(std::span<const std::uint8_t> payload) {
  if (info_.state == SessionState::closed || info_.state == SessionState::closing) return;
  ++stats_.datagrams_received;
  stats_.bytes_received += payload.size();
  if (on_datagram_ && info_.state != SessionState::connecting) {
    on_datagram_(payload);
    return;
  }
  if (pending_dgrams_.size() >= cfg_.max_pending_datagrams) {
    ++stats_.datagrams_dropped;
    ++stats_.incoming_datagrams_dropped;
    return;
  }
  pending_dgrams_.emplace_back(payload.begin(), payload.end());
}

void SessionImpl::queue_capsule(std::vector<std::uint8_t> bytes, bool fin) {
  if (fin_queued_) return;
  if (!bytes.empty()) out_.push_back(std::move(bytes));
  if (fin) fin_queued_ = true;
  host_.capsules_queued(*this);
}

std::size_t SessionImpl::capsule_vecs(CapsuleVec *out, std::size_t max, bool &eof) {
  std::size_t n = 0;
  while (out_handed_ < out_.size() && n < max) {
    out[n++] = {out_[out_handed_].data(), out_[out_handed_].size()};
    ++out_handed_;
  }
  eof = fin_queued_ && out_handed_ == out_.size();
  if (eof) fin_handed_ = true;
  return n;
}

void SessionImpl::capsules_acked(std::uint64_t n) {
  out_acked_partial_ += n;
  while (!out_.empty() && out_handed_ > 0 && out_acked_partial_ >= out_.front().size()) {
    out_acked_partial_ -= out_.front().size();
    out_.pop_front();
    --out_handed_;
  }
}

void SessionImpl::close(std::uint32_t code, std::string reason, CloseCallback cb) {
  if (cb) close_cbs_.push_back(std::move(cb));
  if (info_.state == SessionState::closed) {
    auto cbs = std::move(close_cbs_);
    close_cbs_.clear();
    host_.defer([cbs = std::move(cbs)] {
      for (const auto &c : cbs) c();
    });
    return;
  }
  if (local_close_ || info_.state == SessionState::closing) return;
  local_close_ = true;
  local_code_ = code;
  local_reason_ = std::move(reason);
  if (info_.state == SessionState::connecting) {
    // Not established yet: nothing to tell the peer beyond ending the stream.
    queue_capsule({}, true);
    SessionCloseInfo ci;
    ci.code = code;
    ci.reason = local_reason_;
    ci.error = Error(Errc::cancelled, "session closed before it was ready");
    finish(ci, true);
    return;
  }
  info_.state = SessionState::closing;
  std::vector<std::uint8_t> cap;
  if (code != 0 || !local_reason_.empty()) {
    cap.resize(capsule_max_size);
    cap.resize(encode_close_session(code, local_reason_, cap.data(), cap.size()));
  }
  // Capsule then FIN; the peer's FIN (or the stream closing) completes the
  // close, or the backstop does when the peer stays silent. Code 0 with no
  // reason is a bare FIN: draft-15 section 6 makes it mean exactly that, and
  // peers that misread capsules inside DATA frames still see a clean close.
  queue_capsule(std::move(cap), true);
  abort_streams(Error(Errc::session, "session closed", CodeSpace::application, code));
  fail_waiting_opens();
  start_close_backstop();
}

void SessionImpl::start_close_backstop() {
  const auto ms = cfg_.session_close_timeout.count();
  close_timer_ = std::make_unique<Timer>(host_.host_loop());
  std::weak_ptr<SessionImpl> weak = shared_from_this();
  close_timer_->start(static_cast<std::uint64_t>(ms > 0 ? ms : 1), [weak] {
    if (auto self = weak.lock()) self->on_close_backstop();
  });
}

void SessionImpl::on_close_backstop() {
  if (info_.state == SessionState::closed) return;
  UVWT_DEBUG("session %llu: no FIN from the peer within %lld ms of our close; abandoning the CONNECT stream",
             static_cast<unsigned long long>(id_), static_cast<long long>(cfg_.session_close_timeout.count()));
  // Only now stop reading (docs/protocol.md: never in the same flight as the
  // capsule). Capsule bytes still unacknowledged mean the peer is not
  // taking them: reset the send side as well.
  host_.abandon_connect_stream(*this, !out_.empty());
  SessionCloseInfo ci;
  ci.code = local_code_;
  ci.reason = local_reason_;
  finish(ci);
}

void SessionImpl::on_closed(ClosedCallback cb) {
  if (info_.state == SessionState::closed && info_.close_info && cb) {
    // Registered too late to see it happen: tell on a later turn anyway.
    host_.defer([cb = std::move(cb), ci = *info_.close_info] { cb(ci); });
    return;
  }
  on_closed_ = std::move(cb);
}

void SessionImpl::add_close_listener(std::function<void()> cb) {
  if (!cb) return;
  if (info_.state == SessionState::closed) {
    host_.defer(std::move(cb));
    return;
  }
  close_listeners_.push_back(std::move(cb));
}

void SessionImpl::drain() {
  if (info_.state != SessionState::connected) return;
  std::vector<std::uint8_t> cap(16);
  cap.resize(encode_drain_session(cap.data(), cap.size()));
  queue_capsule(std::move(cap), false);
}

void SessionImpl::on_goaway() {
  if (info_.state != SessionState::connected) return;
  info_.state = SessionState::draining;
  if (on_draining_) on_draining_();
}

void SessionImpl::handle_capsule(std::uint64_t type, std::span<const std::uint8_t> value) {
  if (info_.state == SessionState::closed) return;  // an earlier capsule ended it
  if (type == kCapsuleCloseSession) {
    CloseSession cs;
    if (decode_close_session(value, cs)) {
      peer_code_ = cs.code;
      peer_reason_ = std::move(cs.reason);
      peer_closed_capsule_ = true;
    }
  } else if (type == kCapsuleDrainSession) {
    if (info_.state == SessionState::connected) {
      info_.state = SessionState::draining;
      if (on_draining_) on_draining_();
    }
  } else {
    handle_flow_capsule(type, value);
  }
}

void SessionImpl::handle_flow_capsule(std::uint64_t type, std::span<const std::uint8_t> value) {
  // Draft-15 section 5.1: without flow control, flow-control capsules are
  // ignored (the peer may have sent them before it saw our SETTINGS).
  if (!fc_.enabled() || info_.state == SessionState::closed) return;
  const auto v = decode_capsule_varint(value);
  if (!v) return;
  switch (type) {
    case kCapsuleMaxData:
      // Section 5.6.4: the limit must increase.
      if (!fc_.on_max_data(*v)) return abort_with(kWtFlowControlError, "WT_MAX_DATA did not increase the limit");
      send_credit_grew();
      return;
    case kCapsuleMaxStreamsBidi:
    case kCapsuleMaxStreamsUni:
      // Section 5.6.2: at most 2^60, and increasing.
      if (!fc_.on_max_streams(type == kCapsuleMaxStreamsBidi, *v))
        return abort_with(kWtFlowControlError, "WT_MAX_STREAMS above 2^60 or not increasing");
      open_waiting_streams();
      return;
    case kCapsuleStreamsBlockedBidi:
    case kCapsuleStreamsBlockedUni:
      // Section 5.6.3: the same 2^60 bound applies.
      if (*v > SessionFlowControl::kMaxStreams) return abort_with(kWtFlowControlError, "WT_STREAMS_BLOCKED above 2^60");
      return;
    default:
      return;  // WT_DATA_BLOCKED: informational (section 5.6.5)
  }
}

void SessionImpl::protocol_error(const Error &err) {
  UVWT_WARN("session %llu: %s", static_cast<unsigned long long>(id_), err.message.c_str());
  host_.reset_connect_stream(*this, err.code);
  fail(err);
}

void SessionImpl::on_capsule_data(const std::uint8_t *data, std::size_t len) {
  CallbackScope scope(*this);
  // draft-ietf-webtrans-http3 section 6 (-13..-16): "If any additional
  // stream data is received on the CONNECT stream after receiving a
  // WT_CLOSE_SESSION capsule, the stream MUST be reset with code H3_MESSAGE_ERROR."
  const Error after_close(Errc::protocol, "data after WT_CLOSE_SESSION", CodeSpace::h3, kH3MessageError);
  if (peer_closed_capsule_) {
    if (len > 0) protocol_error(after_close);
    return;
  }
  std::span<const std::uint8_t> in(data, len);
  Capsule c{};
  for (bool more = true; more;) {
    switch (parser_.next(in, c)) {
      case CapsuleParser::Step::need_more:
        more = false;
        break;
      case CapsuleParser::Step::error:
        protocol_error(parser_.error());  // RFC 9297 3.3 and the codes the parser chose
        return;
      case CapsuleParser::Step::capsule:
        handle_capsule(c.type, c.value);
        if (info_.state == SessionState::closed) return;  // a flow-control violation ended it
        if (peer_closed_capsule_ && !in.empty()) return protocol_error(after_close);
        more = !peer_closed_capsule_;
        break;
    }
  }
  if (peer_closed_capsule_ && info_.state != SessionState::closed) {
    // The close capsule ends the session; answer with our FIN. When both
    // sides closed at once, ours was first as far as this side knows: the
    // application asked for it and is told its own code.
    answer_peer_close();
  }
}

void SessionImpl::on_connect_stream_fin() {
  if (info_.state == SessionState::closed) return;
  // RFC 9297 3.3: a FIN that cuts the last capsule short makes the message
  // malformed, not a clean close.
  if (Error cut = parser_.finish(); cut) return protocol_error(cut);
  answer_peer_close();  // a FIN without a capsule: code 0, empty reason
}

void SessionImpl::answer_peer_close() {
  queue_capsule({}, true);
  SessionCloseInfo ci;
  if (local_close_) {
    ci.code = local_code_;
    ci.reason = local_reason_;
  } else {
    ci.code = peer_code_;
    ci.reason = peer_reason_;
    ci.remote = true;
  }
  finish(ci);
}

void SessionImpl::on_connect_stream_reset(std::uint64_t code) {
  SessionCloseInfo ci;
  ci.remote = true;
  ci.error = wire_code_error(Errc::session, "CONNECT stream reset by peer" + wt_code_suffix(code), code);
  if (info_.state == SessionState::connecting && code == kH3RequestRejected)
    // Draft-15 section 5.2: the server did not process the request (over its
    // session limit); the client may try another connection.
    ci.error = wire_code_error(Errc::session, "server refused the session unprocessed (H3_REQUEST_REJECTED)", code);
  finish(ci);
}

void SessionImpl::on_connect_stream_stopped(std::uint64_t code) {
  if (info_.state == SessionState::closed) return;
  SessionCloseInfo ci;
  if (local_close_) {
    // draft section 6: after our WT_CLOSE_SESSION the peer MAY stop reading (WT_SESSION_GONE).
    ci.code = local_code_;
    ci.reason = local_reason_;
  } else {
    ci.remote = true;
    ci.error = wire_code_error(Errc::session, "peer stopped reading the CONNECT stream (STOP_SENDING)", code);
  }
  // Nothing more to read either: stop the peer's side with WT_SESSION_GONE.
  host_.abandon_connect_stream(*this, false);
  finish(ci);
}

void SessionImpl::on_connect_stream_closed() {
  if (info_.state != SessionState::closed) {
    SessionCloseInfo ci;
    if (local_close_) {
      ci.code = local_code_;
      ci.reason = local_reason_;
    } else {
      ci.remote = true;
      ci.code = peer_code_;
      ci.reason = peer_reason_;
    }
    finish(ci);
  }
  host_.session_finished(*this);
}

void SessionImpl::abort_streams(const Error &err) {
  auto streams = std::move(streams_);
  streams_.clear();
  for (auto &[sid, st] : streams) st->abort_for_session(err);
  pending_bidi_.clear();
  pending_uni_.clear();
}

void SessionImpl::finish(const SessionCloseInfo &ci, bool deferred) {
  if (info_.state == SessionState::closed) return;
  CallbackScope scope(*this);
  const bool was_ready = info_.state != SessionState::connecting;
  info_.state = SessionState::closed;
  info_.closed_at = wall_seconds();
  stats_.closed_at = info_.closed_at;
  info_.close_info = ci;
  close_timer_.reset();
  abort_streams(ci.error ? ci.error : Error(Errc::session, "session closed", CodeSpace::application, ci.code));
  fail_waiting_opens();
  pending_dgrams_.clear();
  host_.session_closed(*this);
  if (deferred) {
    host_.defer([self = shared_from_this(), was_ready] { self->run_close_callbacks(was_ready); });
  } else {
    run_close_callbacks(was_ready);
  }
}

void SessionImpl::run_close_callbacks(bool was_ready) {
  CallbackScope scope(*this);
  const SessionCloseInfo ci = info_.close_info ? *info_.close_info : SessionCloseInfo{};
  if (ready_cb) {
    auto cb = std::move(ready_cb);
    ready_cb = nullptr;
    cb(ci.error ? ci.error : Error(Errc::session, "session closed before it was ready"), nullptr);
  }
  if (was_ready && on_closed_) {
    auto cb = std::move(on_closed_);
    on_closed_ = nullptr;
    cb(ci);
  }
  auto cbs = std::move(close_cbs_);
  close_cbs_.clear();
  for (const auto &c : cbs) c();
  auto listeners = std::move(close_listeners_);
  close_listeners_.clear();
  for (const auto &l : listeners) l();
  // Drop user callbacks: they often capture this session (cycles).
  on_closed_ = nullptr;
  on_bidi_ = nullptr;
  on_uni_ = nullptr;
  on_datagram_ = nullptr;
  on_draining_ = nullptr;
}

}  // namespace uvwt::detail
