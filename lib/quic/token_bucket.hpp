#pragma once

#include <algorithm>
#include <cstdint>

namespace uvwt::detail {

// Rate limit for answers the endpoint sends without any connection state
// (stateless resets, version negotiation, refusals): a flood of packets from
// forged addresses must not turn the server into a reflector, whatever the
// receive batch size. `rate` tokens per second accrue up to `burst`.
class TokenBucket {
 public:
  TokenBucket() = default;
  TokenBucket(std::uint32_t rate_per_second, std::uint32_t burst) noexcept { configure(rate_per_second, burst); }

  void configure(std::uint32_t rate_per_second, std::uint32_t burst) noexcept {
    rate_ = rate_per_second;
    burst_ = burst;
    tokens_ = burst;
    last_ns_ = 0;
  }

  // Takes one token if there is one; `now_ns` is monotonic nanoseconds.
  bool take(std::uint64_t now_ns) noexcept {
    refill(now_ns);
    if (tokens_ == 0) return false;
    --tokens_;
    return true;
  }

  [[nodiscard]] std::uint32_t available(std::uint64_t now_ns) noexcept {
    refill(now_ns);
    return tokens_;
  }

 private:
  void refill(std::uint64_t now_ns) noexcept {
    if (last_ns_ == 0 || now_ns < last_ns_) {
      last_ns_ = now_ns;
      return;
    }
    if (rate_ == 0) return;
    // Whole tokens only; the remainder of the interval stays accrued by
    // advancing the stamp by exactly the time those tokens took.
    const std::uint64_t per_token_ns = 1'000'000'000ull / rate_;
    const std::uint64_t elapsed = now_ns - last_ns_;
    const std::uint64_t earned = per_token_ns == 0 ? burst_ : elapsed / per_token_ns;
    if (earned == 0) return;
    tokens_ = static_cast<std::uint32_t>(std::min<std::uint64_t>(burst_, tokens_ + earned));
    last_ns_ = tokens_ == burst_ ? now_ns : last_ns_ + earned * per_token_ns;
  }

  std::uint32_t rate_ = 0, burst_ = 0, tokens_ = 0;
  std::uint64_t last_ns_ = 0;
};

}  // namespace uvwt::detail
