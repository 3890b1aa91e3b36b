#pragma once

#include <uvwt/ticket_cache.hpp>
#include <uvwt/types.hpp>

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace uvwt::detail {

// One ticket as a client keeps it: what GnuTLS needs to resume, the
// server's transport parameters for 0-RTT, and when it stops being usable.
struct ResumptionTicket {
  Bytes tls_data;          // gnutls_session_get_data2
  Bytes transport_params;  // ngtcp2_conn_encode_0rtt_transport_params
  std::chrono::system_clock::time_point expires;
  bool early_data = false;  // the server allowed 0-RTT with this ticket
};

// The key tickets are filed under: a ticket is offered only to the server,
// name and protocols it was issued for (RFC 8446 section 4.6.1: only
// resume with the SNI the ticket was issued for).
std::string ticket_authority(const std::string &server_name, std::uint16_t port, const std::vector<std::string> &alpn);

class TicketCacheImpl final : public TicketCache {
 public:
  // RFC 8446 section 4.6.1: servers MUST NOT give lifetimes over 7 days,
  // clients MUST NOT cache tickets longer.
  static constexpr std::chrono::seconds kMaxLifetime{7 * 24 * 3600};

  TicketCacheImpl(std::size_t max_tickets, std::size_t max_per_authority, Clock clock);

  void store(const std::string &authority, ResumptionTicket ticket);
  // The newest unexpired ticket for `authority`, removed from the cache.
  std::optional<ResumptionTicket> take(const std::string &authority);
  [[nodiscard]] std::chrono::system_clock::time_point now() const { return clock_(); }

  [[nodiscard]] std::size_t size() const override;
  [[nodiscard]] TicketCacheStats stats() const override { return stats_; }
  void clear() override;

 private:
  struct Entry {
    ResumptionTicket ticket;
    std::uint64_t seq;  // store order, for eviction of the oldest
  };
  void drop_expired() const;
  void evict_oldest();

  std::size_t max_tickets_, max_per_authority_;
  Clock clock_;
  std::uint64_t next_seq_ = 0;
  // Newest last. Mutable: lookups drop what expired.
  mutable std::map<std::string, std::vector<Entry>> by_authority_;
  mutable TicketCacheStats stats_;
};

}  // namespace uvwt::detail
