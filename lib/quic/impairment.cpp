#include "quic/impairment.hpp"

#include <algorithm>
#include <limits>

namespace uvwt::detail {

namespace {

std::uint64_t splitmix64(std::uint64_t &x) noexcept {
  std::uint64_t z = (x += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

constexpr std::uint64_t rotl(std::uint64_t x, int k) noexcept { return (x << k) | (x >> (64 - k)); }

// std::push_heap builds a max-heap: "greater" puts the earliest on top.
bool later(const HeldPacket &a, const HeldPacket &b) noexcept {
  return a.due_ns != b.due_ns ? a.due_ns > b.due_ns : a.seq > b.seq;
}

constexpr std::uint64_t kNsPerMs = 1'000'000;

}  // namespace

Prng::Prng(std::uint64_t seed) noexcept {
  for (auto &s : s_) s = splitmix64(seed);
}

std::uint64_t Prng::next() noexcept {
  const std::uint64_t result = rotl(s_[1] * 5, 7) * 9;
  const std::uint64_t t = s_[1] << 17;
  s_[2] ^= s_[0];
  s_[3] ^= s_[1];
  s_[1] ^= s_[2];
  s_[0] ^= s_[3];
  s_[2] ^= t;
  s_[3] = rotl(s_[3], 45);
  return result;
}

Impairment::Impairment(const ImpairmentConfig &cfg, std::size_t queue_limit)
    : cfg_(cfg), prng_(cfg.seed), corrupt_prng_(cfg.seed ^ 0xc0ffee5eed5ull), limit_(queue_limit) {}

ImpairVerdict Impairment::judge(ImpairDirection dir) noexcept {
  ImpairVerdict v;
  if (blackhole(dir)) {
    v.drop = true;
    ++counters_.dropped;
    return v;
  }
  // Always four draws per packet, so that one setting's pattern does not
  // shift when another setting changes.
  const double r_loss = prng_.uniform();
  const double r_dup = prng_.uniform();
  const double r_reorder = prng_.uniform();
  const double r_jitter = prng_.uniform();

  if (r_loss < cfg_.loss) {
    v.drop = true;
    ++counters_.dropped;
    return v;
  }
  ++counters_.passed;
  v.duplicate = r_dup < cfg_.duplicate;
  v.reordered = r_reorder < cfg_.reorder;
  v.delay_ns = std::uint64_t{cfg_.delay_ms} * kNsPerMs;
  if (cfg_.jitter_ms > 0)
    v.delay_ns += static_cast<std::uint64_t>(r_jitter * static_cast<double>(cfg_.jitter_ms) * kNsPerMs);
  if (v.reordered) v.delay_ns += kReorderHoldNs;
  if (v.duplicate) ++counters_.duplicated;
  if (v.reordered) ++counters_.reordered;
  if (cfg_.corrupt > 0 && corrupt_prng_.uniform() < cfg_.corrupt) {
    const std::uint64_t r = corrupt_prng_.next();
    v.corrupt = (r & ~std::uint64_t{0xff}) | ((r & 0xff) == 0 ? 0x01 : (r & 0xff));
    ++counters_.corrupted;
  }
  return v;
}

bool Impairment::hold(std::uint64_t now_ns, std::uint64_t delay_ns, ImpairDirection dir, const SockAddr &remote,
                      const SockAddr *local, std::uint8_t ecn, std::span<const std::uint8_t> data,
                      std::uint64_t corrupt) {
  if (heap_.size() >= limit_) {
    ++counters_.dropped;
    ++counters_.overflowed;
    return false;
  }
  HeldPacket p;
  p.due_ns = now_ns + delay_ns;
  p.seq = seq_++;
  p.dir = dir;
  p.ecn = ecn;
  p.remote = remote;
  if (local != nullptr) {
    p.local = *local;
    p.has_local = true;
  }
  p.data.assign(data.begin(), data.end());
  if (corrupt != 0 && !p.data.empty())
    p.data[(corrupt >> 8) % p.data.size()] ^= static_cast<std::uint8_t>(corrupt & 0xff);
  heap_.push_back(std::move(p));
  std::push_heap(heap_.begin(), heap_.end(), later);
  ++counters_.delayed;
  return true;
}

std::uint64_t Impairment::next_due() const noexcept {
  return heap_.empty() ? std::numeric_limits<std::uint64_t>::max() : heap_.front().due_ns;
}

void Impairment::take_due(std::uint64_t now_ns, std::vector<HeldPacket> &out) {
  while (!heap_.empty() && heap_.front().due_ns <= now_ns) {
    std::pop_heap(heap_.begin(), heap_.end(), later);
    out.push_back(std::move(heap_.back()));
    heap_.pop_back();
  }
}

}  // namespace uvwt::detail
