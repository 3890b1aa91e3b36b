#pragma once

// The UDP proxy's target checks (RFC 9298 §7: a proxy decides which targets
// its clients may reach). Pure functions, unit-tested on their own.

#include <cstdint>
#include <string_view>

#include <uvwt/udp_proxy.hpp>

#include "quic/socket_addr.hpp"

namespace uvwt::detail {

// The name (or literal) and port as requested, before any resolution.
bool target_name_allowed(const UdpProxyPolicy &p, std::string_view host, std::uint16_t port);

// Addresses a public proxy must not reach: loopback, unspecified, private
// (RFC 1918, RFC 4193 ULA), shared CGNAT (RFC 6598), link-local, multicast,
// broadcast, and the same inside IPv4-mapped IPv6.
bool is_private_address(const SockAddr &a) noexcept;

}  // namespace uvwt::detail
