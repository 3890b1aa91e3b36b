#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "quic/quic_app.hpp"

namespace uvwt::detail {

// The outgoing HTTP Datagrams of one connection: a ring of fixed slots,
// allocated on first use, so that queueing a datagram never allocates
// (docs/performance.md). Full means full: the newest datagram is dropped
// and counted, datagrams being unreliable by contract.
class DatagramQueue {
 public:
  // Bytes of one slot (prefix and payload): room for a full 1452-byte QUIC
  // packet tunnelled inside one datagram (docs/proxy.md).
  static constexpr std::size_t kSlot = 1500;

  explicit DatagramQueue(std::size_t slots) : slots_(slots == 0 ? 1 : slots) {}

  // A slot to write one datagram of at most kSlot bytes into, then commit();
  // nullptr when the queue is full (counted as dropped).
  std::uint8_t *reserve() {
    if (buf_.empty()) {
      buf_.resize(slots_ * kSlot);
      len_.resize(slots_);
    }
    if (count_ == slots_) {
      ++dropped_;
      return nullptr;
    }
    return buf_.data() + tail() * kSlot;
  }
  void commit(std::size_t len) noexcept {
    len_[tail()] = len;
    ++count_;
  }
  // The oldest datagram, valid until pop(); nullptr when empty.
  const ngtcp2_vec *front() noexcept {
    if (count_ == 0) return nullptr;
    vec_.base = buf_.data() + head_ * kSlot;
    vec_.len = len_[head_];
    return &vec_;
  }
  // Drops the oldest datagram; `sent` false counts it as lost.
  void pop(bool sent) noexcept {
    if (count_ == 0) return;
    if (!sent) ++dropped_;
    head_ = (head_ + 1) % slots_;
    --count_;
  }
  void count_drop() noexcept { ++dropped_; }
  [[nodiscard]] std::size_t dropped() const noexcept { return dropped_; }
  [[nodiscard]] std::size_t size() const noexcept { return count_; }

 private:
  [[nodiscard]] std::size_t tail() const noexcept { return (head_ + count_) % slots_; }

  std::size_t slots_;
  std::vector<std::uint8_t> buf_;
  std::vector<std::size_t> len_;
  std::size_t head_ = 0, count_ = 0, dropped_ = 0;
  ngtcp2_vec vec_{};
};

}  // namespace uvwt::detail
