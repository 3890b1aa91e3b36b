#pragma once

#include <cstddef>

namespace uvwt::detail {

// How many DATAGRAM frames may be unacknowledged at once (0: no bound).
// Firefox's QUIC stack (neqo) queues received datagrams in its transport and
// keeps only 10 there, dropping the oldest; its HTTP/3 layer empties that
// queue after each batch of packets read, before it acknowledges them. So
// the datagrams it has not yet acknowledged are at most what one read batch
// may carry. A packet declared lost too early (a late ack on a loaded
// machine) reopens the window before Firefox has read it, so the bound
// keeps room for that: with 4 unacknowledged, bursts of echoes reached
// Firefox whole in every run measured, with 8 not always (docs/protocol.md,
// "Datagrams in flight"). The acknowledgments clock the datagrams out.
class DatagramWindow {
 public:
  void set_limit(std::size_t limit) noexcept { limit_ = limit; }
  [[nodiscard]] bool open() const noexcept { return limit_ == 0 || in_flight_ < limit_; }
  [[nodiscard]] std::size_t in_flight() const noexcept { return in_flight_; }
  void on_sent() noexcept { ++in_flight_; }
  // Acknowledged or declared lost: either way no longer in flight.
  void on_done() noexcept {
    if (in_flight_ > 0) --in_flight_;
  }
  // Nothing is in flight any more (no bytes outstanding): a frame ngtcp2
  // dropped without reporting it must not close the window for good.
  void clear() noexcept { in_flight_ = 0; }

 private:
  std::size_t limit_ = 0;
  std::size_t in_flight_ = 0;
};

}  // namespace uvwt::detail
