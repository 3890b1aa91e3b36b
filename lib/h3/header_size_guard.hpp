#pragma once

// Watches the HTTP/3 frames of a request stream on their way to nghttp3 and
// reports a HEADERS frame longer than SETTINGS_MAX_FIELD_SECTION_SIZE as soon
// as its length is known, before a byte of it is buffered or decoded
// (RFC 9114, 4.2.2). nghttp3 1.x announces the setting but does not enforce
// it, and its QPACK decoder fails the whole connection (H3_INTERNAL_ERROR)
// on a single value over 64 KiB. An encoded section is never longer than its
// decoded size (names + values + 32 per field) except with Huffman codes of
// more than 8 bits, which only rare bytes have; the decoded size itself is
// counted field by field as nghttp3 hands the fields out.

#include <cstdint>
#include <span>

#include "h3/varint.hpp"

namespace uvwt::detail {

class HeaderSizeGuard {
 public:
  // False once a HEADERS frame over `limit` bytes was announced (the stream
  // must then be refused; the guard stays failed).
  bool feed(std::span<const std::uint8_t> in, std::uint64_t limit) noexcept {
    while (!failed_ && !in.empty()) {
      if (state_ == State::payload) {
        const auto take = static_cast<std::size_t>(std::min<std::uint64_t>(left_, in.size()));
        in = in.subspan(take);
        left_ -= take;
        if (left_ == 0) state_ = State::type;
        continue;
      }
      in = in.subspan(varint_.feed(in));
      if (!varint_.done()) return true;
      const std::uint64_t v = varint_.value();
      varint_.reset();
      if (state_ == State::type) {
        type_ = v;
        state_ = State::length;
        continue;
      }
      if (type_ == 0x01 && v > limit) {  // HEADERS
        failed_ = true;
        announced_ = v;
        return false;
      }
      left_ = v;
      state_ = v == 0 ? State::type : State::payload;
    }
    return !failed_;
  }
  [[nodiscard]] bool failed() const noexcept { return failed_; }
  [[nodiscard]] std::uint64_t announced() const noexcept { return announced_; }

 private:
  enum class State : std::uint8_t { type, length, payload };
  State state_ = State::type;
  VarintAssembler varint_;
  std::uint64_t type_ = 0, left_ = 0, announced_ = 0;
  bool failed_ = false;
};

}  // namespace uvwt::detail
