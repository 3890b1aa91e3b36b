#pragma once

// QUIC variable-length integers (RFC 9000, section 16): the two top bits of
// the first byte give the length (1, 2, 4 or 8 bytes), the rest is the value
// in network byte order. Every HTTP/3 and WebTransport field is one.

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>

namespace uvwt::detail {

inline constexpr std::uint64_t kVarintMax = (std::uint64_t{1} << 62) - 1;
inline constexpr std::size_t kVarintMaxSize = 8;

// Minimal encoded size of v; v must be <= kVarintMax.
constexpr std::size_t varint_size(std::uint64_t v) noexcept {
  if (v < (std::uint64_t{1} << 6)) return 1;
  if (v < (std::uint64_t{1} << 14)) return 2;
  if (v < (std::uint64_t{1} << 30)) return 4;
  return 8;
}

// Encoded size announced by a first byte, whatever the value turns out to be.
constexpr std::size_t varint_size_from_first(std::uint8_t first) noexcept { return std::size_t{1} << (first >> 6); }

// Writes v in its minimal form (v <= kVarintMax) and returns the end.
inline std::uint8_t *varint_write(std::uint8_t *p, std::uint64_t v) noexcept {
  const std::size_t n = varint_size(v);
  static constexpr std::uint8_t kPrefix[9] = {0, 0x00, 0x40, 0, 0x80, 0, 0, 0, 0xc0};
  for (std::size_t i = n; i-- > 0;) {
    p[i] = static_cast<std::uint8_t>(v);
    v >>= 8;
  }
  p[0] |= kPrefix[n];
  return p + n;
}

struct VarintRead {
  std::uint64_t value;
  std::size_t len;
};

// Decodes the varint at the start of `in`; nullopt while `in` is too short.
// Non-minimal encodings are valid QUIC and are accepted.
inline std::optional<VarintRead> varint_read(std::span<const std::uint8_t> in) noexcept {
  if (in.empty()) return std::nullopt;
  const std::size_t n = varint_size_from_first(in[0]);
  if (in.size() < n) return std::nullopt;
  std::uint64_t v = in[0] & 0x3f;
  for (std::size_t i = 1; i < n; ++i) v = (v << 8) | in[i];
  return VarintRead{v, n};
}

// Collects one varint from input that may arrive a byte at a time, for the
// incremental parsers: keeps at most 8 bytes and never allocates.
class VarintAssembler {
 public:
  // Takes the bytes this varint still needs from the front of `in` and
  // returns how many it took; done() tells whether the varint is complete.
  std::size_t feed(std::span<const std::uint8_t> in) noexcept {
    std::size_t taken = 0;
    while (!done() && taken < in.size()) {
      const std::uint8_t b = in[taken++];
      if (have_ == 0) {
        need_ = static_cast<std::uint8_t>(varint_size_from_first(b));
        value_ = b & 0x3f;
      } else {
        value_ = (value_ << 8) | b;
      }
      bytes_[have_++] = b;
    }
    return taken;
  }
  [[nodiscard]] bool done() const noexcept { return have_ != 0 && have_ == need_; }
  [[nodiscard]] bool started() const noexcept { return have_ != 0; }
  [[nodiscard]] std::uint64_t value() const noexcept { return value_; }
  // The bytes as they arrived (possibly a non-minimal encoding).
  [[nodiscard]] std::span<const std::uint8_t> bytes() const noexcept { return {bytes_, have_}; }
  void reset() noexcept {
    have_ = need_ = 0;
    value_ = 0;
  }

 private:
  std::uint64_t value_ = 0;
  std::uint8_t bytes_[kVarintMaxSize] = {};
  std::uint8_t have_ = 0, need_ = 0;
};

}  // namespace uvwt::detail
