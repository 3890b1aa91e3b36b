#pragma once

#include <sys/socket.h>
#include <uv.h>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <vector>

#include <uvwt/config.hpp>
#include <uvwt/error.hpp>

#include "quic/impairment.hpp"
#include "quic/receive_buffers.hpp"
#include "quic/socket_addr.hpp"

namespace uvwt::detail {

// ECN codepoints (the two low bits of TOS / traffic class).
inline constexpr std::uint8_t kEcnNotEct = 0;
inline constexpr std::uint8_t kEcnEct1 = 1;
inline constexpr std::uint8_t kEcnEct0 = 2;
inline constexpr std::uint8_t kEcnCe = 3;

struct UdpOptions {
  bool allow_gso = true;
  bool allow_gro = true;
  // Kernel buffer sizes: best effort (capped by net.core.[rw]mem_max).
  int recv_buffer_size = 4 << 20;
  int send_buffer_size = 4 << 20;
  // Messages per recvmmsg call; every buffer is allocated once, in open().
  std::size_t recv_batch = 64;
  // Join the SO_REUSEPORT group of the address (ServerGroup workers).
  bool reuse_port = false;
  // Receive buffer per message without GRO; larger datagrams are dropped
  // (counted in recv_truncated). With GRO every buffer is 64 KiB.
  std::size_t max_datagram_size = 2048;
  // Datagrams read per wakeup before returning to the loop, so one busy
  // socket cannot starve the loop's other handles.
  std::size_t recv_budget = 1024;
};

// One QUIC datagram as received. The pointers and the span are valid only
// during the on_packets call.
struct RecvPacket {
  const SockAddr *remote = nullptr;
  // The address the packet was sent to: from IP_PKTINFO when the socket is
  // bound to a wildcard address, otherwise the bound address.
  const SockAddr *local = nullptr;
  std::uint8_t ecn = 0;
  std::span<const std::uint8_t> data;
};

class UdpSocket;

// Receives everything a socket reports; the socket is passed along so one
// receiver can serve several sockets. No callback may destroy the socket;
// close() is allowed from any of them.
class UdpReceiver {
 public:
  // Called with batches; GRO super-packets are already split.
  virtual void on_packets(UdpSocket &sock, std::span<const RecvPacket> pkts) = 0;
  // After want_writable(true), once the socket accepts data again. The
  // interest is cleared before the call (call want_writable again if needed).
  virtual void on_writable(UdpSocket &sock) { (void)sock; }
  // ICMP (or local) error about a packet we sent to `remote`: ECONNREFUSED
  // for port unreachable, EHOSTUNREACH, ENETUNREACH, EMSGSIZE ...
  virtual void on_error(UdpSocket &sock, const SockAddr &remote, int errno_value) {
    (void)sock;
    (void)remote;
    (void)errno_value;
  }

 protected:
  ~UdpReceiver() = default;
};

struct SendResult {
  enum class Status : std::uint8_t { ok, would_block, error };
  Status status = Status::ok;
  int error = 0;  // errno when status == error
  // Bytes of `data` that left, always whole datagrams. On would_block the
  // caller still owns data.subspan(bytes_sent) (resending all of `data`
  // is harmless for QUIC, just wasteful). On error the datagram at
  // bytes_sent was refused; treat it as lost unless the errno says more
  // (ENOBUFS, EMSGSIZE for a PMTU probe, ENETUNREACH ...).
  std::size_t bytes_sent = 0;

  [[nodiscard]] bool ok() const noexcept { return status == Status::ok; }
  [[nodiscard]] bool would_block() const noexcept { return status == Status::would_block; }
};

// Plain counters, read by the bench.
struct UdpCounters {
  std::uint64_t packets_sent = 0;
  std::uint64_t bytes_sent = 0;
  std::uint64_t packets_received = 0;
  std::uint64_t bytes_received = 0;
  std::uint64_t send_syscalls = 0;
  std::uint64_t recv_syscalls = 0;
  std::uint64_t gso_batches = 0;  // sendmsg calls carrying UDP_SEGMENT
  std::uint64_t gro_batches = 0;  // received buffers holding more than one datagram
  std::uint64_t would_block = 0;
  std::uint64_t send_errors = 0;
  std::uint64_t recv_errors = 0;
  std::uint64_t recv_truncated = 0;  // datagrams larger than the buffer, dropped
  std::uint64_t icmp_errors = 0;     // error-queue reports delivered to on_error
};

// A non-blocking UDP socket owned by uvwt and watched by a uv_poll_t on the
// user's loop, since libuv's uv_udp_t cannot pass GSO/GRO/ECN/pktinfo
// ancillary data. One address family per socket (IPV6_V6ONLY on v6).
//
// Lifetime: close(cb) must be called before the loop is closed; cb runs from
// the handles' close callbacks, never synchronously. Destroying the object is
// safe at any time (before close() it closes everything without a callback;
// after close() the pending cb still runs). It must not be destroyed from
// inside one of its own callbacks.
class UdpSocket {
 public:
  using Receiver = UdpReceiver;
  using SendStatus = SendResult::Status;

  static std::unique_ptr<UdpSocket> open(uv_loop_t *loop, const SockAddr &bind_addr, const UdpOptions &opts,
                                         Error &err);
  ~UdpSocket();
  UdpSocket(const UdpSocket &) = delete;
  UdpSocket &operator=(const UdpSocket &) = delete;

  void set_receiver(UdpReceiver *r) noexcept { receiver_ = r; }

  // Sends `data` to `remote`: equal `segment_size` datagrams (the last may
  // be shorter), one GSO sendmsg per up to 64 of them where the kernel allows,
  // otherwise sendmmsg of the datagrams. `local` picks the source address
  // (IP_PKTINFO) on a wildcard-bound socket; null means the kernel's choice.
  // segment_size 0 means one datagram.
  SendResult send(const SockAddr &remote, const SockAddr *local, std::uint8_t ecn, std::span<const std::uint8_t> data,
                  std::size_t segment_size);

  // Adds/removes UV_WRITABLE interest; see UdpReceiver::on_writable.
  void want_writable(bool on);

  void close(std::function<void()> cb);
  [[nodiscard]] bool closing() const noexcept { return closing_; }

  [[nodiscard]] const SockAddr &local_addr() const noexcept { return local_; }
  [[nodiscard]] int family() const noexcept { return local_.family(); }
  [[nodiscard]] bool gso() const noexcept { return gso_; }
  [[nodiscard]] bool gro() const noexcept { return gro_; }
  [[nodiscard]] int fd() const noexcept { return fd_; }
  [[nodiscard]] uv_loop_t *loop() const noexcept { return loop_; }
  [[nodiscard]] const UdpCounters &counters() const noexcept { return counters_; }
  // The loop's shared receive batch this socket reads into (tests compare it).
  [[nodiscard]] const ReceiveBuffers *receive_buffers() const noexcept { return rx_.get(); }

  // Test impairment on both directions; none (the default) costs the fast
  // path one branch. With cfg.enabled an impairment is attached (or, if one
  // is, reconfigured keeping its PRNG state, held packets and counters, so
  // a blackhole can be toggled); without, it is removed and the packets it
  // holds are dropped. Returns the live impairment or null.
  Impairment *set_impairment(const ImpairmentConfig &cfg);
  [[nodiscard]] Impairment *impairment() noexcept { return impair_.get(); }

  // Test hook: while stalled, send() returns would_block without a syscall
  // (as with a full kernel buffer) and UV_WRITABLE interest waits for the
  // stall to end, so backpressure paths can be exercised on loopback, where
  // the kernel never blocks a UDP sender.
  void set_send_stalled(bool on);

 private:
  struct Handles;

  UdpSocket(uv_loop_t *loop, int fd, const SockAddr &local, const UdpOptions &opts);
  // Every receive and send buffer, up front (no allocation per packet).
  void alloc_buffers(const UdpOptions &opts);
  void start_poll();
  void on_poll(int status, int events);
  void on_timer();
  void read_packets();
  void read_error_queue();
  void process_message(std::size_t i);
  void emit(const RecvPacket &pkt);
  void flush_out();
  SendResult send_slow(const SockAddr &remote, const SockAddr *local, std::uint8_t ecn,
                       std::span<const std::uint8_t> data, std::size_t segment_size);
  SendResult send_raw(const SockAddr &remote, const SockAddr *local, std::uint8_t ecn,
                      std::span<const std::uint8_t> data, std::size_t segment_size);
  int send_gso(const SockAddr &remote, std::size_t ctrl_len, std::span<const std::uint8_t> chunk,
               std::size_t segment_size);
  int send_each(const SockAddr &remote, std::size_t ctrl_len, std::span<const std::uint8_t> data,
                std::size_t segment_size, std::size_t &sent);
  // One GSO chunk, falling back to one datagram per call when GSO is refused.
  int send_chunk(const SockAddr &remote, std::size_t ctrl_len, std::span<const std::uint8_t> chunk,
                 std::size_t segment_size, std::size_t &sent);
  SendResult send_result(std::size_t wanted, std::size_t sent, std::size_t segment_size, int e);
  std::size_t build_send_control(const SockAddr *local, std::uint8_t ecn);
  void arm_impair_timer();

  uv_loop_t *loop_;
  int fd_;
  SockAddr local_;
  UdpOptions opts_;
  bool gso_ = false;
  bool gro_ = false;
  bool closing_ = false;
  bool want_writable_ = false;
  bool stalled_ = false;
  bool wildcard_ = false;
  Handles *handles_ = nullptr;  // heap: outlives us until the close callbacks
  UdpReceiver *receiver_ = nullptr;
  std::unique_ptr<Impairment> impair_;
  UdpCounters counters_;

  // Receive state, allocated once in open().
  // Receive state: the loop's shared batch (lib/quic/receive_buffers.hpp).
  std::size_t recv_buf_size_ = 0;
  std::shared_ptr<ReceiveBuffers> rx_;
  RecvSlot *slots_ = nullptr;
  mmsghdr *recv_msgs_ = nullptr;
  static constexpr std::size_t kOutBatch = ReceiveBuffers::kOutBatch;
  RecvPacket *out_ = nullptr;
  std::size_t out_len_ = 0;

  // Send state for the sendmmsg fallback and the control messages.
  static constexpr std::size_t kSendBatch = 64;
  static constexpr std::size_t kCtrlSize = 128;
  std::unique_ptr<mmsghdr[]> send_msgs_;
  std::unique_ptr<iovec[]> send_iov_;
  alignas(cmsghdr) unsigned char send_ctrl_[kCtrlSize] = {};

  // Impairment release (allocation is fine here: test-only).
  std::vector<HeldPacket> released_;
};

}  // namespace uvwt::detail
