#include <netinet/in.h>
#include <sys/socket.h>

#include <cerrno>
#include <string>

#include "quic/udp_test_util.hpp"

using namespace uvwt::test;
using uvwt::detail::kEcnCe;
using uvwt::detail::kEcnEct0;
using uvwt::detail::kEcnEct1;
using uvwt::detail::SendResult;

namespace {

constexpr const char *kFamilies[] = {"127.0.0.1", "::1"};

// Sends `total` numbered packets in chunks sized to fit any receive buffer,
// letting the receiver drain between chunks (loopback never blocks a sender:
// it drops at the receiver instead).
void send_paced(UdpTestLoop &L, UdpSocket &from, UdpSocket &to, Collector &got, std::uint32_t total, std::size_t chunk,
                std::size_t size) {
  std::uint32_t seq = 0;
  std::size_t n = 0;
  while (seq < total) {
    const std::size_t count = std::min<std::size_t>(chunk, total - seq);
    // Every third chunk ends with a short packet, as a real flight would.
    const std::size_t last = n % 3 == 2 ? size / 2 : size;
    auto batch = make_batch(seq, count, size, last);
    auto r = from.send(to.local_addr(), nullptr, 0, batch, size);
    REQUIRE(r.ok());
    REQUIRE(r.bytes_sent == batch.size());
    seq += static_cast<std::uint32_t>(count);
    ++n;
    REQUIRE(L.run_until([&] { return got.pkts.size() >= seq; }));
  }
}

}  // namespace

TEST_CASE("UdpSocket sends and receives one packet each way", "[quic][udp]") {
  for (const char *ip : kFamilies) {
    INFO(ip);
    UdpTestLoop L;
    auto a = L.open(ip);
    auto b = L.open(ip);
    Collector ca, cb;
    a->set_receiver(&ca);
    b->set_receiver(&cb);
    CHECK(a->local_addr().port() != 0);
    CHECK(a->local_addr().host() == ip);

    auto ping = make_batch(7, 1, 100);
    SendResult r = a->send(b->local_addr(), nullptr, 0, ping, 0);
    CHECK(r.ok());
    CHECK(r.bytes_sent == 100);
    CHECK(cb.pkts.empty());  // delivered from the loop, never inside send()
    REQUIRE(L.run_until([&] { return cb.pkts.size() == 1; }));
    CHECK(cb.pkts[0].remote == a->local_addr());
    CHECK(cb.pkts[0].local == b->local_addr());
    CHECK(cb.pkts[0].ecn == 0);
    CHECK(cb.pkts[0].data == ping);

    auto pong = make_batch(8, 1, 1);
    CHECK(b->send(cb.pkts[0].remote, &cb.pkts[0].local, 0, pong, 1).ok());
    REQUIRE(L.run_until([&] { return ca.pkts.size() == 1; }));
    CHECK(ca.pkts[0].data == pong);
    CHECK(ca.pkts[0].remote == b->local_addr());

    CHECK(a->counters().packets_sent == 1);
    CHECK(a->counters().bytes_sent == 100);
    CHECK(a->counters().packets_received == 1);
    CHECK(b->counters().bytes_received == 100);
    CHECK(b->counters().recv_syscalls >= 1);
    L.finish({a.get(), b.get()});
  }
}

TEST_CASE("UdpSocket moves 1000 packets with and without GSO/GRO", "[quic][udp]") {
  struct Mode {
    bool gso, gro;
  };
  for (const char *ip : kFamilies) {
    for (Mode m : {Mode{true, true}, Mode{false, false}, Mode{true, false}, Mode{false, true}}) {
      INFO(ip << " gso " << m.gso << " gro " << m.gro);
      UdpTestLoop L;
      UdpOptions so, ro;
      so.allow_gso = m.gso;
      so.allow_gro = m.gro;
      ro.allow_gso = m.gso;
      ro.allow_gro = m.gro;
      auto tx = L.open(ip, 0, so);
      auto rx = L.open(ip, 0, ro);
      // Linux loopback has had UDP GSO (4.18) and GRO (5.0) for years: the
      // sockets must do what was asked, else the batch checks below say nothing.
      REQUIRE(tx->gso() == m.gso);
      REQUIRE(rx->gro() == m.gro);
      Collector got;
      rx->set_receiver(&got);

      send_paced(L, *tx, *rx, got, 1000, 50, 1200);
      REQUIRE(got.pkts.size() == 1000);
      for (std::uint32_t i = 0; i < 1000; ++i) {
        INFO("packet " << i);
        REQUIRE(seq_of(got.pkts[i]) == i);  // order kept, inside GSO batches too
        REQUIRE(intact(got.pkts[i]));
        const std::size_t want = (i % 50 == 49 && (i / 50) % 3 == 2) ? 600 : 1200;
        REQUIRE(got.pkts[i].data.size() == want);
        REQUIRE(got.pkts[i].remote == tx->local_addr());
      }
      CHECK(tx->counters().packets_sent == 1000);
      CHECK(rx->counters().packets_received == 1000);
      // One syscall per chunk either way: sendmsg+GSO or sendmmsg.
      CHECK(tx->counters().send_syscalls == 20);
      CHECK(tx->counters().gso_batches == (tx->gso() ? 20u : 0u));
      if (m.gso && m.gro)
        CHECK(rx->counters().gro_batches > 0);  // coalesced segments arrive coalesced
      else if (!m.gro)
        CHECK(rx->counters().gro_batches == 0);
      L.finish({tx.get(), rx.get()});
    }
  }
}

TEST_CASE("UdpSocket GSO batch of 10 x 1200 arrives as 10 datagrams", "[quic][udp]") {
  for (const char *ip : kFamilies) {
    INFO(ip);
    UdpTestLoop L;
    auto tx = L.open(ip);
    auto rx = L.open(ip);
    if (!tx->gso() || !rx->gro()) WARN("kernel without UDP GSO/GRO: fallback paths only");
    Collector got;
    rx->set_receiver(&got);
    auto batch = make_batch(100, 10, 1200);
    REQUIRE(tx->send(rx->local_addr(), nullptr, kEcnEct0, batch, 1200).ok());
    REQUIRE(L.run_until([&] { return got.pkts.size() >= 10; }));
    L.run_for(20);
    REQUIRE(got.pkts.size() == 10);
    for (std::uint32_t i = 0; i < 10; ++i) {
      CHECK(seq_of(got.pkts[i]) == 100 + i);
      CHECK(got.pkts[i].data.size() == 1200);
      CHECK(intact(got.pkts[i]));
      CHECK(got.pkts[i].ecn == kEcnEct0);  // the codepoint reaches every segment
    }
    if (tx->gso()) {
      CHECK(tx->counters().gso_batches == 1);
      CHECK(tx->counters().send_syscalls == 1);
    }
    if (tx->gso() && rx->gro()) {
      // Loopback hands the GSO super-packet over whole: split by us.
      CHECK(rx->counters().gro_batches == 1);
      CHECK(got.batches == 1);
    }
    L.finish({tx.get(), rx.get()});
  }
}

TEST_CASE("UdpSocket carries ECN codepoints both ways", "[quic][udp]") {
  for (const char *ip : kFamilies) {
    INFO(ip);
    UdpTestLoop L;
    auto a = L.open(ip);
    auto b = L.open(ip);
    Collector cb;
    b->set_receiver(&cb);
    const std::uint8_t codes[] = {kEcnEct0, kEcnEct1, kEcnCe, 0};
    std::uint32_t seq = 0;
    for (std::uint8_t ecn : codes) {
      auto p = make_batch(seq++, 1, 200);
      REQUIRE(a->send(b->local_addr(), nullptr, ecn, p, 0).ok());
    }
    REQUIRE(L.run_until([&] { return cb.pkts.size() == 4; }));
    for (std::size_t i = 0; i < 4; ++i) CHECK(cb.pkts[i].ecn == codes[i]);
    L.finish({a.get(), b.get()});
  }
}

TEST_CASE("UdpSocket on a wildcard address reports and uses the local address", "[quic][udp]") {
  SECTION("IPv4: packets to 127.0.0.2 are answered from 127.0.0.2") {
    UdpTestLoop L;
    auto server = L.open("0.0.0.0");
    auto client = L.open("127.0.0.1");
    Collector cs, cc;
    server->set_receiver(&cs);
    client->set_receiver(&cc);
    const std::uint16_t port = server->local_addr().port();
    auto dst = *SockAddr::parse("127.0.0.2", port);
    auto p = make_batch(1, 1, 64);
    REQUIRE(client->send(dst, nullptr, 0, p, 0).ok());
    REQUIRE(L.run_until([&] { return cs.pkts.size() == 1; }));
    CHECK(cs.pkts[0].local == dst);
    CHECK(cs.pkts[0].remote == client->local_addr());

    REQUIRE(server->send(cs.pkts[0].remote, &cs.pkts[0].local, 0, p, 0).ok());
    REQUIRE(L.run_until([&] { return cc.pkts.size() == 1; }));
    CHECK(cc.pkts[0].remote == dst);  // the source followed the pktinfo

    // Without a local address the kernel picks its usual source.
    REQUIRE(server->send(cs.pkts[0].remote, nullptr, 0, p, 0).ok());
    REQUIRE(L.run_until([&] { return cc.pkts.size() == 2; }));
    CHECK(cc.pkts[1].remote == *SockAddr::parse("127.0.0.1", port));
    L.finish({server.get(), client.get()});
  }
  SECTION("IPv6") {
    UdpTestLoop L;
    auto server = L.open("::");
    auto client = L.open("::1");
    Collector cs, cc;
    server->set_receiver(&cs);
    client->set_receiver(&cc);
    auto dst = *SockAddr::parse("::1", server->local_addr().port());
    auto p = make_batch(1, 1, 64);
    REQUIRE(client->send(dst, nullptr, kEcnEct0, p, 0).ok());
    REQUIRE(L.run_until([&] { return cs.pkts.size() == 1; }));
    CHECK(cs.pkts[0].local == dst);
    CHECK(cs.pkts[0].ecn == kEcnEct0);
    REQUIRE(server->send(cs.pkts[0].remote, &cs.pkts[0].local, kEcnEct0, p, 0).ok());
    REQUIRE(L.run_until([&] { return cc.pkts.size() == 1; }));
    CHECK(cc.pkts[0].remote == dst);
    L.finish({server.get(), client.get()});
  }
}

TEST_CASE("UdpSocket would_block then writable", "[quic][udp]") {
  UdpTestLoop L;
  auto a = L.open("127.0.0.1");
  auto b = L.open("127.0.0.1");
  Collector ca, cb;
  a->set_receiver(&ca);
  b->set_receiver(&cb);
  auto batch = make_batch(0, 3, 1000);

  SECTION("writable interest fires once and is then cleared") {
    a->want_writable(true);
    CHECK(ca.writable == 0);
    REQUIRE(L.run_until([&] { return ca.writable == 1; }));
    L.run_for(20);
    CHECK(ca.writable == 1);
  }
  SECTION("a stalled socket blocks until the stall ends") {
    // Loopback never returns EAGAIN for UDP: the stall hook stands in for a
    // full kernel buffer.
    a->set_send_stalled(true);
    SendResult r = a->send(b->local_addr(), nullptr, 0, batch, 1000);
    CHECK(r.would_block());
    CHECK(r.bytes_sent == 0);
    CHECK(a->counters().would_block == 1);
    a->want_writable(true);
    L.run_for(30);
    CHECK(ca.writable == 0);
    CHECK(cb.pkts.empty());
    a->set_send_stalled(false);
    REQUIRE(L.run_until([&] { return ca.writable == 1; }));
    // As a caller would: resend what was refused.
    r = a->send(b->local_addr(), nullptr, 0, std::span<const std::uint8_t>(batch).subspan(r.bytes_sent), 1000);
    CHECK(r.ok());
    REQUIRE(L.run_until([&] { return cb.pkts.size() == 3; }));
  }
  L.finish({a.get(), b.get()});
}

TEST_CASE("UdpSocket reports ECONNREFUSED for a closed port", "[quic][udp]") {
  for (const char *ip : kFamilies) {
    INFO(ip);
    UdpTestLoop L;
    SockAddr dead;
    {
      auto gone = L.open(ip);
      dead = gone->local_addr();
      L.finish({gone.get()});
    }
    auto client = L.open(ip);
    Collector cc;
    client->set_receiver(&cc);
    auto p = make_batch(0, 1, 50);
    CHECK(client->send(dead, nullptr, 0, p, 0).ok());
    CHECK(cc.errors.empty());  // reported from the loop, not from inside send()
    REQUIRE(L.run_until([&] { return !cc.errors.empty(); }));
    CHECK(cc.errors[0].first == dead);
    CHECK(cc.errors[0].second == ECONNREFUSED);
    CHECK(client->counters().icmp_errors >= 1);

    // The socket stays usable, also for other peers, after an ICMP error.
    auto peer = L.open(ip);
    Collector cp;
    peer->set_receiver(&cp);
    CHECK(client->send(dead, nullptr, 0, p, 0).ok());
    // The refusal of the packet above is pending on the socket: it must not
    // cost this packet to another peer.
    CHECK(client->send(peer->local_addr(), nullptr, 0, p, 0).ok());
    CHECK(cc.errors.size() == 1);
    REQUIRE(L.run_until([&] { return cp.pkts.size() == 1 && cc.errors.size() == 2; }));
    CHECK(client->counters().send_errors == 0);
    L.finish({client.get(), peer.get()});
  }
}

TEST_CASE("UdpSocket falls back transparently when the kernel refuses GSO", "[quic][udp]") {
  UdpTestLoop L;
  auto tx = L.open("127.0.0.1");
  auto rx = L.open("127.0.0.1");
  Collector got;
  rx->set_receiver(&got);
  if (!tx->gso()) {
    WARN("kernel without UDP GSO: nothing to fall back from");
  } else {
    // GSO needs UDP checksums: with them off the kernel answers EINVAL.
    int one = 1;
    REQUIRE(setsockopt(tx->fd(), SOL_SOCKET, SO_NO_CHECK, &one, sizeof one) == 0);
    auto batch = make_batch(0, 10, 1200, 300);
    SendResult r = tx->send(rx->local_addr(), nullptr, 0, batch, 1200);
    INFO("status " << int(r.status) << " errno " << r.error << " sent " << r.bytes_sent);
    CHECK(r.ok());
    CHECK(r.bytes_sent == batch.size());
    CHECK_FALSE(tx->gso());
    REQUIRE(L.run_until([&] { return got.pkts.size() == 10; }));
    for (std::uint32_t i = 0; i < 10; ++i) {
      CHECK(seq_of(got.pkts[i]) == i);
      CHECK(intact(got.pkts[i]));
    }
    CHECK(got.pkts[9].data.size() == 300);
    // Later sends go straight to sendmmsg.
    const auto calls = tx->counters().send_syscalls;
    CHECK(tx->send(rx->local_addr(), nullptr, 0, batch, 1200).ok());
    CHECK(tx->counters().send_syscalls == calls + 1);
    REQUIRE(L.run_until([&] { return got.pkts.size() == 20; }));
  }
  L.finish({tx.get(), rx.get()});
}

TEST_CASE("UdpSocket reports send errors and drops oversize datagrams", "[quic][udp]") {
  UdpTestLoop L;
  UdpOptions ro;
  ro.allow_gro = false;
  ro.max_datagram_size = 1500;
  auto tx = L.open("127.0.0.1");
  auto rx = L.open("127.0.0.1", 0, ro);
  Collector got;
  rx->set_receiver(&got);

  auto p = make_batch(0, 1, 100);
  SendResult r = tx->send(*SockAddr::parse("::1", 9), nullptr, 0, p, 0);
  CHECK(r.status == SendResult::Status::error);
  CHECK(r.error != 0);
  CHECK(r.bytes_sent == 0);
  CHECK(tx->counters().send_errors == 1);

  auto big = make_batch(1, 1, 3000);
  CHECK(tx->send(rx->local_addr(), nullptr, 0, big, 0).ok());
  auto small = make_batch(2, 1, 1000);
  CHECK(tx->send(rx->local_addr(), nullptr, 0, small, 0).ok());
  REQUIRE(L.run_until([&] { return got.pkts.size() == 1; }));
  CHECK(seq_of(got.pkts[0]) == 2);
  CHECK(rx->counters().recv_truncated == 1);
  L.finish({tx.get(), rx.get()});
}

TEST_CASE("UdpSocket reads at most its budget per wakeup", "[quic][udp]") {
  UdpTestLoop L;
  UdpOptions ro;
  ro.recv_batch = 4;
  ro.recv_budget = 10;
  auto tx = L.open("127.0.0.1");
  auto rx = L.open("127.0.0.1", 0, ro);
  Collector got;
  rx->set_receiver(&got);
  for (std::uint32_t i = 0; i < 50; ++i) {
    auto p = make_batch(i, 1, 100);
    REQUIRE(tx->send(rx->local_addr(), nullptr, 0, p, 0).ok());
  }
  uv_run(L.get(), UV_RUN_NOWAIT);
  CHECK(got.pkts.size() == 10);
  REQUIRE(L.run_until([&] { return got.pkts.size() == 50; }));
  for (std::uint32_t i = 0; i < 50; ++i) CHECK(seq_of(got.pkts[i]) == i);
  L.finish({tx.get(), rx.get()});
}

TEST_CASE("UdpSocket close from a callback, and destruction without close", "[quic][udp]") {
  SECTION("close inside on_packets stops delivery") {
    struct Closer : Collector {
      bool closed = false;
      void on_packets(UdpSocket &s, std::span<const RecvPacket> b) override {
        Collector::on_packets(s, b);
        s.close([this] { closed = true; });
      }
    };
    UdpTestLoop L;
    auto tx = L.open("127.0.0.1");
    auto rx = L.open("127.0.0.1");
    Closer c;
    rx->set_receiver(&c);
    auto batch = make_batch(0, 5, 100);
    REQUIRE(tx->send(rx->local_addr(), nullptr, 0, batch, 100).ok());
    REQUIRE(L.run_until([&] { return c.closed; }));
    CHECK(rx->closing());
    CHECK(c.batches == 1);
    CHECK(rx->send(tx->local_addr(), nullptr, 0, batch, 100).status == SendResult::Status::error);
    L.finish({tx.get()});
  }
  SECTION("destroying an open socket closes its handles") {
    UdpTestLoop L;
    auto s = L.open("127.0.0.1");
    s->want_writable(true);
    s.reset();
    CHECK(uv_run(L.get(), UV_RUN_DEFAULT) == 0);
    CHECK(uv_loop_close(L.get()) == 0);
    uv_loop_init(L.get());
  }
  SECTION("destroying a socket after close() still runs the callback") {
    UdpTestLoop L;
    auto s = L.open("::1");
    bool done = false;
    s->close([&] { done = true; });
    s.reset();
    CHECK_FALSE(done);
    CHECK(uv_run(L.get(), UV_RUN_DEFAULT) == 0);
    CHECK(done);
    CHECK(uv_loop_close(L.get()) == 0);
    uv_loop_init(L.get());
  }
  SECTION("bind failure is an error, not a socket") {
    UdpTestLoop L;
    auto a = L.open("127.0.0.1");
    uvwt::Error err;
    auto b = UdpSocket::open(L.get(), a->local_addr(), {}, err);
    CHECK_FALSE(b);
    CHECK(err.errc == uvwt::Errc::server);
    CHECK(err.code == EADDRINUSE);
    L.finish({a.get()});
  }
}

TEST_CASE("UdpSocket: sockets on one loop share one receive batch and still get their own packets intact",
          "[quic][udp][rxshare]") {
  UdpTestLoop L;
  auto a = L.open("127.0.0.1");
  auto b = L.open("127.0.0.1");
  auto c = L.open("127.0.0.1");
  REQUIRE(a->receive_buffers() != nullptr);
  CHECK(a->receive_buffers() == b->receive_buffers());
  CHECK(a->receive_buffers() == c->receive_buffers());
  {
    UdpTestLoop other;
    auto d = other.open("127.0.0.1");
    CHECK(d->receive_buffers() != a->receive_buffers());  // another loop, another batch
    other.finish({d.get()});
  }
  Collector ca, cb;
  a->set_receiver(&ca);
  b->set_receiver(&cb);
  // Both sockets are readable in the same loop turn, so their reads run one
  // after the other into the same memory: each must see only its own bytes.
  for (std::uint32_t round = 0; round < 20; ++round) {
    auto to_a = make_batch(round * 100, 5, 900, 300);
    auto to_b = make_batch(round * 100 + 50, 5, 700);
    REQUIRE(c->send(a->local_addr(), nullptr, 0, to_a, 900).ok());
    REQUIRE(c->send(b->local_addr(), nullptr, 0, to_b, 700).ok());
  }
  REQUIRE(L.run_until([&] { return ca.pkts.size() == 100 && cb.pkts.size() == 100; }));
  for (const auto &p : ca.pkts) {
    CHECK(intact(p));
    CHECK(seq_of(p) % 100 < 50);
  }
  for (const auto &p : cb.pkts) {
    CHECK(intact(p));
    CHECK(seq_of(p) % 100 >= 50);
  }
  L.finish({a.get(), b.get(), c.get()});
}
