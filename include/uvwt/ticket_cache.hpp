#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>

namespace uvwt {

// Counters of a TicketCache since it was created.
struct TicketCacheStats {
  std::uint64_t stored = 0;   // tickets the servers issued and the cache kept
  std::uint64_t used = 0;     // tickets handed to a new connection (each is used once)
  std::uint64_t expired = 0;  // dropped because their lifetime ran out
  std::uint64_t evicted = 0;  // dropped to stay within the bounds
};

// TLS session tickets a client keeps to resume later connections to the
// same server (docs/api/client.md, "Resumption and 0-RTT"). Tickets are
// filed per authority: host, port, SNI and the ALPN list together, so a
// ticket is only offered where it was issued. Each ticket is used once
// (RFC 8446 section C.4: reuse would let observers link connections) and
// is dropped when the lifetime the server gave it ends (capped at 7 days,
// RFC 8446 section 4.6.1). With a ticket the cache also keeps the server's
// transport parameters that 0-RTT needs (RFC 9000 section 7.4.1).
//
// A Client makes one of its own unless ClientConfig::ticket_cache names one;
// several Clients and Connection::create_client calls may share one by
// setting the same pointer. Loop thread only (not thread-safe).
class TicketCache {
 public:
  using Clock = std::function<std::chrono::system_clock::time_point()>;

  // max_tickets bounds the whole cache, max_per_authority each authority;
  // beyond either the oldest ticket goes first. `clock` replaces the system
  // clock (tests); empty: std::chrono::system_clock::now.
  static std::shared_ptr<TicketCache> create(std::size_t max_tickets = 256, std::size_t max_per_authority = 4,
                                             Clock clock = {});
  virtual ~TicketCache() = default;

  // Tickets held now (expired ones are dropped as they are seen).
  [[nodiscard]] virtual std::size_t size() const = 0;
  [[nodiscard]] virtual TicketCacheStats stats() const = 0;
  // Forgets every ticket (e.g. when the user signs out).
  virtual void clear() = 0;
};

}  // namespace uvwt
