#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include <uvwt/config.hpp>

#include "common/test_hooks.hpp"

#include "quic/socket_addr.hpp"

namespace uvwt::detail {

// Test-only network impairment (loss, duplication, reordering, delay,
// blackhole) for one UdpSocket, configured by the public
// uvwt::ImpairmentConfig (its `enabled` flag is the caller's business: a
// socket is impaired exactly while an Impairment is attached to it).
//
// This class decides and keeps the held packets; the socket owns the timer
// that releases them. Every decision comes from a seeded PRNG, so the same
// seed and the same packet sequence give the same outcome.

// xoshiro256**, seeded through splitmix64 (the seeding its authors advise).
class Prng {
 public:
  explicit Prng(std::uint64_t seed) noexcept;
  std::uint64_t next() noexcept;
  // Uniform in [0, 1).
  double uniform() noexcept { return static_cast<double>(next() >> 11) * 0x1.0p-53; }

 private:
  std::uint64_t s_[4];
};

enum class ImpairDirection : std::uint8_t { send, receive };

struct ImpairVerdict {
  bool drop = false;
  // Non-zero: flip bits of one byte (low 8 bits: the XOR mask, the rest: the
  // byte's position modulo the packet size). Applied to the held copy, so
  // a corrupted packet always goes through the queue.
  std::uint64_t corrupt = 0;
  bool duplicate = false;  // deliver twice (both copies share the delay)
  bool reordered = false;
  std::uint64_t delay_ns = 0;  // 0: pass now
};

struct ImpairmentCounters {
  std::uint64_t passed = 0;   // packets judged and not dropped
  std::uint64_t dropped = 0;  // loss, blackhole and queue overflow
  std::uint64_t delayed = 0;  // packets copied into the queue
  std::uint64_t duplicated = 0;
  std::uint64_t reordered = 0;
  std::uint64_t overflowed = 0;  // subset of dropped: queue was full
  std::uint64_t corrupted = 0;
};

// A packet copied into the queue until its release time.
struct HeldPacket {
  std::uint64_t due_ns = 0;
  std::uint64_t seq = 0;  // ties keep arrival order
  ImpairDirection dir = ImpairDirection::send;
  std::uint8_t ecn = 0;
  bool has_local = false;
  SockAddr remote;
  SockAddr local;
  std::vector<std::uint8_t> data;
};

class Impairment {
 public:
  // A reordered packet is held this much longer than the others (on top of
  // delay and jitter), so the packets behind it overtake it.
  static constexpr std::uint64_t kReorderHoldNs = 10'000'000;
  static constexpr std::size_t kDefaultQueueLimit = 4096;

  explicit Impairment(const ImpairmentConfig &cfg, std::size_t queue_limit = kDefaultQueueLimit);
  // Packets the socket must copy into the queue (delayed or corrupted).
  static bool held(const ImpairVerdict &v) noexcept { return v.delay_ns > 0 || v.corrupt != 0; }

  [[nodiscard]] const ImpairmentConfig &config() const noexcept { return cfg_; }
  // Takes effect for the next packet, queued ones included (a blackhole drops
  // them on release). The PRNG is not reseeded.
  void set_config(const ImpairmentConfig &cfg) noexcept { cfg_ = cfg; }
  void set_blackhole(bool on) noexcept { cfg_.blackhole = on; }
  [[nodiscard]] bool blackhole() const noexcept { return cfg_.blackhole; }
  [[nodiscard]] bool blackhole(ImpairDirection dir) const noexcept {
    return cfg_.blackhole || (dir == ImpairDirection::receive && cfg_.receive_blackhole);
  }

  // Decides the fate of one packet and counts it (a duplicate counts once in
  // `passed`).
  ImpairVerdict judge(ImpairDirection dir = ImpairDirection::send) noexcept;

  // Copies a packet into the queue, due `delay_ns` after `now_ns`. False (and
  // counted as dropped) when the queue is full.
  bool hold(std::uint64_t now_ns, std::uint64_t delay_ns, ImpairDirection dir, const SockAddr &remote,
            const SockAddr *local, std::uint8_t ecn, std::span<const std::uint8_t> data, std::uint64_t corrupt = 0);
  // Earliest release time; UINT64_MAX when the queue is empty.
  [[nodiscard]] std::uint64_t next_due() const noexcept;
  // Appends every packet due at `now_ns` to `out`, earliest first.
  void take_due(std::uint64_t now_ns, std::vector<HeldPacket> &out);
  [[nodiscard]] std::size_t queued() const noexcept { return heap_.size(); }
  void clear() noexcept { heap_.clear(); }

  [[nodiscard]] const ImpairmentCounters &counters() const noexcept { return counters_; }
  // For the socket: a released packet meeting a blackhole.
  void count_drop() noexcept { ++counters_.dropped; }

 private:
  ImpairmentConfig cfg_;
  Prng prng_;
  // Corruption draws from its own stream, so that turning it on leaves the
  // loss/duplicate/reorder pattern of a seed as it was.
  Prng corrupt_prng_;
  std::size_t limit_;
  std::uint64_t seq_ = 0;
  std::vector<HeldPacket> heap_;  // min-heap on (due_ns, seq)
  ImpairmentCounters counters_;
};

}  // namespace uvwt::detail
