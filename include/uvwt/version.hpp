#pragma once

#include <string_view>

#include <uvwt/export.hpp>

// The version of the headers being compiled against. meson.build checks that
// MAJOR.MINOR.PATCH equals the project version.
#define UVWT_VERSION_MAJOR 0
#define UVWT_VERSION_MINOR 1
#define UVWT_VERSION_PATCH 0
// The binary interface generation of libuvwt.so: the shared library's soname
// is libuvwt.so.<UVWT_ABI_VERSION> (meson.build reads it from here). Raised
// whenever an exported symbol goes away or changes meaning, or a public
// class/struct changes layout or vtable; additions keep it.
#define UVWT_ABI_VERSION 1

namespace uvwt {

// The library's own version, "MAJOR.MINOR.PATCH", as built (may differ from
// the header macros above when the application runs against another build).
UVWT_EXPORT std::string_view version() noexcept;
// The ABI generation of the library as built (UVWT_ABI_VERSION of its headers).
UVWT_EXPORT int abi_version() noexcept;

// Versions of the QUIC/HTTP/3 libraries uvwt runs on (as loaded, not as built).
UVWT_EXPORT std::string_view ngtcp2_version() noexcept;
UVWT_EXPORT std::string_view nghttp3_version() noexcept;

}  // namespace uvwt
