#include <ngtcp2/ngtcp2.h>
#include <nghttp3/nghttp3.h>

#include <uvwt/version.hpp>

#include "uvwt_build_config.h"

namespace uvwt {

std::string_view version() noexcept { return UVWT_VERSION; }

int abi_version() noexcept { return UVWT_ABI_VERSION; }

std::string_view ngtcp2_version() noexcept {
  const ngtcp2_info *info = ::ngtcp2_version(0);
  return info != nullptr ? info->version_str : "";
}

std::string_view nghttp3_version() noexcept {
  const nghttp3_info *info = ::nghttp3_version(0);
  return info != nullptr ? info->version_str : "";
}

}  // namespace uvwt
