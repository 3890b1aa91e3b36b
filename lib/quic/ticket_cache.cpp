#include "quic/ticket_cache.hpp"

#include <algorithm>
#include <memory>

namespace uvwt {

std::shared_ptr<TicketCache> TicketCache::create(std::size_t max_tickets, std::size_t max_per_authority, Clock clock) {
  return std::make_shared<detail::TicketCacheImpl>(max_tickets, max_per_authority, std::move(clock));
}

namespace detail {

std::string ticket_authority(const std::string &server_name, std::uint16_t port, const std::vector<std::string> &alpn) {
  std::string key = server_name + ':' + std::to_string(port);
  // Length-prefixed so that no two ALPN lists give the same key.
  for (const auto &p : alpn) key += '/' + std::to_string(p.size()) + ':' + p;
  return key;
}

TicketCacheImpl::TicketCacheImpl(std::size_t max_tickets, std::size_t max_per_authority, Clock clock)
    : max_tickets_(std::max<std::size_t>(1, max_tickets)),
      max_per_authority_(std::max<std::size_t>(1, max_per_authority)),
      clock_(clock ? std::move(clock) : Clock([] { return std::chrono::system_clock::now(); })) {}

void TicketCacheImpl::drop_expired() const {
  const auto now = clock_();
  for (auto it = by_authority_.begin(); it != by_authority_.end();) {
    auto &v = it->second;
    stats_.expired += std::erase_if(v, [now](const Entry &e) { return e.ticket.expires <= now; });
    it = v.empty() ? by_authority_.erase(it) : std::next(it);
  }
}

void TicketCacheImpl::evict_oldest() {
  auto oldest = by_authority_.end();
  for (auto it = by_authority_.begin(); it != by_authority_.end(); ++it) {
    if (oldest == by_authority_.end() || it->second.front().seq < oldest->second.front().seq) oldest = it;
  }
  if (oldest == by_authority_.end()) return;
  oldest->second.erase(oldest->second.begin());
  if (oldest->second.empty()) by_authority_.erase(oldest);
  ++stats_.evicted;
}

void TicketCacheImpl::store(const std::string &authority, ResumptionTicket ticket) {
  const auto now = clock_();
  ticket.expires = std::min(ticket.expires, now + kMaxLifetime);
  if (ticket.expires <= now || ticket.tls_data.empty()) return;
  drop_expired();
  auto &v = by_authority_[authority];
  if (v.size() >= max_per_authority_) {
    v.erase(v.begin());
    ++stats_.evicted;
  }
  v.push_back({std::move(ticket), next_seq_++});
  ++stats_.stored;
  while (size() > max_tickets_) evict_oldest();
}

std::optional<ResumptionTicket> TicketCacheImpl::take(const std::string &authority) {
  drop_expired();
  auto it = by_authority_.find(authority);
  if (it == by_authority_.end()) return std::nullopt;
  ResumptionTicket t = std::move(it->second.back().ticket);
  it->second.pop_back();
  if (it->second.empty()) by_authority_.erase(it);
  ++stats_.used;
  return t;
}

std::size_t TicketCacheImpl::size() const {
  drop_expired();
  std::size_t n = 0;
  for (const auto &[k, v] : by_authority_) n += v.size();
  return n;
}

void TicketCacheImpl::clear() { by_authority_.clear(); }

}  // namespace detail
}  // namespace uvwt
