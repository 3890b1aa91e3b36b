#pragma once

#include <cstddef>

namespace uvwt::detail {

// Length of every connection id this library chooses when no QUIC-LB
// configuration says otherwise (lib/quic/quic_lb_cid.hpp): the client's first
// ids, the server's ids, Retry source ids. One value, because the endpoint
// parses short-header packets with its id length (a short header does not
// carry the length, RFC 9000 17.3.1): an id of any other length would not route.
// 18 bytes: room for 144 random bits within the 20-byte maximum.
inline constexpr std::size_t kCidLen = 18;

}  // namespace uvwt::detail
