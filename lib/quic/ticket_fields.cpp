#include "quic/ticket_fields.hpp"

namespace uvwt::detail {

namespace {

// Big-endian reads that refuse to run past the end.
struct Reader {
  std::span<const std::uint8_t> in;
  bool ok = true;
  std::uint32_t uint(std::size_t n) {
    if (!ok || in.size() < n) {
      ok = false;
      return 0;
    }
    std::uint32_t v = 0;
    for (std::size_t i = 0; i < n; ++i) v = (v << 8) | in[i];
    in = in.subspan(n);
    return v;
  }
  std::span<const std::uint8_t> bytes(std::size_t n) {
    if (!ok || in.size() < n) {
      ok = false;
      return {};
    }
    auto out = in.first(n);
    in = in.subspan(n);
    return out;
  }
};

constexpr std::uint32_t kEarlyDataExtension = 42;  // RFC 8446, 4.2

}  // namespace

std::optional<TicketFields> parse_new_session_ticket(std::span<const std::uint8_t> body) {
  // struct { uint32 ticket_lifetime; uint32 ticket_age_add;
  //          opaque ticket_nonce<0..255>; opaque ticket<1..2^16-1>;
  //          Extension extensions<0..2^16-2>; } NewSessionTicket;
  Reader r{body};
  TicketFields f;
  f.lifetime_s = r.uint(4);
  r.uint(4);           // ticket_age_add
  r.bytes(r.uint(1));  // ticket_nonce
  const std::size_t ticket_len = r.uint(2);
  if (r.ok && ticket_len == 0) return std::nullopt;
  r.bytes(ticket_len);
  Reader ext{r.bytes(r.uint(2))};
  if (!r.ok || !r.in.empty()) return std::nullopt;
  while (ext.ok && !ext.in.empty()) {
    const std::uint32_t type = ext.uint(2);
    Reader data{ext.bytes(ext.uint(2))};
    if (ext.ok && type == kEarlyDataExtension) {
      f.max_early_data_size = data.uint(4);
      if (!data.ok || !data.in.empty()) return std::nullopt;
      f.early_data = true;
    }
  }
  if (!ext.ok) return std::nullopt;
  return f;
}

}  // namespace uvwt::detail
