// Reference ceilings measured in the same invocation: what loopback UDP and
// the cipher can do at all on this machine, so uvwt's figures read as a share.

#include <arpa/inet.h>
#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <netinet/in.h>
#include <netinet/udp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstring>

#include "bench.hpp"

#ifndef UDP_SEGMENT
#define UDP_SEGMENT 103
#endif
#ifndef UDP_GRO
#define UDP_GRO 104
#endif

namespace uvwt::bench {
namespace {

constexpr std::size_t kPayload = 1200;  // a full-size QUIC packet on a 1280-byte path
constexpr std::size_t kBatch = 64;
// One GSO send is one UDP datagram to the kernel: at most 64 KiB in total.
constexpr std::size_t kGsoSegments = 65000 / kPayload;

int udp_socket_on_loopback(sockaddr_in &addr) {
  const int fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0);
  if (fd < 0) return -1;
  addr = {};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (bind(fd, reinterpret_cast<sockaddr *>(&addr), sizeof addr) != 0) {
    close(fd);
    return -1;
  }
  socklen_t len = sizeof addr;
  getsockname(fd, reinterpret_cast<sockaddr *>(&addr), &len);
  return fd;
}

struct Sink {
  int fd = -1;
  bool gro = false;
  std::uint64_t packets = 0, bytes = 0, syscalls = 0;
  std::array<std::array<std::uint8_t, 65536>, 8> bufs{};
  std::array<iovec, 8> iov{};
  std::array<mmsghdr, 8> msgs{};
  std::array<std::array<char, CMSG_SPACE(sizeof(int))>, 8> ctrl{};

  void drain() {
    for (int round = 0; round < 64; ++round) {
      for (std::size_t i = 0; i < msgs.size(); ++i) {
        iov[i] = {bufs[i].data(), bufs[i].size()};
        msgs[i] = {};
        msgs[i].msg_hdr.msg_iov = &iov[i];
        msgs[i].msg_hdr.msg_iovlen = 1;
        msgs[i].msg_hdr.msg_control = ctrl[i].data();
        msgs[i].msg_hdr.msg_controllen = ctrl[i].size();
      }
      const int n = recvmmsg(fd, msgs.data(), static_cast<unsigned>(msgs.size()), 0, nullptr);
      if (n <= 0) return;
      ++syscalls;
      for (int i = 0; i < n; ++i) {
        const std::size_t len = msgs[static_cast<std::size_t>(i)].msg_len;
        std::size_t seg = len;
        msghdr &h = msgs[static_cast<std::size_t>(i)].msg_hdr;
        for (cmsghdr *c = CMSG_FIRSTHDR(&h); c != nullptr; c = CMSG_NXTHDR(&h, c)) {
          if (c->cmsg_level == SOL_UDP && c->cmsg_type == UDP_GRO) {
            int v = 0;
            std::memcpy(&v, CMSG_DATA(c), sizeof v);
            if (v > 0) seg = static_cast<std::size_t>(v);
          }
        }
        packets += seg > 0 ? (len + seg - 1) / seg : 0;
        bytes += len;
      }
    }
  }
};

}  // namespace

Report udp_sink(const Job &, int ctl_fd, const std::function<void(std::uint16_t)> &announce) {
  Report r;
  sockaddr_in addr{};
  auto sink = std::make_unique<Sink>();
  sink->fd = udp_socket_on_loopback(addr);
  if (sink->fd < 0) {
    r.fail("udp socket");
    announce(0);
    return r;
  }
  int big = 64 << 20;
  if (setsockopt(sink->fd, SOL_SOCKET, SO_RCVBUFFORCE, &big, sizeof big) != 0)
    setsockopt(sink->fd, SOL_SOCKET, SO_RCVBUF, &big, sizeof big);
  int one = 1;
  sink->gro = setsockopt(sink->fd, SOL_UDP, UDP_GRO, &one, sizeof one) == 0;
  uv_loop_t loop;
  uv_loop_init(&loop);
  uv_poll_t poll;
  uv_poll_init(&loop, &poll, sink->fd);
  poll.data = sink.get();
  uv_poll_start(&poll, UV_READABLE, [](uv_poll_t *h, int, int) { static_cast<Sink *>(h->data)->drain(); });
  announce(ntohs(addr.sin_port));
  stop_loop_on_readable(&loop, ctl_fd);
  uv_run(&loop, UV_RUN_DEFAULT);
  sink->drain();
  r.kv["server_packets_received"] = static_cast<double>(sink->packets);
  r.kv["server_bytes_received"] = static_cast<double>(sink->bytes);
  r.kv["server_recv_syscalls"] = static_cast<double>(sink->syscalls);
  r.kv["server_gro"] = sink->gro ? 1 : 0;
  return r;
}

Report udp_blast(const Job &job, std::uint16_t port) {
  Report r;
  const bool gso = job.str("mode") == "gso";
  const double duration = static_cast<double>(job.num("ms", 1000)) / 1000.0;
  const int fd = socket(AF_INET, SOCK_DGRAM, 0);
  sockaddr_in to{};
  to.sin_family = AF_INET;
  to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  to.sin_port = htons(port);
  if (fd < 0 || connect(fd, reinterpret_cast<sockaddr *>(&to), sizeof to) != 0) {
    r.fail("udp connect");
    return r;
  }
  int big = 64 << 20;
  if (setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &big, sizeof big) != 0)
    setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &big, sizeof big);
  std::vector<std::uint8_t> buf(kPayload * kBatch);
  for (std::size_t i = 0; i < buf.size(); ++i) buf[i] = pattern()[i % pattern().size()];
  std::uint64_t packets = 0, syscalls = 0, errors = 0;
  const auto t0 = Clock::now();
  bool gso_ok = gso;
  // Time is checked once per batch: every iteration is bounded by the duration.
  while (seconds_since(t0) < duration) {
    if (gso_ok) {
      iovec iov{buf.data(), kGsoSegments * kPayload};
      std::array<char, CMSG_SPACE(sizeof(std::uint16_t))> ctrl{};
      msghdr h{};
      h.msg_iov = &iov;
      h.msg_iovlen = 1;
      h.msg_control = ctrl.data();
      h.msg_controllen = ctrl.size();
      cmsghdr *c = CMSG_FIRSTHDR(&h);
      c->cmsg_level = SOL_UDP;
      c->cmsg_type = UDP_SEGMENT;
      c->cmsg_len = CMSG_LEN(sizeof(std::uint16_t));
      const std::uint16_t seg = kPayload;
      std::memcpy(CMSG_DATA(c), &seg, sizeof seg);
      ++syscalls;
      if (sendmsg(fd, &h, 0) < 0) {
        if (errno == EIO || errno == EINVAL || errno == ENOPROTOOPT || errno == EMSGSIZE) gso_ok = false;
        ++errors;
        continue;
      }
      packets += kGsoSegments;
    } else {
      std::array<iovec, kBatch> iov{};
      std::array<mmsghdr, kBatch> msgs{};
      for (std::size_t i = 0; i < kBatch; ++i) {
        iov[i] = {buf.data() + i * kPayload, kPayload};
        msgs[i].msg_hdr.msg_iov = &iov[i];
        msgs[i].msg_hdr.msg_iovlen = 1;
      }
      ++syscalls;
      const int n = sendmmsg(fd, msgs.data(), kBatch, 0);
      if (n < 0) {
        ++errors;
        continue;
      }
      packets += static_cast<std::uint64_t>(n);
    }
  }
  const double elapsed = seconds_since(t0);
  close(fd);
  if (gso && !gso_ok) r.fail("UDP_SEGMENT refused by the kernel");
  r.kv["client_packets_sent"] = static_cast<double>(packets);
  r.kv["client_send_syscalls"] = static_cast<double>(syscalls);
  r.kv["client_send_errors"] = static_cast<double>(errors);
  r.kv["elapsed_s"] = elapsed;
  r.kv["payload"] = kPayload;
  r.kv["client_gso"] = gso_ok ? 1 : 0;
  return r;
}

Report aead_seal(const Job &job, std::uint16_t) {
  Report r;
  const double duration = static_cast<double>(job.num("ms", 1000)) / 1000.0;
  const std::size_t size = job.num("size", kPayload);
  std::array<std::uint8_t, 16> key_bytes{};
  for (std::size_t i = 0; i < key_bytes.size(); ++i) key_bytes[i] = static_cast<std::uint8_t>(i * 7 + 1);
  gnutls_datum_t key{key_bytes.data(), static_cast<unsigned>(key_bytes.size())};
  gnutls_aead_cipher_hd_t h = nullptr;
  if (gnutls_aead_cipher_init(&h, GNUTLS_CIPHER_AES_128_GCM, &key) < 0) {
    r.fail("gnutls_aead_cipher_init");
    return r;
  }
  std::vector<std::uint8_t> in(size), out(size + 16);
  for (std::size_t i = 0; i < size; ++i) in[i] = pattern()[i % pattern().size()];
  std::array<std::uint8_t, 12> nonce{};
  std::array<std::uint8_t, 16> aad{};
  std::uint64_t n = 0;
  const auto t0 = Clock::now();
  double elapsed = 0;
  while ((elapsed = seconds_since(t0)) < duration) {
    for (int i = 0; i < 256; ++i) {
      std::memcpy(nonce.data() + 4, &n, sizeof n);  // the packet number, as QUIC does
      std::size_t out_len = out.size();
      if (gnutls_aead_cipher_encrypt(h, nonce.data(), nonce.size(), aad.data(), aad.size(), 16, in.data(), in.size(),
                                     out.data(), &out_len) < 0) {
        r.fail("gnutls_aead_cipher_encrypt");
        gnutls_aead_cipher_deinit(h);
        return r;
      }
      ++n;
    }
  }
  gnutls_aead_cipher_deinit(h);
  r.kv["packets_s"] = static_cast<double>(n) / elapsed;
  r.kv["mib_s"] = static_cast<double>(n) * static_cast<double>(size) / elapsed / (1 << 20);
  return r;
}

}  // namespace uvwt::bench
