// The physical floor of the latency runs: a plain UDP ping-pong of the same
// payload between the same two (pinned) processes, each waiting on its own
// libuv loop as uvwt does, so the WebTransport round trip reads as a ratio of
// what the kernel and the loop wake-ups alone cost.

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cstring>

#include "bench.hpp"

namespace uvwt::bench {
namespace {

struct Echo {
  int fd = -1;
  std::uint64_t echoed = 0;
  std::array<std::uint8_t, 2048> buf{};

  void drain() {
    for (;;) {
      sockaddr_storage from{};
      socklen_t len = sizeof from;
      const ssize_t n = recvfrom(fd, buf.data(), buf.size(), 0, reinterpret_cast<sockaddr *>(&from), &len);
      if (n < 0) return;
      sendto(fd, buf.data(), static_cast<std::size_t>(n), 0, reinterpret_cast<sockaddr *>(&from), len);
      ++echoed;
    }
  }
};

struct Pinger {
  int fd = -1;
  std::size_t size = 64;
  std::uint64_t seq = 0, n = 0;
  Clock::time_point t_send;
  std::vector<double> lat;
  std::array<std::uint8_t, 2048> buf{};
  std::string error;

  void send() {
    std::memcpy(buf.data(), &seq, sizeof seq);
    t_send = Clock::now();
    if (::send(fd, buf.data(), size, 0) != static_cast<ssize_t>(size)) error = "udp send failed";
  }
  void drain() {
    for (;;) {
      const ssize_t got = recv(fd, buf.data(), buf.size(), 0);
      if (got < 0) return;
      std::uint64_t echoed = UINT64_MAX;
      if (static_cast<std::size_t>(got) == size) std::memcpy(&echoed, buf.data(), sizeof echoed);
      if (echoed != seq) {
        error = "udp echo out of sequence";
        return;
      }
      lat.push_back(seconds_since(t_send) * 1e6);
      ++seq;
      if (lat.size() < n) send();
    }
  }
};

int bound_socket(sockaddr_in &addr) {
  const int fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0);
  if (fd < 0) return -1;
  addr = {};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  if (bind(fd, reinterpret_cast<sockaddr *>(&addr), sizeof addr) != 0 ||
      getsockname(fd, reinterpret_cast<sockaddr *>(&addr), &len) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

}  // namespace

Report udp_echo(const Job &, int ctl_fd, const std::function<void(std::uint16_t)> &announce) {
  Report r;
  sockaddr_in addr{};
  Echo echo;
  echo.fd = bound_socket(addr);
  if (echo.fd < 0) {
    r.fail("udp socket");
    announce(0);
    return r;
  }
  uv_loop_t loop;
  uv_loop_init(&loop);
  uv_poll_t poll;
  uv_poll_init(&loop, &poll, echo.fd);
  poll.data = &echo;
  uv_poll_start(&poll, UV_READABLE, [](uv_poll_t *h, int, int) { static_cast<Echo *>(h->data)->drain(); });
  announce(ntohs(addr.sin_port));
  stop_loop_on_readable(&loop, ctl_fd);
  uv_run(&loop, UV_RUN_DEFAULT);
  r.kv["server_echoed"] = static_cast<double>(echo.echoed);
  return r;
}

Report udp_ping(const Job &job, std::uint16_t port) {
  Report r;
  Pinger p;
  p.size = std::clamp<std::size_t>(job.num("size", 64), sizeof(std::uint64_t), p.buf.size());
  p.n = std::max<std::uint64_t>(1, job.num("n", 100));
  p.lat.reserve(p.n);
  sockaddr_in self{}, to{};
  p.fd = bound_socket(self);
  to.sin_family = AF_INET;
  to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  to.sin_port = htons(port);
  if (p.fd < 0 || connect(p.fd, reinterpret_cast<sockaddr *>(&to), sizeof to) != 0) {
    r.fail("udp connect");
    return r;
  }
  uv_loop_t loop;
  uv_loop_init(&loop);
  uv_poll_t poll;
  uv_poll_init(&loop, &poll, p.fd);
  poll.data = &p;
  uv_poll_start(&poll, UV_READABLE, [](uv_poll_t *h, int, int) { static_cast<Pinger *>(h->data)->drain(); });
  p.send();
  // Loopback does not drop a lone datagram; a lost one fails the run by time.
  if (!run_until(
          &loop, [&] { return p.lat.size() >= p.n || !p.error.empty(); }, job.time_limit_s))
    r.fail("udp ping-pong timed out after " + std::to_string(p.lat.size()) + " round trips");
  if (!p.error.empty()) r.fail(p.error);
  uv_close(reinterpret_cast<uv_handle_t *>(&poll), nullptr);
  uv_run(&loop, UV_RUN_NOWAIT);
  close(p.fd);
  if (p.lat.empty()) return r;
  r.kv["p50_us"] = percentile(p.lat, 50);
  r.kv["p99_us"] = percentile(p.lat, 99);
  r.kv["p999_us"] = percentile(p.lat, 99.9);
  r.kv["round_trips"] = static_cast<double>(p.lat.size());
  return r;
}

}  // namespace uvwt::bench
