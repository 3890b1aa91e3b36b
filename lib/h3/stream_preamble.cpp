#include "h3/stream_preamble.hpp"

#include <algorithm>
#include <cstring>

#include "h3/wt_codes.hpp"

namespace uvwt::detail {

StreamPreambleParser::Result StreamPreambleParser::decide(PreambleState s, std::size_t consumed,
                                                          std::uint64_t code) noexcept {
  state_ = s;
  error_code_ = code;
  return {s, consumed, code};
}

StreamPreambleParser::Result StreamPreambleParser::feed(std::span<const std::uint8_t> in) noexcept {
  if (state_ != PreambleState::need_more) return {state_, 0, error_code_};

  // Look at held bytes and the new ones together; 16 bytes always settle it.
  std::uint8_t buf[sizeof held_];
  std::memcpy(buf, held_, held_len_);
  const std::size_t copied = std::min(in.size(), sizeof buf - held_len_);
  if (copied != 0) std::memcpy(buf + held_len_, in.data(), copied);
  const std::size_t avail = held_len_ + copied;

  // Both varints not complete means fewer than 16 bytes: all of `in` fits.
  auto keep_all = [&]() -> Result {
    std::memcpy(held_, buf, avail);
    held_len_ = avail;
    return {PreambleState::need_more, in.size(), 0};
  };

  const auto first = varint_read({buf, avail});
  if (!first) return keep_all();
  first_ = first->value;
  first_len_ = first->len;
  if (first_ != (bidi_ ? kFrameWebtransportStream : kStreamTypeWebtransport)) {
    // HTTP/3 on a server-initiated bidi stream does not exist (RFC 9114 6.1).
    if (bidi_ && webtransport_only_) return decide(PreambleState::error, 0, kH3StreamCreationError);
    return decide(PreambleState::http3, 0);
  }

  const auto session = varint_read({buf + first_len_, avail - first_len_});
  if (!session) return keep_all();
  const std::size_t header_len = first_len_ + session->len;
  const std::size_t consumed = header_len - held_len_;
  std::memcpy(held_, buf, header_len);
  held_len_ = header_len;
  header_len_ = header_len;
  session_id_ = session->value;
  // A session is a CONNECT stream: client-initiated and bidirectional.
  if (session_id_ % 4 != 0) return decide(PreambleState::error, consumed, kH3IdError);
  return decide(PreambleState::webtransport, consumed);
}

std::size_t encode_wt_bidi_preamble(std::uint64_t session_id, std::uint8_t *out) noexcept {
  std::uint8_t *p = varint_write(out, kFrameWebtransportStream);
  return static_cast<std::size_t>(varint_write(p, session_id) - out);
}

std::size_t encode_wt_uni_preamble(std::uint64_t session_id, std::uint8_t *out) noexcept {
  std::uint8_t *p = varint_write(out, kStreamTypeWebtransport);
  return static_cast<std::size_t>(varint_write(p, session_id) - out);
}

}  // namespace uvwt::detail
