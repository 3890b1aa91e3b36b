#pragma once

// Capsules (RFC 9297) on a WebTransport CONNECT stream: type varint, length
// varint, value. The stream's DATA payload arrives through nghttp3 in pieces
// of any size; the parser hands out whole known capsules and streams past
// unknown ones without keeping their bytes.

#include <uvwt/error.hpp>

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "h3/varint.hpp"
#include "h3/wt_codes.hpp"

namespace uvwt::detail {

struct Capsule {
  std::uint64_t type;
  std::span<const std::uint8_t> value;
};

struct CloseSession {
  std::uint32_t code = 0;
  std::string reason;  // valid UTF-8, at most kCloseReasonMax bytes
};

inline constexpr std::size_t kCloseReasonMax = 1024;
// No known capsule may be longer (the biggest, WT_CLOSE_SESSION, takes 1028).
inline constexpr std::size_t kCapsuleKnownValueMax = 2048;
// Room for any capsule the encoders below write.
inline constexpr std::size_t capsule_max_size =
    varint_size(kCapsuleCloseSession) + varint_size(4 + kCloseReasonMax) + 4 + kCloseReasonMax;

// The capsule types the parser hands out; all others are skipped.
bool is_known_capsule(std::uint64_t type) noexcept;

// Strict UTF-8 (no overlong forms, surrogates or code points past U+10FFFF).
bool utf8_valid(std::string_view s) noexcept;
// Length of the longest valid UTF-8 prefix of `s` that is at most `max` bytes.
std::size_t utf8_valid_prefix(std::string_view s, std::size_t max) noexcept;

// Value decoders. They accept exactly what the parser lets through for the
// type, so on a capsule from CapsuleParser they only fail on a wrong type.
bool decode_close_session(std::span<const std::uint8_t> value, CloseSession &out);
// WT_MAX_DATA, WT_MAX_STREAMS, WT_DATA_BLOCKED, WT_STREAMS_BLOCKED: one varint
// filling the whole value.
std::optional<std::uint64_t> decode_capsule_varint(std::span<const std::uint8_t> value) noexcept;

// Encoders return the bytes written, or 0 (writing nothing) when `cap` is
// too small or the value cannot be sent.
// `reason` is cut to its longest valid UTF-8 prefix of at most 1024 bytes.
std::size_t encode_close_session(std::uint32_t code, std::string_view reason, std::uint8_t *out,
                                 std::size_t cap) noexcept;
std::size_t encode_drain_session(std::uint8_t *out, std::size_t cap) noexcept;
std::size_t encode_max_data(std::uint64_t max_data, std::uint8_t *out, std::size_t cap) noexcept;
// Stream counts are limited to 2^60 (a stream id must stay below 2^62).
std::size_t encode_max_streams(bool bidi, std::uint64_t max_streams, std::uint8_t *out, std::size_t cap) noexcept;
std::size_t encode_data_blocked(std::uint64_t limit, std::uint8_t *out, std::size_t cap) noexcept;
std::size_t encode_streams_blocked(bool bidi, std::uint64_t limit, std::uint8_t *out, std::size_t cap) noexcept;

inline constexpr std::uint64_t kMaxStreamsLimit = std::uint64_t{1} << 60;

class CapsuleParser {
 public:
  enum class Step : std::uint8_t { need_more, capsule, error };

  // Pull interface: takes bytes from the front of `in`. On Step::capsule,
  // `out` is filled; its value points into `in` or into the parser and stays
  // valid until the next call. Step::need_more means `in` is used up.
  Step next(std::span<const std::uint8_t> &in, Capsule &out);

  // Push interface: calls on_capsule(type, value) for every known capsule
  // completed by `in`. Returns the error that stopped parsing, if any (a
  // protocol error with an HTTP/3 code; the parser stays failed).
  template <class F>
  Error feed(std::span<const std::uint8_t> in, F &&on_capsule) {
    Capsule c{};
    for (;;) {
      switch (next(in, c)) {
        case Step::need_more:
          return {};
        case Step::error:
          return error_;
        case Step::capsule:
          on_capsule(c.type, c.value);
          break;
      }
    }
  }

  // The stream ended: an error when that cut a capsule short.
  [[nodiscard]] Error finish();

  // Between capsules (nothing partial held).
  [[nodiscard]] bool at_boundary() const noexcept { return state_ == State::type && !varint_.started() && error_.ok(); }
  [[nodiscard]] const Error &error() const noexcept { return error_; }
  // HTTP/3 code for a WT_MAX_STREAMS / WT_STREAMS_BLOCKED value over 2^60
  // (the draft versions disagree: the session picks it by dialect).
  void set_stream_limit_code(std::uint64_t code) noexcept { stream_limit_code_ = code; }
  // WT_MAX_STREAM_DATA / WT_STREAM_DATA_BLOCKED become an error (the
  // dialects whose drafts prohibit them); otherwise they are unknown types.
  void prohibit_stream_data_capsules() noexcept { prohibit_stream_data_ = true; }

 private:
  enum class State : std::uint8_t { type, length, value, skip, failed };

  Step fail(std::string message, std::uint64_t code = kH3MessageError);
  bool header_done();
  bool value_ok(std::span<const std::uint8_t> value);

  State state_ = State::type;
  VarintAssembler varint_;
  std::uint64_t type_ = 0;
  std::uint64_t remaining_ = 0;  // value bytes still to come (value / skip)
  std::size_t value_len_ = 0;
  std::vector<std::uint8_t> buf_;  // a known capsule that arrived in pieces
  Error error_;
  std::uint64_t stream_limit_code_ = kH3MessageError;
  bool prohibit_stream_data_ = false;
};

}  // namespace uvwt::detail
