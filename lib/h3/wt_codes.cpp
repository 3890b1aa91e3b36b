#include "h3/wt_codes.hpp"

#include <cstdio>

namespace uvwt::detail {

std::optional<std::uint32_t> wt_h3_to_app(std::uint64_t h3) noexcept {
  if (h3 < kWtAppErrorFirst || h3 > kWtAppErrorLast || is_h3_grease(h3)) return std::nullopt;
  const std::uint64_t shifted = h3 - kWtAppErrorFirst;
  return static_cast<std::uint32_t>(shifted - shifted / 0x1f);
}

std::string_view h3_code_name(std::uint64_t h3) noexcept {
  switch (h3) {
    case kH3NoError:
      return "H3_NO_ERROR";
    case kH3GeneralProtocolError:
      return "H3_GENERAL_PROTOCOL_ERROR";
    case kH3InternalError:
      return "H3_INTERNAL_ERROR";
    case kH3StreamCreationError:
      return "H3_STREAM_CREATION_ERROR";
    case kH3RequestRejected:
      return "H3_REQUEST_REJECTED";
    case kH3RequestCancelled:
      return "H3_REQUEST_CANCELLED";
    case kWtBufferedStreamRejected:
      return "WT_BUFFERED_STREAM_REJECTED";
    case kWtSessionGone:
      return "WT_SESSION_GONE";
    case kWtFlowControlError:
      return "WT_FLOW_CONTROL_ERROR";
    case kWtAlpnError:
      return "WT_ALPN_ERROR";
    case kWtRequirementsNotMet:
      return "WT_REQUIREMENTS_NOT_MET";
    default:
      return {};
  }
}

std::string wt_code_suffix(std::uint64_t h3) {
  if (wt_h3_to_app(h3)) return {};
  const auto name = h3_code_name(h3);
  if (!name.empty()) return " (" + std::string(name) + ")";
  char buf[40];
  std::snprintf(buf, sizeof buf, " (code 0x%llx)", static_cast<unsigned long long>(h3));
  return buf;
}

Error wire_code_error(Errc errc, std::string message, std::uint64_t h3) {
  if (const auto app = wt_h3_to_app(h3)) return {errc, std::move(message), CodeSpace::application, *app};
  switch (h3) {
    case kWtBufferedStreamRejected:
    case kWtSessionGone:
    case kWtFlowControlError:
    case kWtAlpnError:
    case kWtRequirementsNotMet:
      return {errc, std::move(message), CodeSpace::webtransport, h3};
    default:
      return {errc, std::move(message), CodeSpace::h3, h3};
  }
}

}  // namespace uvwt::detail
