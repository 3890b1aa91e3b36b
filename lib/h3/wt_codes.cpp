#include "h3/wt_codes.hpp"

namespace uvwt::detail {

std::optional<std::uint32_t> wt_h3_to_app(std::uint64_t h3) noexcept {
  if (h3 < kWtAppErrorFirst || h3 > kWtAppErrorLast || is_h3_grease(h3)) return std::nullopt;
  const std::uint64_t shifted = h3 - kWtAppErrorFirst;
  return static_cast<std::uint32_t>(shifted - shifted / 0x1f);
}

}  // namespace uvwt::detail
