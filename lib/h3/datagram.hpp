#pragma once

// HTTP Datagrams (RFC 9297) in QUIC DATAGRAM frames: the payload starts with
// the quarter stream id of the session (its CONNECT stream id / 4).

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <utility>

#include "h3/varint.hpp"

namespace uvwt::detail {

// Largest quarter stream id: stream ids stay below 2^62.
inline constexpr std::uint64_t kMaxQuarterStreamId = (std::uint64_t{1} << 60) - 1;

constexpr std::size_t datagram_prefix_size(std::uint64_t session_id) noexcept { return varint_size(session_id / 4); }

// `out` needs datagram_prefix_size(session_id) bytes (at most 8).
inline std::size_t encode_datagram_prefix(std::uint64_t session_id, std::uint8_t *out) noexcept {
  return static_cast<std::size_t>(varint_write(out, session_id / 4) - out);
}

// {session id, prefix length}; nullopt when the prefix is cut short or names
// an impossible stream (the caller drops the datagram or, per RFC 9297,
// treats it as H3_DATAGRAM_ERROR).
inline std::optional<std::pair<std::uint64_t, std::size_t>> decode_datagram_prefix(
    std::span<const std::uint8_t> payload) noexcept {
  const auto q = varint_read(payload);
  if (!q || q->value > kMaxQuarterStreamId) return std::nullopt;
  return std::pair<std::uint64_t, std::size_t>{q->value * 4, q->len};
}

}  // namespace uvwt::detail
