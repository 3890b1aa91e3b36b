#pragma once

#include <cstdint>
#include <optional>
#include <span>

namespace uvwt::detail {

// What a client needs to know of a TLS 1.3 NewSessionTicket body (RFC 8446,
// 4.6.1) that GnuTLS does not tell: how long it may be kept and whether it
// allows 0-RTT.
struct TicketFields {
  std::uint32_t lifetime_s = 0;
  bool early_data = false;                // an early_data extension is present (4.2.10)
  std::uint32_t max_early_data_size = 0;  // its value; QUIC requires 0xffffffff (RFC 9001, 4.6.1)
};

// The body without the 4-byte handshake header. nullopt when malformed.
std::optional<TicketFields> parse_new_session_ticket(std::span<const std::uint8_t> body);

}  // namespace uvwt::detail
