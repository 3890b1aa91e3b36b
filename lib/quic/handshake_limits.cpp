#include "quic/handshake_limits.hpp"

#include <cstring>

namespace uvwt::detail {

HandshakeLimits::Slot &HandshakeLimits::Slot::operator=(Slot &&o) noexcept {
  if (this != &o) {
    release();
    owner_ = o.owner_;
    key_ = o.key_;
    o.owner_ = nullptr;
  }
  return *this;
}

void HandshakeLimits::Slot::release() noexcept {
  if (owner_ == nullptr) return;
  owner_->close(key_);
  owner_ = nullptr;
}

std::size_t HandshakeLimits::KeyHash::operator()(const Key &k) const noexcept {
  std::uint64_t h = 1469598103934665603ull;  // FNV-1a
  for (const auto b : k) h = (h ^ b) * 1099511628211ull;
  return static_cast<std::size_t>(h);
}

HandshakeLimits::Key HandshakeLimits::key_of(const SockAddr &a) noexcept {
  Key k{};
  if (a.is_v4()) {
    k[0] = 4;
    std::memcpy(k.data() + 1, &a.v4().sin_addr, 4);
  } else if (a.is_v6()) {
    k[0] = 6;
    std::memcpy(k.data() + 1, &a.v6().sin6_addr, 16);
  }
  return k;
}

HandshakeLimits::Verdict HandshakeLimits::judge(const SockAddr &remote, bool validated) const {
  const std::size_t from = in_progress_from(remote);
  if (validated) return total_ >= cfg_.max_total || from >= cfg_.max_per_address ? Verdict::refuse : Verdict::accept;
  // A Retry costs us one packet and no state; the client pays a round trip.
  if (cfg_.always_retry || total_ >= cfg_.max_unvalidated || total_ >= cfg_.max_total || from >= cfg_.max_per_address)
    return Verdict::retry;
  return Verdict::accept;
}

HandshakeLimits::Slot HandshakeLimits::open(const SockAddr &remote) {
  Slot s;
  s.owner_ = this;
  s.key_ = key_of(remote);
  ++per_address_[s.key_];
  ++total_;
  return s;
}

std::size_t HandshakeLimits::in_progress_from(const SockAddr &remote) const {
  auto it = per_address_.find(key_of(remote));
  return it == per_address_.end() ? 0 : it->second;
}

void HandshakeLimits::close(const Key &k) noexcept {
  if (total_ > 0) --total_;
  auto it = per_address_.find(k);
  if (it == per_address_.end()) return;
  if (--it->second == 0) per_address_.erase(it);
}

}  // namespace uvwt::detail
