#pragma once

// Shared by the UDP socket and impairment loop tests: a loop wrapper, a
// receiver that records everything, and numbered test packets.

#include <uv.h>

#include <cstdint>
#include <cstring>
#include <functional>
#include <memory>
#include <vector>

#include "catch.hpp"
#include "support/bounded_run.hpp"
#include "quic/udp_socket.hpp"

namespace uvwt::test {

using detail::RecvPacket;
using detail::SockAddr;
using detail::UdpOptions;
using detail::UdpSocket;

struct Received {
  SockAddr remote;
  SockAddr local;
  std::uint8_t ecn = 0;
  std::vector<std::uint8_t> data;
  std::uint64_t at_ns = 0;
};

struct Collector : detail::UdpReceiver {
  std::vector<Received> pkts;
  std::vector<std::pair<SockAddr, int>> errors;
  std::size_t batches = 0;
  int writable = 0;

  void on_packets(UdpSocket &, std::span<const RecvPacket> batch) override {
    ++batches;
    for (const auto &p : batch)
      pkts.push_back({*p.remote, *p.local, p.ecn, {p.data.begin(), p.data.end()}, uv_hrtime()});
  }
  void on_writable(UdpSocket &) override { ++writable; }
  void on_error(UdpSocket &, const SockAddr &remote, int e) override { errors.emplace_back(remote, e); }
};

// Packet `seq` of `size` bytes: the number, then bytes derived from it, so
// that corruption or a mix-up between packets shows.
inline void fill_packet(std::uint8_t *p, std::size_t size, std::uint32_t seq) {
  for (std::size_t i = 0; i < size; ++i) p[i] = static_cast<std::uint8_t>(seq * 31 + i * 7);
  if (size >= 4) std::memcpy(p, &seq, 4);
}

inline std::vector<std::uint8_t> make_batch(std::uint32_t first_seq, std::size_t count, std::size_t size,
                                            std::size_t last_size = 0) {
  if (last_size == 0) last_size = size;
  std::vector<std::uint8_t> v((count - 1) * size + last_size);
  for (std::size_t i = 0; i < count; ++i)
    fill_packet(v.data() + i * size, i + 1 == count ? last_size : size, first_seq + static_cast<std::uint32_t>(i));
  return v;
}

inline std::uint32_t seq_of(const Received &r) {
  std::uint32_t s = 0;
  std::memcpy(&s, r.data.data(), 4);
  return s;
}

inline bool intact(const Received &r) {
  if (r.data.size() < 4) return false;
  std::vector<std::uint8_t> want(r.data.size());
  fill_packet(want.data(), want.size(), seq_of(r));
  return want == r.data;
}

struct UdpTestLoop {
  uv_loop_t loop;
  UdpTestLoop() { uv_loop_init(&loop); }
  ~UdpTestLoop() {
    // Only reached cleanly when a test forgot to finish(): do not hang.
    uv_run(&loop, UV_RUN_NOWAIT);
    uv_loop_close(&loop);
  }
  uv_loop_t *get() { return &loop; }

  // Runs the loop until `pred` holds or `timeout_ms` passes.
  bool run_until(const std::function<bool()> &pred, std::uint64_t timeout_ms = 3000) {
    uv_timer_t tick;
    uv_timer_init(&loop, &tick);
    uv_timer_start(
        &tick, [](uv_timer_t *) {}, 1, 1);
    const std::uint64_t deadline = uv_hrtime() + timeout_ms * 1'000'000;
    bool ok = false;
    while (!(ok = pred()) && uv_hrtime() < deadline) uv_run(&loop, UV_RUN_ONCE);
    uv_close(reinterpret_cast<uv_handle_t *>(&tick), nullptr);
    uv_run(&loop, UV_RUN_NOWAIT);
    return ok;
  }
  void run_for(std::uint64_t ms) {
    run_until([] { return false; }, ms);
  }

  std::unique_ptr<UdpSocket> open(const char *ip, std::uint16_t port = 0, const UdpOptions &opts = {}) {
    auto addr = SockAddr::parse(ip, port);
    REQUIRE(addr);
    Error err;
    auto s = UdpSocket::open(&loop, *addr, opts, err);
    INFO(err.to_string());
    REQUIRE(s);
    return s;
  }

  // Closes the sockets, checks the callbacks come later and once, and that
  // the loop then ends and closes cleanly.
  void finish(std::initializer_list<UdpSocket *> socks) {
    int closed = 0;
    int expected = 0;
    for (auto *s : socks) {
      if (s == nullptr) continue;
      ++expected;
      s->close([&closed] { ++closed; });
    }
    CHECK(closed == 0);
    CHECK(uvwt::test::require_drained(&loop));
    CHECK(closed == expected);
    CHECK(uv_loop_close(&loop) == 0);
    uv_loop_init(&loop);  // the destructor closes it again
  }
};

}  // namespace uvwt::test
