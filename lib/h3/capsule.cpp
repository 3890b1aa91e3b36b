#include "h3/capsule.hpp"

#include <algorithm>
#include <cstring>

namespace uvwt::detail {

namespace {

// Length of the valid UTF-8 sequence starting at p[0], or 0 when the bytes
// there are not one (bad lead byte, bad continuation, overlong form,
// surrogate, beyond U+10FFFF, or cut off by `avail`).
std::size_t utf8_sequence(const unsigned char *p, std::size_t avail) noexcept {
  const unsigned char c = p[0];
  if (c < 0x80) return 1;
  std::size_t len;
  std::uint32_t cp;
  if ((c & 0xe0) == 0xc0) {
    len = 2;
    cp = c & 0x1fu;
  } else if ((c & 0xf0) == 0xe0) {
    len = 3;
    cp = c & 0x0fu;
  } else if ((c & 0xf8) == 0xf0) {
    len = 4;
    cp = c & 0x07u;
  } else {
    return 0;
  }
  if (len > avail) return 0;
  for (std::size_t k = 1; k < len; ++k) {
    if ((p[k] & 0xc0) != 0x80) return 0;
    cp = (cp << 6) | (p[k] & 0x3fu);
  }
  static constexpr std::uint32_t kMinForLen[5] = {0, 0, 0x80, 0x800, 0x10000};
  if (cp < kMinForLen[len] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return 0;
  return len;
}

std::size_t write_capsule(std::uint64_t type, std::span<const std::uint8_t> head, std::span<const std::uint8_t> tail,
                          std::uint8_t *out, std::size_t cap) noexcept {
  const std::size_t value_len = head.size() + tail.size();
  const std::size_t total = varint_size(type) + varint_size(value_len) + value_len;
  if (total > cap) return 0;
  std::uint8_t *p = varint_write(out, type);
  p = varint_write(p, value_len);
  if (!head.empty()) std::memcpy(p, head.data(), head.size());
  p += head.size();
  if (!tail.empty()) std::memcpy(p, tail.data(), tail.size());
  return total;
}

std::size_t write_varint_capsule(std::uint64_t type, std::uint64_t v, std::uint8_t *out, std::size_t cap) noexcept {
  if (v > kVarintMax) return 0;
  std::uint8_t value[kVarintMaxSize];
  const auto n = static_cast<std::size_t>(varint_write(value, v) - value);
  return write_capsule(type, {value, n}, {}, out, cap);
}

bool is_varint_capsule(std::uint64_t type) noexcept {
  switch (type) {
    case kCapsuleMaxData:
    case kCapsuleMaxStreamsBidi:
    case kCapsuleMaxStreamsUni:
    case kCapsuleDataBlocked:
    case kCapsuleStreamsBlockedBidi:
    case kCapsuleStreamsBlockedUni:
      return true;
    default:
      return false;
  }
}

bool is_stream_count_capsule(std::uint64_t type) noexcept {
  return type == kCapsuleMaxStreamsBidi || type == kCapsuleMaxStreamsUni || type == kCapsuleStreamsBlockedBidi ||
         type == kCapsuleStreamsBlockedUni;
}

}  // namespace

bool is_known_capsule(std::uint64_t type) noexcept {
  return type == kCapsuleCloseSession || type == kCapsuleDrainSession || is_varint_capsule(type);
}

bool utf8_valid(std::string_view s) noexcept { return utf8_valid_prefix(s, s.size()) == s.size(); }

std::size_t utf8_valid_prefix(std::string_view s, std::size_t max) noexcept {
  const auto *p = reinterpret_cast<const unsigned char *>(s.data());
  const std::size_t end = std::min(max, s.size());
  std::size_t i = 0;
  while (i < end) {
    const std::size_t n = utf8_sequence(p + i, end - i);
    if (n == 0) break;
    i += n;
  }
  return i;
}

bool decode_close_session(std::span<const std::uint8_t> value, CloseSession &out) {
  if (value.size() < 4 || value.size() > 4 + kCloseReasonMax) return false;
  const std::string_view reason(reinterpret_cast<const char *>(value.data() + 4), value.size() - 4);
  if (!utf8_valid(reason)) return false;
  out.code = (std::uint32_t{value[0]} << 24) | (std::uint32_t{value[1]} << 16) | (std::uint32_t{value[2]} << 8) |
             std::uint32_t{value[3]};
  out.reason.assign(reason);
  return true;
}

std::optional<std::uint64_t> decode_capsule_varint(std::span<const std::uint8_t> value) noexcept {
  const auto v = varint_read(value);
  if (!v || v->len != value.size()) return std::nullopt;
  return v->value;
}

std::size_t encode_close_session(std::uint32_t code, std::string_view reason, std::uint8_t *out,
                                 std::size_t cap) noexcept {
  const std::size_t keep = utf8_valid_prefix(reason, kCloseReasonMax);
  const std::uint8_t code_bytes[4] = {static_cast<std::uint8_t>(code >> 24), static_cast<std::uint8_t>(code >> 16),
                                      static_cast<std::uint8_t>(code >> 8), static_cast<std::uint8_t>(code)};
  return write_capsule(kCapsuleCloseSession, code_bytes, {reinterpret_cast<const std::uint8_t *>(reason.data()), keep},
                       out, cap);
}

std::size_t encode_drain_session(std::uint8_t *out, std::size_t cap) noexcept {
  return write_capsule(kCapsuleDrainSession, {}, {}, out, cap);
}

std::size_t encode_max_data(std::uint64_t max_data, std::uint8_t *out, std::size_t cap) noexcept {
  return write_varint_capsule(kCapsuleMaxData, max_data, out, cap);
}

std::size_t encode_max_streams(bool bidi, std::uint64_t max_streams, std::uint8_t *out, std::size_t cap) noexcept {
  if (max_streams > kMaxStreamsLimit) return 0;
  return write_varint_capsule(bidi ? kCapsuleMaxStreamsBidi : kCapsuleMaxStreamsUni, max_streams, out, cap);
}

std::size_t encode_data_blocked(std::uint64_t limit, std::uint8_t *out, std::size_t cap) noexcept {
  return write_varint_capsule(kCapsuleDataBlocked, limit, out, cap);
}

std::size_t encode_streams_blocked(bool bidi, std::uint64_t limit, std::uint8_t *out, std::size_t cap) noexcept {
  if (limit > kMaxStreamsLimit) return 0;
  return write_varint_capsule(bidi ? kCapsuleStreamsBlockedBidi : kCapsuleStreamsBlockedUni, limit, out, cap);
}

// ------------------------------------------------------------------ parser

CapsuleParser::Step CapsuleParser::fail(std::string message, std::uint64_t code) {
  // RFC 9297 3.3: a capsule error makes the message malformed (RFC 9114
  // 4.1.2: stream error H3_MESSAGE_ERROR) unless a rule names another code.
  if (error_.ok()) error_ = Error(Errc::protocol, std::move(message), CodeSpace::h3, code);
  state_ = State::failed;
  return Step::error;
}

bool CapsuleParser::header_done() {
  const std::uint64_t len = remaining_;
  if (prohibit_stream_data_ && (type_ == kCapsuleMaxStreamData || type_ == kCapsuleStreamDataBlocked)) {
    // draft-ietf-webtrans-http3-16 5.4 (-14 5.4): "Endpoints MUST treat
    // receipt of a WT_MAX_STREAM_DATA or a WT_STREAM_DATA_BLOCKED capsule as
    // a session error." No code is named: the message carries a capsule it
    // must not (RFC 9114 4.1.2, H3_MESSAGE_ERROR), as for other capsule errors.
    fail(type_ == kCapsuleMaxStreamData ? "WT_MAX_STREAM_DATA is prohibited over HTTP/3"
                                        : "WT_STREAM_DATA_BLOCKED is prohibited over HTTP/3");
    return false;
  }
  if (!is_known_capsule(type_)) {
    state_ = len == 0 ? State::type : State::skip;
    return true;
  }
  bool ok;
  if (type_ == kCapsuleCloseSession)
    ok = len >= 4 && len <= 4 + kCloseReasonMax;
  else if (type_ == kCapsuleDrainSession)
    ok = len == 0;
  else
    ok = len >= 1 && len <= kVarintMaxSize;
  if (!ok || len > kCapsuleKnownValueMax) {
    fail("capsule of a known type with a bad length");
    return false;
  }
  value_len_ = static_cast<std::size_t>(len);
  buf_.clear();
  state_ = State::value;
  return true;
}

bool CapsuleParser::value_ok(std::span<const std::uint8_t> value) {
  const char *problem = nullptr;
  std::uint64_t code = kH3MessageError;
  if (type_ == kCapsuleCloseSession) {
    const std::string_view reason(reinterpret_cast<const char *>(value.data() + 4), value.size() - 4);
    if (!utf8_valid(reason)) problem = "WT_CLOSE_SESSION reason is not UTF-8";
  } else if (is_varint_capsule(type_)) {
    const auto v = decode_capsule_varint(value);
    if (!v)
      problem = "flow control capsule value is not one varint";
    else if (is_stream_count_capsule(type_) && *v > kMaxStreamsLimit) {
      problem = "stream limit above 2^60";
      code = stream_limit_code_;
    }
  }
  if (problem != nullptr) {
    fail(problem, code);
    return false;
  }
  return true;
}

CapsuleParser::Step CapsuleParser::next(std::span<const std::uint8_t> &in, Capsule &out) {
  for (;;) {
    switch (state_) {
      case State::failed:
        return Step::error;
      case State::type:
      case State::length: {
        if (in.empty()) return Step::need_more;
        in = in.subspan(varint_.feed(in));
        if (!varint_.done()) return Step::need_more;
        const std::uint64_t v = varint_.value();
        varint_.reset();
        if (state_ == State::type) {
          type_ = v;
          state_ = State::length;
        } else {
          remaining_ = v;
          if (!header_done()) return Step::error;
        }
        break;
      }
      case State::value: {
        std::span<const std::uint8_t> value;
        if (buf_.empty() && in.size() >= value_len_) {
          value = in.first(value_len_);  // whole in the caller's bytes: no copy
          in = in.subspan(value_len_);
        } else {
          if (in.empty()) return Step::need_more;
          const std::size_t take = std::min(in.size(), value_len_ - buf_.size());
          buf_.insert(buf_.end(), in.begin(), in.begin() + static_cast<std::ptrdiff_t>(take));
          in = in.subspan(take);
          if (buf_.size() < value_len_) return Step::need_more;
          value = buf_;
        }
        state_ = State::type;
        if (!value_ok(value)) return Step::error;
        out = Capsule{type_, value};
        return Step::capsule;
      }
      case State::skip: {
        if (in.empty()) return Step::need_more;
        const auto take = static_cast<std::size_t>(std::min<std::uint64_t>(in.size(), remaining_));
        in = in.subspan(take);
        remaining_ -= take;
        if (remaining_ == 0) state_ = State::type;
        break;
      }
    }
  }
}

Error CapsuleParser::finish() {
  if (state_ != State::failed && !at_boundary()) fail("stream ended inside a capsule");
  return error_;
}

}  // namespace uvwt::detail
