#include "server/target_policy.hpp"

#include <netinet/in.h>

#include <algorithm>
#include <cstring>
#include <string>

namespace uvwt::detail {

namespace {
std::string lower(std::string_view s) {
  std::string out(s);
  for (auto &c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

bool private_v4(std::uint32_t a) noexcept {  // host byte order
  const auto in = [a](std::uint32_t net, int bits) { return (a >> (32 - bits)) == (net >> (32 - bits)); };
  return in(0x00000000, 8) || in(0x0a000000, 8) || in(0x7f000000, 8) || in(0x64400000, 10) || in(0xa9fe0000, 16) ||
         in(0xac100000, 12) || in(0xc0a80000, 16) || in(0xe0000000, 4) || in(0xf0000000, 4);
}
}  // namespace

bool target_name_allowed(const UdpProxyPolicy &p, std::string_view host, std::uint16_t port) {
  if (!p.allowed_ports.empty() &&
      std::find(p.allowed_ports.begin(), p.allowed_ports.end(), port) == p.allowed_ports.end())
    return false;
  if (p.allowed_hosts.empty()) return true;
  const std::string h = lower(host);
  for (const auto &a : p.allowed_hosts) {
    const std::string allowed = lower(a);
    if (allowed == h) return true;
    // "*.example.com": any name strictly below example.com.
    if (allowed.size() > 2 && allowed.compare(0, 2, "*.") == 0 && h.size() > allowed.size() - 1 &&
        h.compare(h.size() - (allowed.size() - 1), allowed.size() - 1, allowed, 1) == 0)
      return true;
  }
  return false;
}

bool is_private_address(const SockAddr &a) noexcept {
  if (a.is_v4()) {
    const auto *sin = reinterpret_cast<const sockaddr_in *>(a.sa());
    return private_v4(ntohl(sin->sin_addr.s_addr));
  }
  if (!a.is_v6()) return true;
  const auto *b = reinterpret_cast<const sockaddr_in6 *>(a.sa())->sin6_addr.s6_addr;
  static constexpr std::uint8_t kMapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
  if (std::memcmp(b, kMapped, 12) == 0) {
    const std::uint32_t v4 = (std::uint32_t{b[12]} << 24) | (std::uint32_t{b[13]} << 16) | (std::uint32_t{b[14]} << 8) |
                             std::uint32_t{b[15]};
    return private_v4(v4);
  }
  bool zero_prefix = true;  // :: and ::1
  for (int i = 0; i < 15; ++i) zero_prefix = zero_prefix && b[i] == 0;
  if (zero_prefix && (b[15] == 0 || b[15] == 1)) return true;
  return (b[0] & 0xfe) == 0xfc ||                    // fc00::/7 unique local
         (b[0] == 0xfe && (b[1] & 0xc0) == 0x80) ||  // fe80::/10 link-local
         b[0] == 0xff;                               // ff00::/8 multicast
}

}  // namespace uvwt::detail
