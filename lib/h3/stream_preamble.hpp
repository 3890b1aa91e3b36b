#pragma once

// The first bytes of a stream the peer opened decide who reads it: a
// WebTransport stream (bidi: 0x41 + session id; uni: type 0x54 + session id)
// goes to the WebTransport layer, anything else to nghttp3, which must not
// see a single byte of a WebTransport stream (docs/protocol.md, "Checked on these
// machines"). The parser holds the bytes of earlier calls until it can tell.

#include <cstddef>
#include <cstdint>
#include <span>

#include "h3/varint.hpp"

namespace uvwt::detail {

enum class PreambleState : std::uint8_t { need_more, webtransport, http3, error };

// Longest preamble: a 2-byte signal/type and an 8-byte session id.
inline constexpr std::size_t kWtPreambleMaxSize = 2 + kVarintMaxSize;

class StreamPreambleParser {
 public:
  struct Result {
    PreambleState state;
    // webtransport: bytes of this call's input that belong to the preamble
    // (payload starts there). http3: always 0, nothing is taken. need_more:
    // the whole input (kept in held()).
    std::size_t consumed;
    std::uint64_t error_code;  // HTTP/3 error code in the error state
  };

  // `webtransport_only`: a stream that cannot be HTTP/3 (a server-initiated
  // bidi stream seen by a client); anything but 0x41 is then an error.
  explicit StreamPreambleParser(bool bidi, bool webtransport_only = false) noexcept
      : bidi_(bidi), webtransport_only_(webtransport_only) {}

  // Feed the stream's bytes in order. Once the state is decided, further
  // calls change nothing and return it with consumed == 0.
  Result feed(std::span<const std::uint8_t> in) noexcept;

  [[nodiscard]] PreambleState state() const noexcept { return state_; }
  [[nodiscard]] bool bidi() const noexcept { return bidi_; }
  // Bytes taken by earlier calls that returned need_more. In the http3 state
  // the caller passes these to nghttp3, followed by the whole input of the
  // call that decided. In the webtransport state: the whole preamble.
  [[nodiscard]] std::span<const std::uint8_t> held() const noexcept { return {held_, held_len_}; }
  // webtransport: the session (CONNECT stream) id; preamble size in bytes.
  [[nodiscard]] std::uint64_t session_id() const noexcept { return session_id_; }
  [[nodiscard]] std::size_t header_len() const noexcept { return header_len_; }
  // The first varint (uni: stream type; bidi: first frame type) and its size,
  // known once the state is no longer need_more (0x00 marks the control stream).
  [[nodiscard]] std::uint64_t uni_type() const noexcept { return first_; }
  [[nodiscard]] std::uint64_t first_varint() const noexcept { return first_; }
  [[nodiscard]] std::size_t type_len() const noexcept { return first_len_; }
  [[nodiscard]] std::uint64_t error_code() const noexcept { return error_code_; }

 private:
  Result decide(PreambleState s, std::size_t consumed, std::uint64_t code = 0) noexcept;

  bool bidi_;
  bool webtransport_only_;
  PreambleState state_ = PreambleState::need_more;
  std::uint8_t held_[2 * kVarintMaxSize] = {};
  std::size_t held_len_ = 0;
  std::uint64_t first_ = 0;
  std::size_t first_len_ = 0;
  std::uint64_t session_id_ = 0;
  std::size_t header_len_ = 0;
  std::uint64_t error_code_ = 0;
};

// Preamble of a WebTransport stream we open; `out` needs kWtPreambleMaxSize.
std::size_t encode_wt_bidi_preamble(std::uint64_t session_id, std::uint8_t *out) noexcept;
std::size_t encode_wt_uni_preamble(std::uint64_t session_id, std::uint8_t *out) noexcept;

}  // namespace uvwt::detail
