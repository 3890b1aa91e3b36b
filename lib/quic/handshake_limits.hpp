#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <unordered_map>

#include "quic/socket_addr.hpp"

namespace uvwt::detail {

// How many handshakes a server runs at once, and from where: each one in
// progress holds a connection, a TLS session and crypto buffers (see
// docs/security.md for the measured size), so an Initial flood from forged
// addresses must not create them without bound. An Initial that carries a
// valid Retry token comes from an address that can receive our packets
// (RFC 9000, 8.1.2); one without such a token may come from anywhere.
struct HandshakeLimitsConfig {
  bool always_retry = false;          // every token-less Initial gets a Retry
  std::size_t max_unvalidated = 128;  // handshakes in progress before token-less Initials get a Retry
  std::size_t max_total = 1024;       // handshakes in progress before validated Initials are refused
  std::size_t max_per_address = 64;   // handshakes in progress per source IP (any port)
  std::uint64_t retry_token_lifetime_ns = 10'000'000'000;  // a Retry token is honoured this long
};

class HandshakeLimits {
 public:
  enum class Verdict { accept, retry, refuse };

  // One handshake in progress, counted until it completes or its connection
  // is destroyed, whichever comes first.
  class Slot {
   public:
    Slot() = default;
    Slot(Slot &&o) noexcept : owner_(o.owner_), key_(o.key_) { o.owner_ = nullptr; }
    Slot &operator=(Slot &&o) noexcept;
    Slot(const Slot &) = delete;
    Slot &operator=(const Slot &) = delete;
    ~Slot() { release(); }
    void release() noexcept;
    [[nodiscard]] bool held() const noexcept { return owner_ != nullptr; }

   private:
    friend class HandshakeLimits;
    HandshakeLimits *owner_ = nullptr;
    std::array<std::uint8_t, 17> key_{};
  };

  void configure(const HandshakeLimitsConfig &cfg) noexcept { cfg_ = cfg; }
  [[nodiscard]] const HandshakeLimitsConfig &config() const noexcept { return cfg_; }

  // What to do with an Initial from `remote`; `validated`: it carried a
  // valid Retry token.
  [[nodiscard]] Verdict judge(const SockAddr &remote, bool validated) const;
  // Counts a handshake that starts now.
  Slot open(const SockAddr &remote);

  [[nodiscard]] std::size_t in_progress() const noexcept { return total_; }
  [[nodiscard]] std::size_t in_progress_from(const SockAddr &remote) const;

 private:
  using Key = std::array<std::uint8_t, 17>;  // family byte, then the address (ports differ per attempt)
  struct KeyHash {
    std::size_t operator()(const Key &k) const noexcept;
  };
  static Key key_of(const SockAddr &a) noexcept;
  void close(const Key &k) noexcept;

  HandshakeLimitsConfig cfg_;
  std::size_t total_ = 0;
  std::unordered_map<Key, std::size_t, KeyHash> per_address_;  // entries > 0 only: at most total_ of them
};

}  // namespace uvwt::detail
