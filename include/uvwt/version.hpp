#pragma once

#include <string_view>

namespace uvwt {

// The library's own version, "MAJOR.MINOR.PATCH".
std::string_view version() noexcept;

// Versions of the QUIC/HTTP/3 libraries uvwt runs on (as loaded, not as built).
std::string_view ngtcp2_version() noexcept;
std::string_view nghttp3_version() noexcept;

}  // namespace uvwt
