#pragma once

#include <sys/socket.h>
#include <uv.h>

#include <cstddef>
#include <cstdint>
#include <memory>

#include "quic/socket_addr.hpp"

namespace uvwt::detail {

struct RecvPacket;

// One recvmmsg slot: where the kernel writes a datagram's addresses and
// control data; iov points into the shared data area.
struct RecvSlot {
  SockAddr remote;
  SockAddr local;
  iovec iov;
  alignas(cmsghdr) unsigned char ctrl[128];
};

// The receive batch of every UdpSocket on one loop with the same batch and
// buffer size: 64 slots of 64 KiB with GRO (4 MiB of address space, and every
// page a GRO super-packet ever touched stays resident), which a client paid
// per connection when each connection owned its own.
//
// One set suffices per loop because a socket reads only from its own poll
// callback and hands the packets on (UdpReceiver::on_packets) before the
// next read: no read nests inside another, and no layer keeps a pointer into
// the data after on_packets returns (ngtcp2 decrypts into its own buffers,
// the impairment layer and the UDP proxy copy what they keep).
class ReceiveBuffers {
 public:
  static constexpr std::size_t kOutBatch = 256;

  static std::shared_ptr<ReceiveBuffers> for_loop(uv_loop_t *loop, std::size_t batch, std::size_t buffer_size);
  ReceiveBuffers(uv_loop_t *loop, std::size_t batch, std::size_t buffer_size);
  ~ReceiveBuffers();
  ReceiveBuffers(const ReceiveBuffers &) = delete;
  ReceiveBuffers &operator=(const ReceiveBuffers &) = delete;

  [[nodiscard]] RecvSlot *slots() noexcept { return slots_.get(); }
  [[nodiscard]] mmsghdr *msgs() noexcept { return msgs_.get(); }
  [[nodiscard]] RecvPacket *out() noexcept { return out_.get(); }

 private:
  uv_loop_t *loop_;
  std::size_t batch_, buffer_size_;
  std::unique_ptr<std::uint8_t[]> data_;
  std::unique_ptr<RecvSlot[]> slots_;
  std::unique_ptr<mmsghdr[]> msgs_;
  std::unique_ptr<RecvPacket[]> out_;
};

}  // namespace uvwt::detail
