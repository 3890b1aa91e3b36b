#include "quic/udp_socket.hpp"

#include <fcntl.h>
#include <linux/errqueue.h>
#include <netinet/in.h>
#include <netinet/ip.h>
#include <netinet/udp.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <limits>

#include "common/clock.hpp"
#include "common/log.hpp"

namespace uvwt::detail {

// The libuv handles live apart from the socket so that they (and the fd,
// which must stay open until the poll handle is closed) outlive it until
// libuv is done with them.
struct UdpSocket::Handles {
  uv_poll_t poll;
  uv_timer_t timer;
  int fd = -1;
  int pending = 0;
  UdpSocket *owner = nullptr;
  std::function<void()> cb;
};

namespace {

constexpr std::size_t kGroBufferSize = 65536;
// The kernel's UDP_MAX_SEGMENTS on every version that has GSO.
constexpr std::size_t kMaxGsoSegments = 64;
// Payload bound of one GSO super-datagram (below the 64 KiB IP limit with
// room for IPv4/IPv6 headers).
constexpr std::size_t kMaxGsoBytes = 65000;

bool set_int(int fd, int level, int name, int value) { return setsockopt(fd, level, name, &value, sizeof value) == 0; }

// Errors the kernel reports on a later send/recv call after an ICMP message
// arrived (IP_RECVERR): they concern some earlier packet, possibly to another
// peer. The error queue tells whom.
bool is_icmp_errno(int e) {
  return e == ECONNREFUSED || e == EHOSTUNREACH || e == ENETUNREACH || e == EHOSTDOWN || e == ENETDOWN || e == EPROTO ||
         e == ENOPROTOOPT;
}

template <typename T>
std::size_t put_cmsg(unsigned char *buf, std::size_t off, int level, int type, const T &value) {
  auto *c = reinterpret_cast<cmsghdr *>(buf + off);
  c->cmsg_level = level;
  c->cmsg_type = type;
  c->cmsg_len = CMSG_LEN(sizeof(T));
  std::memcpy(CMSG_DATA(c), &value, sizeof(T));
  return off + CMSG_SPACE(sizeof(T));
}

Error sys_error(Errc errc, const char *what, const SockAddr &addr, int e) {
  return Error(errc, std::string(what) + " " + addr.to_string() + ": " + std::strerror(e), CodeSpace::system,
               static_cast<std::uint64_t>(e));
}

// The per-socket options a QUIC endpoint needs; the name of the first
// required one the kernel refused, nullptr when all are set.
const char *set_socket_options(int fd, int family, const UdpOptions &opts) {
  // Required: without them the QUIC layer loses paths, ECN or ICMP feedback.
  if (family == AF_INET6) {
    if (!set_int(fd, IPPROTO_IPV6, IPV6_V6ONLY, 1)) return "IPV6_V6ONLY";
    if (!set_int(fd, IPPROTO_IPV6, IPV6_RECVPKTINFO, 1)) return "IPV6_RECVPKTINFO";
    if (!set_int(fd, IPPROTO_IPV6, IPV6_RECVTCLASS, 1)) return "IPV6_RECVTCLASS";
    if (!set_int(fd, IPPROTO_IPV6, IPV6_RECVERR, 1)) return "IPV6_RECVERR";
    // PROBE: DF set, and our own PMTU probes may exceed the cached path MTU.
    if (!set_int(fd, IPPROTO_IPV6, IPV6_MTU_DISCOVER, IPV6_PMTUDISC_PROBE))
      set_int(fd, IPPROTO_IPV6, IPV6_MTU_DISCOVER, IPV6_PMTUDISC_DO);
  } else {
    if (!set_int(fd, IPPROTO_IP, IP_PKTINFO, 1)) return "IP_PKTINFO";
    if (!set_int(fd, IPPROTO_IP, IP_RECVTOS, 1)) return "IP_RECVTOS";
    if (!set_int(fd, IPPROTO_IP, IP_RECVERR, 1)) return "IP_RECVERR";
    if (!set_int(fd, IPPROTO_IP, IP_MTU_DISCOVER, IP_PMTUDISC_PROBE))
      set_int(fd, IPPROTO_IP, IP_MTU_DISCOVER, IP_PMTUDISC_DO);
  }
  // Best effort: the kernel caps these at net.core.[rw]mem_max.
  if (opts.recv_buffer_size > 0) set_int(fd, SOL_SOCKET, SO_RCVBUF, opts.recv_buffer_size);
  if (opts.send_buffer_size > 0) set_int(fd, SOL_SOCKET, SO_SNDBUF, opts.send_buffer_size);

  return nullptr;
}

}  // namespace

std::unique_ptr<UdpSocket> UdpSocket::open(uv_loop_t *loop, const SockAddr &bind_addr, const UdpOptions &opts,
                                           Error &err) {
  const int family = bind_addr.family();
  if (family != AF_INET && family != AF_INET6) {
    err = Error(Errc::configuration, "UDP bind address must be IPv4 or IPv6");
    return nullptr;
  }
  int fd = ::socket(family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, IPPROTO_UDP);
  if (fd < 0) {
    err = sys_error(Errc::connection, "socket", bind_addr, errno);
    return nullptr;
  }
  auto fail = [&](Errc errc, const char *what) {
    err = sys_error(errc, what, bind_addr, errno);
    ::close(fd);
    return nullptr;
  };

  if (const char *what = set_socket_options(fd, family, opts)) return fail(Errc::connection, what);

  if (opts.reuse_port && !set_int(fd, SOL_SOCKET, SO_REUSEPORT, 1)) return fail(Errc::server, "SO_REUSEPORT");
  if (::bind(fd, bind_addr.sa(), bind_addr.len) != 0) return fail(Errc::server, "bind");
  SockAddr local;
  local.len = sizeof local.ss;
  if (::getsockname(fd, local.sa(), &local.len) != 0) return fail(Errc::connection, "getsockname");
  local = SockAddr::from(local.sa(), local.len);

  // Setting the socket-wide segment size to 0 (the default) is a harmless
  // probe: kernels without UDP GSO refuse the option.
  const bool gso = opts.allow_gso && set_int(fd, SOL_UDP, UDP_SEGMENT, 0);
  const bool gro = opts.allow_gro && set_int(fd, SOL_UDP, UDP_GRO, 1);

  std::unique_ptr<UdpSocket> s(new UdpSocket(loop, fd, local, opts));
  s->gso_ = gso;
  s->gro_ = gro;

  auto *h = new Handles;
  if (int rc = uv_poll_init_socket(loop, &h->poll, fd); rc != 0) {
    delete h;
    err = Error(Errc::connection, std::string("uv_poll_init: ") + uv_strerror(rc));
    ::close(fd);
    s->fd_ = -1;
    return nullptr;
  }
  uv_timer_init(loop, &h->timer);
  h->fd = fd;
  h->owner = s.get();
  h->poll.data = h;
  h->timer.data = h;
  s->handles_ = h;

  s->alloc_buffers(opts);

  s->start_poll();
  UVWT_DEBUG("udp socket %s open (gso %d, gro %d)", local.to_string().c_str(), gso, gro);
  return s;
}

void UdpSocket::alloc_buffers(const UdpOptions &opts) {
  // The receive batch is the loop's, shared with its other sockets.
  const std::size_t batch = std::max<std::size_t>(1, opts.recv_batch);
  recv_buf_size_ = gro_ ? kGroBufferSize : std::max<std::size_t>(opts.max_datagram_size, 1200);
  rx_ = ReceiveBuffers::for_loop(loop_, batch, recv_buf_size_);
  slots_ = rx_->slots();
  recv_msgs_ = rx_->msgs();
  out_ = rx_->out();
  send_msgs_.reset(new mmsghdr[kSendBatch]);
  send_iov_.reset(new iovec[kSendBatch]);
}

UdpSocket::UdpSocket(uv_loop_t *loop, int fd, const SockAddr &local, const UdpOptions &opts)
    : loop_(loop), fd_(fd), local_(local), opts_(opts), wildcard_(local.is_unspecified()) {}

UdpSocket::~UdpSocket() {
  if (handles_ == nullptr) return;
  handles_->owner = nullptr;
  if (!closing_) close(nullptr);
}

void UdpSocket::start_poll() {
  if (closing_) return;
  int events = UV_READABLE;
  if (want_writable_ && !stalled_) events |= UV_WRITABLE;
  uv_poll_start(&handles_->poll, events, [](uv_poll_t *p, int status, int ev) {
    auto *h = static_cast<Handles *>(p->data);
    if (h->owner != nullptr) h->owner->on_poll(status, ev);
  });
}

void UdpSocket::want_writable(bool on) {
  if (want_writable_ == on) return;
  want_writable_ = on;
  start_poll();
}

void UdpSocket::set_send_stalled(bool on) {
  if (stalled_ == on) return;
  stalled_ = on;
  if (want_writable_) start_poll();
}

void UdpSocket::on_poll(int status, int events) {
  if (closing_) return;
  if (status < 0) {
    // libuv stops the handle on POLLERR, which here means the error queue
    // holds ICMP reports: drain it, read what else is there, watch again.
    read_error_queue();
    if (closing_) return;
    read_packets();
    start_poll();
    return;
  }
  if (events & UV_READABLE) read_packets();
  if (closing_) return;
  if ((events & UV_WRITABLE) && want_writable_ && !stalled_) {
    want_writable_ = false;
    start_poll();
    if (receiver_ != nullptr) receiver_->on_writable(*this);
  }
}

void UdpSocket::read_packets() {
  const std::size_t batch = std::max<std::size_t>(1, opts_.recv_batch);
  std::size_t budget = std::max<std::size_t>(1, opts_.recv_budget);
  while (budget > 0 && !closing_) {
    const std::size_t n = std::min(batch, budget);
    for (std::size_t i = 0; i < n; ++i) {
      auto &h = recv_msgs_[i].msg_hdr;
      h.msg_namelen = sizeof(sockaddr_storage);
      h.msg_controllen = sizeof slots_[i].ctrl;
      h.msg_flags = 0;
      slots_[i].iov.iov_len = recv_buf_size_;
    }
    const int r = ::recvmmsg(fd_, recv_msgs_, static_cast<unsigned>(n), 0, nullptr);
    ++counters_.recv_syscalls;
    if (r < 0) {
      const int e = errno;
      if (e == EINTR) continue;
      if (e == EAGAIN || e == EWOULDBLOCK) break;
      if (is_icmp_errno(e)) {
        // Reading cleared it; the queue says which peer it was about.
        read_error_queue();
        --budget;
        continue;
      }
      ++counters_.recv_errors;
      UVWT_WARN("udp %s: recvmmsg: %s", local_.to_string().c_str(), std::strerror(e));
      break;
    }
    const std::uint64_t before = counters_.packets_received;
    for (int i = 0; i < r && !closing_; ++i) process_message(static_cast<std::size_t>(i));
    flush_out();
    // Counted in datagrams, so GRO does not multiply the budget.
    const std::uint64_t got = std::max<std::uint64_t>(1, counters_.packets_received - before);
    budget -= static_cast<std::size_t>(std::min<std::uint64_t>(budget, got));
    // A short batch means the queue is (nearly) empty; the level-triggered
    // poll wakes us again for anything that arrived meanwhile.
    if (static_cast<std::size_t>(r) < n) break;
  }
}

void UdpSocket::process_message(std::size_t i) {
  auto &slot = slots_[i];
  auto &h = recv_msgs_[i].msg_hdr;
  const std::size_t len = recv_msgs_[i].msg_len;
  if (h.msg_flags & MSG_TRUNC) {
    ++counters_.recv_truncated;
    return;
  }
  if (len == 0) return;  // nothing QUIC could use
  slot.remote = SockAddr::from(slot.remote.sa(), h.msg_namelen);
  slot.local = local_;
  std::uint8_t ecn = 0;
  std::size_t seg = len;
  for (cmsghdr *c = CMSG_FIRSTHDR(&h); c != nullptr; c = CMSG_NXTHDR(&h, c)) {
    if (c->cmsg_level == IPPROTO_IP && c->cmsg_type == IP_TOS && c->cmsg_len >= CMSG_LEN(1)) {
      ecn = *CMSG_DATA(c) & 0x3;
    } else if (c->cmsg_level == IPPROTO_IPV6 && c->cmsg_type == IPV6_TCLASS && c->cmsg_len >= CMSG_LEN(sizeof(int))) {
      int tc = 0;
      std::memcpy(&tc, CMSG_DATA(c), sizeof tc);
      ecn = static_cast<std::uint8_t>(tc & 0x3);
    } else if (c->cmsg_level == SOL_UDP && c->cmsg_type == UDP_GRO && c->cmsg_len >= CMSG_LEN(sizeof(int))) {
      int gs = 0;
      std::memcpy(&gs, CMSG_DATA(c), sizeof gs);
      if (gs > 0) seg = static_cast<std::size_t>(gs);
    } else if (wildcard_ && c->cmsg_level == IPPROTO_IP && c->cmsg_type == IP_PKTINFO) {
      in_pktinfo pi;
      std::memcpy(&pi, CMSG_DATA(c), sizeof pi);
      auto *sin = reinterpret_cast<sockaddr_in *>(&slot.local.ss);
      sin->sin_addr = pi.ipi_addr;
    } else if (wildcard_ && c->cmsg_level == IPPROTO_IPV6 && c->cmsg_type == IPV6_PKTINFO) {
      in6_pktinfo pi;
      std::memcpy(&pi, CMSG_DATA(c), sizeof pi);
      auto *sin6 = reinterpret_cast<sockaddr_in6 *>(&slot.local.ss);
      sin6->sin6_addr = pi.ipi6_addr;
      sin6->sin6_scope_id = IN6_IS_ADDR_LINKLOCAL(&pi.ipi6_addr) ? pi.ipi6_ifindex : 0;
    }
  }
  if (seg == 0) seg = 1;
  if (len > seg) ++counters_.gro_batches;

  const auto *base = static_cast<const std::uint8_t *>(slot.iov.iov_base);
  for (std::size_t off = 0; off < len; off += seg) {
    RecvPacket pkt;
    pkt.remote = &slot.remote;
    pkt.local = &slot.local;
    pkt.ecn = ecn;
    pkt.data = {base + off, std::min(seg, len - off)};
    ++counters_.packets_received;
    counters_.bytes_received += pkt.data.size();
    emit(pkt);
  }
}

void UdpSocket::emit(const RecvPacket &pkt) {
  if (impair_ != nullptr) [[unlikely]] {
    const ImpairVerdict v = impair_->judge(ImpairDirection::receive);
    if (v.drop) return;
    const int copies = v.duplicate ? 2 : 1;
    for (int k = 0; k < copies; ++k) {
      if (Impairment::held(v)) {
        impair_->hold(now_ns(), v.delay_ns, ImpairDirection::receive, *pkt.remote, pkt.local, pkt.ecn, pkt.data,
                      v.corrupt);
      } else {
        if (out_len_ == kOutBatch) flush_out();
        out_[out_len_++] = pkt;
      }
    }
    if (Impairment::held(v)) arm_impair_timer();
    return;
  }
  if (out_len_ == kOutBatch) flush_out();
  out_[out_len_++] = pkt;
}

void UdpSocket::flush_out() {
  if (out_len_ == 0) return;
  const std::size_t n = out_len_;
  out_len_ = 0;
  if (receiver_ != nullptr && !closing_) receiver_->on_packets(*this, {out_, n});
}

void UdpSocket::read_error_queue() {
  // Bounded: a flood of ICMP must not pin the loop here.
  for (int i = 0; i < 64 && !closing_; ++i) {
    SockAddr remote;
    std::uint8_t payload[64];
    iovec iov{payload, sizeof payload};
    alignas(cmsghdr) unsigned char ctrl[512];
    msghdr m{};
    m.msg_name = &remote.ss;
    m.msg_namelen = sizeof remote.ss;
    m.msg_iov = &iov;
    m.msg_iovlen = 1;
    m.msg_control = ctrl;
    m.msg_controllen = sizeof ctrl;
    const ssize_t r = ::recvmsg(fd_, &m, MSG_ERRQUEUE);
    if (r < 0) {
      if (errno == EINTR) continue;
      break;
    }
    remote = SockAddr::from(remote.sa(), m.msg_namelen);
    for (cmsghdr *c = CMSG_FIRSTHDR(&m); c != nullptr; c = CMSG_NXTHDR(&m, c)) {
      const bool v4 = c->cmsg_level == IPPROTO_IP && c->cmsg_type == IP_RECVERR;
      const bool v6 = c->cmsg_level == IPPROTO_IPV6 && c->cmsg_type == IPV6_RECVERR;
      if (!(v4 || v6) || c->cmsg_len < CMSG_LEN(sizeof(sock_extended_err))) continue;
      sock_extended_err ee;
      std::memcpy(&ee, CMSG_DATA(c), sizeof ee);
      if (ee.ee_errno == 0) continue;
      if (ee.ee_origin != SO_EE_ORIGIN_ICMP && ee.ee_origin != SO_EE_ORIGIN_ICMP6 && ee.ee_origin != SO_EE_ORIGIN_LOCAL)
        continue;
      ++counters_.icmp_errors;
      UVWT_DEBUG("udp %s: error from %s: %s", local_.to_string().c_str(), remote.to_string().c_str(),
                 std::strerror(static_cast<int>(ee.ee_errno)));
      if (receiver_ != nullptr) receiver_->on_error(*this, remote, static_cast<int>(ee.ee_errno));
      if (closing_) return;
    }
  }
}

// ---- sending ----

SendResult UdpSocket::send(const SockAddr &remote, const SockAddr *local, std::uint8_t ecn,
                           std::span<const std::uint8_t> data, std::size_t segment_size) {
  if (impair_ != nullptr || stalled_) [[unlikely]]
    return send_slow(remote, local, ecn, data, segment_size);
  return send_raw(remote, local, ecn, data, segment_size);
}

SendResult UdpSocket::send_slow(const SockAddr &remote, const SockAddr *local, std::uint8_t ecn,
                                std::span<const std::uint8_t> data, std::size_t segment_size) {
  SendResult res;
  if (stalled_) {
    ++counters_.would_block;
    res.status = SendResult::Status::would_block;
    return res;
  }
  if (closing_) {
    res.status = SendResult::Status::error;
    res.error = EBADF;
    return res;
  }
  const std::size_t seg = segment_size == 0 ? std::max<std::size_t>(data.size(), 1) : segment_size;
  bool held = false;
  // Judged per QUIC packet; the survivors go out one by one (no GSO).
  for (std::size_t off = 0; off < data.size(); off += seg) {
    const auto pkt = data.subspan(off, std::min(seg, data.size() - off));
    const ImpairVerdict v = impair_->judge(ImpairDirection::send);
    if (!v.drop) {
      const int copies = v.duplicate ? 2 : 1;
      for (int k = 0; k < copies; ++k) {
        if (Impairment::held(v)) {
          impair_->hold(now_ns(), v.delay_ns, ImpairDirection::send, remote, local, ecn, pkt, v.corrupt);
          held = true;
          continue;
        }
        SendResult r = send_raw(remote, local, ecn, pkt, pkt.size());
        if (!r.ok() && k == 0) {
          r.bytes_sent = off;
          if (held) arm_impair_timer();
          return r;
        }
      }
    }
    res.bytes_sent = off + pkt.size();
  }
  if (held) arm_impair_timer();
  return res;
}

std::size_t UdpSocket::build_send_control(const SockAddr *local, std::uint8_t ecn) {
  std::size_t off = 0;
  const bool v6 = family() == AF_INET6;
  if (ecn != 0) {
    const int tos = ecn & 0x3;
    off = v6 ? put_cmsg(send_ctrl_, off, IPPROTO_IPV6, IPV6_TCLASS, tos)
             : put_cmsg(send_ctrl_, off, IPPROTO_IP, IP_TOS, tos);
  }
  // The source address only matters when the kernel would otherwise choose
  // (wildcard bind), and only a concrete one can be asked for.
  if (wildcard_ && local != nullptr && local->family() == family() && !local->is_unspecified()) {
    if (v6) {
      in6_pktinfo pi{};
      pi.ipi6_addr = local->v6().sin6_addr;
      pi.ipi6_ifindex = local->v6().sin6_scope_id;
      off = put_cmsg(send_ctrl_, off, IPPROTO_IPV6, IPV6_PKTINFO, pi);
    } else {
      in_pktinfo pi{};
      pi.ipi_spec_dst = local->v4().sin_addr;
      off = put_cmsg(send_ctrl_, off, IPPROTO_IP, IP_PKTINFO, pi);
    }
  }
  return off;
}

// One sendmsg with UDP_SEGMENT; returns 0 or errno.
int UdpSocket::send_gso(const SockAddr &remote, std::size_t ctrl_len, std::span<const std::uint8_t> chunk,
                        std::size_t segment_size) {
  const auto gs = static_cast<std::uint16_t>(segment_size);
  const std::size_t len = put_cmsg(send_ctrl_, ctrl_len, SOL_UDP, UDP_SEGMENT, gs);
  iovec iov{const_cast<std::uint8_t *>(chunk.data()), chunk.size()};
  msghdr m{};
  m.msg_name = const_cast<sockaddr *>(remote.sa());
  m.msg_namelen = remote.len;
  m.msg_iov = &iov;
  m.msg_iovlen = 1;
  m.msg_control = send_ctrl_;
  m.msg_controllen = len;
  for (;;) {
    ++counters_.send_syscalls;
    if (::sendmsg(fd_, &m, 0) >= 0) {
      ++counters_.gso_batches;
      return 0;
    }
    if (errno != EINTR) return errno;
  }
}

// sendmmsg of individual datagrams; `sent` is advanced by whole datagrams.
int UdpSocket::send_each(const SockAddr &remote, std::size_t ctrl_len, std::span<const std::uint8_t> data,
                         std::size_t segment_size, std::size_t &sent) {
  while (sent < data.size()) {
    std::size_t n = 0;
    for (std::size_t off = sent; off < data.size() && n < kSendBatch; off += segment_size, ++n) {
      send_iov_[n].iov_base = const_cast<std::uint8_t *>(data.data() + off);
      send_iov_[n].iov_len = std::min(segment_size, data.size() - off);
      auto &h = send_msgs_[n].msg_hdr;
      h = msghdr{};
      h.msg_name = const_cast<sockaddr *>(remote.sa());
      h.msg_namelen = remote.len;
      h.msg_iov = &send_iov_[n];
      h.msg_iovlen = 1;
      h.msg_control = ctrl_len > 0 ? send_ctrl_ : nullptr;
      h.msg_controllen = ctrl_len;
      send_msgs_[n].msg_len = 0;
    }
    ++counters_.send_syscalls;
    const int r = ::sendmmsg(fd_, send_msgs_.get(), static_cast<unsigned>(n), 0);
    if (r < 0) {
      if (errno == EINTR) continue;
      return errno;
    }
    for (int i = 0; i < r; ++i) sent += send_iov_[i].iov_len;
  }
  return 0;
}

SendResult UdpSocket::send_raw(const SockAddr &remote, const SockAddr *local, std::uint8_t ecn,
                               std::span<const std::uint8_t> data, std::size_t segment_size) {
  SendResult res;
  if (closing_) {
    res.status = SendResult::Status::error;
    res.error = EBADF;
    return res;
  }
  if (segment_size == 0 || segment_size > data.size()) segment_size = std::max<std::size_t>(data.size(), 1);
  const std::size_t ctrl_len = build_send_control(local, ecn);
  const std::size_t max_segs = std::min(kMaxGsoSegments, std::max<std::size_t>(1, kMaxGsoBytes / segment_size));

  std::size_t sent = 0;
  bool icmp_retried = false;
  int e = 0;
  while (sent < data.size()) {
    const std::size_t remaining = data.size() - sent;
    if (gso_ && remaining > segment_size && max_segs > 1) {
      const auto chunk = data.subspan(sent, std::min(remaining, max_segs * segment_size));
      e = send_chunk(remote, ctrl_len, chunk, segment_size, sent);
      if (e == 0) continue;
    } else {
      e = send_each(remote, ctrl_len, data, segment_size, sent);
      if (e == 0) break;
    }
    if (is_icmp_errno(e) && !icmp_retried) {
      // The error belongs to an earlier packet and the failed call cleared
      // it: this packet deserves its own attempt. Whom the error concerns is
      // reported from the poll callback (the error queue keeps it), never
      // from inside send().
      icmp_retried = true;
      continue;
    }
    break;
  }

  return send_result(data.size(), sent, segment_size, e);
}

int UdpSocket::send_chunk(const SockAddr &remote, std::size_t ctrl_len, std::span<const std::uint8_t> chunk,
                          std::size_t segment_size, std::size_t &sent) {
  int e = send_gso(remote, ctrl_len, chunk, segment_size);
  if (e == 0) {
    sent += chunk.size();
    return 0;
  }
  if (e != EMSGSIZE && e != EINVAL && e != EIO) return e;
  // Either GSO itself is refused (no checksum offload, segment limits,
  // SO_NO_CHECK ...) or one datagram is too big. Sending the chunk without
  // GSO tells which; only the former turns GSO off.
  std::size_t chunk_sent = 0;
  const int e2 = send_each(remote, ctrl_len, chunk, segment_size, chunk_sent);
  sent += chunk_sent;
  if (e2 != 0) return e2;
  UVWT_INFO("udp %s: GSO send failed (%s), GSO disabled", local_.to_string().c_str(), std::strerror(e));
  gso_ = false;
  return 0;
}

SendResult UdpSocket::send_result(std::size_t wanted, std::size_t sent, std::size_t segment_size, int e) {
  SendResult res;
  // Counted in datagrams: what the peer's QUIC stack will see.
  counters_.packets_sent += (sent + segment_size - 1) / segment_size;
  counters_.bytes_sent += sent;
  res.bytes_sent = sent;
  if (sent == wanted && e == 0) return res;
  if (closing_) e = e == 0 ? EBADF : e;
  if (e == EAGAIN || e == EWOULDBLOCK || e == ENOBUFS) {
    ++counters_.would_block;
    res.status = SendResult::Status::would_block;
  } else {
    ++counters_.send_errors;
    res.status = SendResult::Status::error;
    res.error = e;
  }
  return res;
}

// ---- impairment ----

Impairment *UdpSocket::set_impairment(const ImpairmentConfig &cfg) {
  if (closing_) return nullptr;
  if (!cfg.enabled) {
    impair_.reset();
    uv_timer_stop(&handles_->timer);
    return nullptr;
  }
  if (impair_ == nullptr)
    impair_ = std::make_unique<Impairment>(cfg);
  else
    impair_->set_config(cfg);
  arm_impair_timer();
  return impair_.get();
}

void UdpSocket::arm_impair_timer() {
  if (impair_ == nullptr || closing_ || impair_->queued() == 0) return;
  const std::uint64_t due = impair_->next_due();
  const std::uint64_t now = now_ns();
  // Round up: the timer runs on the loop's millisecond clock, and releasing
  // early would shorten the configured delay.
  const std::uint64_t ms = due > now ? (due - now + 999'999) / 1'000'000 : 0;
  uv_timer_start(
      &handles_->timer,
      [](uv_timer_t *t) {
        auto *h = static_cast<Handles *>(t->data);
        if (h->owner != nullptr) h->owner->on_timer();
      },
      ms, 0);
}

void UdpSocket::on_timer() {
  if (impair_ == nullptr || closing_) return;
  released_.clear();
  impair_->take_due(now_ns(), released_);
  for (auto &p : released_) {
    if (closing_) break;
    if (impair_ != nullptr && impair_->blackhole(p.dir)) {
      impair_->count_drop();
      continue;
    }
    if (p.dir == ImpairDirection::send) {
      // A full kernel buffer here is just one more lost packet.
      send_raw(p.remote, p.has_local ? &p.local : nullptr, p.ecn, p.data, p.data.size());
    } else {
      RecvPacket pkt;
      pkt.remote = &p.remote;
      pkt.local = p.has_local ? &p.local : &local_;
      pkt.ecn = p.ecn;
      pkt.data = p.data;
      if (out_len_ == kOutBatch) flush_out();
      out_[out_len_++] = pkt;
    }
  }
  flush_out();
  released_.clear();
  arm_impair_timer();
}

// ---- closing ----

void UdpSocket::close(std::function<void()> cb) {
  if (closing_ || handles_ == nullptr) return;
  closing_ = true;
  receiver_ = nullptr;
  impair_.reset();
  out_len_ = 0;
  Handles *h = handles_;
  h->cb = std::move(cb);
  h->pending = 2;
  auto on_closed = [](uv_handle_t *handle) {
    auto *hh = static_cast<Handles *>(handle->data);
    if (--hh->pending > 0) return;
    // Only now: libuv must not poll an fd that was closed under it.
    ::close(hh->fd);
    if (hh->owner != nullptr) {
      hh->owner->fd_ = -1;
      hh->owner->handles_ = nullptr;
    }
    auto done = std::move(hh->cb);
    delete hh;
    if (done) done();
  };
  uv_close(reinterpret_cast<uv_handle_t *>(&h->poll), on_closed);
  uv_close(reinterpret_cast<uv_handle_t *>(&h->timer), on_closed);
}

}  // namespace uvwt::detail
