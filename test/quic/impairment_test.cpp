#include <algorithm>
#include <set>

#include "quic/impairment.hpp"
#include "quic/udp_test_util.hpp"

using namespace uvwt::test;
using uvwt::ImpairmentConfig;
using uvwt::detail::Impairment;
using uvwt::detail::ImpairVerdict;

namespace {

ImpairmentConfig cfg_with(double loss, double dup, double reorder, std::uint32_t delay, std::uint32_t jitter,
                          std::uint64_t seed = 1) {
  ImpairmentConfig c;
  c.enabled = true;
  c.loss = loss;
  c.duplicate = dup;
  c.reorder = reorder;
  c.delay_ms = delay;
  c.jitter_ms = jitter;
  c.seed = seed;
  return c;
}

std::vector<bool> drop_pattern(const ImpairmentConfig &c, int n) {
  Impairment imp(c);
  std::vector<bool> v;
  for (int i = 0; i < n; ++i) v.push_back(imp.judge().drop);
  return v;
}

// Sends `n` single packets one by one (the send path judges each) and
// returns the sequence numbers that arrived, in arrival order.
std::vector<std::uint32_t> deliver(UdpTestLoop &L, UdpSocket &tx, UdpSocket &rx, Collector &got, std::uint32_t n,
                                   std::size_t expect, std::uint64_t wait_ms = 3000) {
  for (std::uint32_t i = 0; i < n; ++i) {
    auto p = make_batch(i, 1, 200);
    REQUIRE(tx.send(rx.local_addr(), nullptr, 0, p, 0).ok());
  }
  L.run_until([&] { return got.pkts.size() >= expect; }, wait_ms);
  std::vector<std::uint32_t> seqs;
  for (const auto &r : got.pkts) {
    REQUIRE(intact(r));
    seqs.push_back(seq_of(r));
  }
  return seqs;
}

}  // namespace

TEST_CASE("Impairment decisions are deterministic per seed", "[quic][impair]") {
  const auto a = drop_pattern(cfg_with(0.5, 0, 0, 0, 0, 42), 10000);
  const auto b = drop_pattern(cfg_with(0.5, 0, 0, 0, 0, 42), 10000);
  const auto c = drop_pattern(cfg_with(0.5, 0, 0, 0, 0, 43), 10000);
  CHECK(a == b);
  CHECK(a != c);
  const auto dropped = std::count(a.begin(), a.end(), true);
  CHECK(dropped > 4700);
  CHECK(dropped < 5300);

  // Other settings do not shift the loss pattern.
  CHECK(drop_pattern(cfg_with(0.5, 0.3, 0.2, 5, 5, 42), 10000) == a);

  Impairment none(cfg_with(0, 0, 0, 0, 0));
  for (int i = 0; i < 1000; ++i) {
    ImpairVerdict v = none.judge();
    REQUIRE_FALSE(v.drop);
    REQUIRE_FALSE(v.duplicate);
    REQUIRE(v.delay_ns == 0);
  }
  CHECK(none.counters().passed == 1000);

  Impairment jit(cfg_with(0, 0, 0, 20, 10));
  for (int i = 0; i < 1000; ++i) {
    ImpairVerdict v = jit.judge();
    REQUIRE(v.delay_ns >= 20'000'000);
    REQUIRE(v.delay_ns <= 30'000'000);
  }
}

TEST_CASE("Impairment queue releases in due order and is bounded", "[quic][impair]") {
  Impairment imp(cfg_with(0, 0, 0, 0, 0), 3);
  auto to = *SockAddr::parse("127.0.0.1", 1);
  const std::uint8_t d[] = {1, 2, 3};
  CHECK(imp.next_due() == UINT64_MAX);
  CHECK(imp.hold(100, 50, uvwt::detail::ImpairDirection::send, to, nullptr, 0, d));
  CHECK(imp.hold(100, 10, uvwt::detail::ImpairDirection::receive, to, &to, 2, d));
  CHECK(imp.hold(100, 10, uvwt::detail::ImpairDirection::send, to, nullptr, 0, d));
  CHECK_FALSE(imp.hold(100, 1, uvwt::detail::ImpairDirection::send, to, nullptr, 0, d));
  CHECK(imp.counters().overflowed == 1);
  CHECK(imp.next_due() == 110);
  std::vector<uvwt::detail::HeldPacket> out;
  imp.take_due(109, out);
  CHECK(out.empty());
  imp.take_due(120, out);
  REQUIRE(out.size() == 2);
  CHECK(out[0].dir == uvwt::detail::ImpairDirection::receive);  // same due: arrival order
  CHECK(out[0].has_local);
  CHECK(out[0].ecn == 2);
  CHECK(out[1].dir == uvwt::detail::ImpairDirection::send);
  CHECK(imp.queued() == 1);
  CHECK(imp.next_due() == 150);
}

TEST_CASE("Impairment loss on a socket is reproducible and about right", "[quic][impair]") {
  std::vector<std::uint32_t> first;
  for (int run = 0; run < 2; ++run) {
    UdpTestLoop L;
    auto tx = L.open("127.0.0.1");
    auto rx = L.open("127.0.0.1");
    Collector got;
    rx->set_receiver(&got);
    auto *imp = tx->set_impairment(cfg_with(0.5, 0, 0, 0, 0, 7));
    REQUIRE(imp != nullptr);
    auto seqs = deliver(L, *tx, *rx, got, 200, 200, 100);
    CHECK(imp->counters().dropped + imp->counters().passed == 200);
    CHECK(seqs.size() == imp->counters().passed);
    CHECK(seqs.size() > 60);
    CHECK(seqs.size() < 140);
    if (run == 0)
      first = seqs;
    else
      CHECK(seqs == first);
    L.finish({tx.get(), rx.get()});
  }
}

TEST_CASE("Impairment loss applies per packet of a GSO batch", "[quic][impair]") {
  UdpTestLoop L;
  auto tx = L.open("::1");
  auto rx = L.open("::1");
  Collector got;
  rx->set_receiver(&got);
  tx->set_impairment(cfg_with(0.5, 0, 0, 0, 0, 3));
  auto batch = make_batch(0, 40, 1200);
  auto r = tx->send(rx->local_addr(), nullptr, 0, batch, 1200);
  CHECK(r.ok());
  CHECK(r.bytes_sent == batch.size());
  const auto passed = tx->impairment()->counters().passed;
  CHECK(tx->impairment()->counters().dropped == 40 - passed);
  CHECK(passed > 5);
  CHECK(passed < 35);
  L.run_until([&] { return got.pkts.size() >= passed; }, 200);
  REQUIRE(got.pkts.size() == passed);
  for (std::size_t i = 0; i < got.pkts.size(); ++i) {
    CHECK(intact(got.pkts[i]));
    CHECK(got.pkts[i].data.size() == 1200);
    if (i > 0) CHECK(seq_of(got.pkts[i]) > seq_of(got.pkts[i - 1]));
  }
  L.finish({tx.get(), rx.get()});
}

TEST_CASE("Impairment delay holds packets at least that long", "[quic][impair]") {
  for (bool on_receiver : {false, true}) {
    INFO("impaired side: " << (on_receiver ? "receiver" : "sender"));
    UdpTestLoop L;
    auto tx = L.open("127.0.0.1");
    auto rx = L.open("127.0.0.1");
    Collector got;
    rx->set_receiver(&got);
    (on_receiver ? rx : tx)->set_impairment(cfg_with(0, 0, 0, 40, 0));
    const std::uint64_t t0 = uv_hrtime();
    auto p = make_batch(0, 3, 300);
    REQUIRE(tx->send(rx->local_addr(), nullptr, uvwt::detail::kEcnEct0, p, 300).ok());
    REQUIRE(L.run_until([&] { return got.pkts.size() == 3; }));
    for (const auto &r : got.pkts) {
      CHECK(r.at_ns - t0 >= 40'000'000);
      CHECK(r.ecn == 2);
      CHECK(r.remote == tx->local_addr());
      CHECK(r.local == rx->local_addr());
      CHECK(intact(r));
    }
    CHECK(seq_of(got.pkts[0]) == 0);
    CHECK(seq_of(got.pkts[2]) == 2);
    L.finish({tx.get(), rx.get()});
  }
}

TEST_CASE("Impairment reorder and duplicate", "[quic][impair]") {
  SECTION("reordered packets arrive behind later ones, none lost") {
    UdpTestLoop L;
    auto tx = L.open("127.0.0.1");
    auto rx = L.open("127.0.0.1");
    Collector got;
    rx->set_receiver(&got);
    tx->set_impairment(cfg_with(0, 0, 0.2, 0, 0, 11));
    auto seqs = deliver(L, *tx, *rx, got, 100, 100);
    REQUIRE(seqs.size() == 100);
    CHECK_FALSE(std::is_sorted(seqs.begin(), seqs.end()));
    CHECK(std::set<std::uint32_t>(seqs.begin(), seqs.end()).size() == 100);
    CHECK(tx->impairment()->counters().reordered > 0);
    L.finish({tx.get(), rx.get()});
  }
  SECTION("duplicate 1.0 doubles every packet") {
    UdpTestLoop L;
    auto tx = L.open("::1");
    auto rx = L.open("::1");
    Collector got;
    rx->set_receiver(&got);
    rx->set_impairment(cfg_with(0, 1.0, 0, 0, 0));
    auto seqs = deliver(L, *tx, *rx, got, 20, 40);
    L.run_for(20);
    REQUIRE(got.pkts.size() == 40);
    for (std::uint32_t i = 0; i < 20; ++i) CHECK(std::count(seqs.begin(), seqs.end(), i) == 2);
    CHECK(rx->impairment()->counters().duplicated == 20);
    L.finish({tx.get(), rx.get()});
  }
  SECTION("duplicate 0.3 with delay duplicates some") {
    UdpTestLoop L;
    auto tx = L.open("127.0.0.1");
    auto rx = L.open("127.0.0.1");
    Collector got;
    rx->set_receiver(&got);
    tx->set_impairment(cfg_with(0, 0.3, 0, 5, 5, 9));
    const auto dups_expected = [&] { return tx->impairment()->counters().duplicated; };
    auto seqs = deliver(L, *tx, *rx, got, 100, 100);
    L.run_until([&] { return got.pkts.size() == 100 + dups_expected(); });
    CHECK(got.pkts.size() == 100 + dups_expected());
    CHECK(dups_expected() > 10);
    CHECK(dups_expected() < 60);
    L.finish({tx.get(), rx.get()});
  }
}

TEST_CASE("Impairment blackhole drops everything and can be lifted", "[quic][impair]") {
  for (bool on_receiver : {false, true}) {
    INFO("impaired side: " << (on_receiver ? "receiver" : "sender"));
    UdpTestLoop L;
    auto tx = L.open("127.0.0.1");
    auto rx = L.open("127.0.0.1");
    Collector got, back;
    rx->set_receiver(&got);
    tx->set_receiver(&back);
    UdpSocket &impaired = on_receiver ? *rx : *tx;
    auto c = cfg_with(0, 0, 0, 0, 0);
    impaired.set_impairment(c);
    c.blackhole = true;
    impaired.set_impairment(c);  // toggled at runtime: same impairment object
    CHECK(impaired.impairment()->blackhole());

    deliver(L, *tx, *rx, got, 10, 10, 50);
    CHECK(got.pkts.empty());
    // Both directions.
    auto p = make_batch(0, 1, 10);
    CHECK(rx->send(tx->local_addr(), nullptr, 0, p, 0).ok());
    L.run_for(30);
    CHECK(back.pkts.empty());
    CHECK(impaired.impairment()->counters().dropped == 11);

    c.blackhole = false;
    impaired.set_impairment(c);
    auto seqs = deliver(L, *tx, *rx, got, 10, 10);
    CHECK(seqs.size() == 10);
    CHECK(rx->send(tx->local_addr(), nullptr, 0, p, 0).ok());
    REQUIRE(L.run_until([&] { return back.pkts.size() == 1; }));
    L.finish({tx.get(), rx.get()});
  }
}

TEST_CASE("Impairment blackhole also swallows packets already held", "[quic][impair]") {
  UdpTestLoop L;
  auto tx = L.open("127.0.0.1");
  auto rx = L.open("127.0.0.1");
  Collector got;
  rx->set_receiver(&got);
  auto c = cfg_with(0, 0, 0, 20, 0);
  auto *imp = tx->set_impairment(c);
  deliver(L, *tx, *rx, got, 5, 0, 0);
  CHECK(imp->queued() == 5);
  imp->set_blackhole(true);
  L.run_for(60);
  CHECK(got.pkts.empty());
  CHECK(imp->counters().dropped == 5);

  // Removing the impairment restores the plain path.
  c.enabled = false;
  CHECK(tx->set_impairment(c) == nullptr);
  CHECK(tx->impairment() == nullptr);
  deliver(L, *tx, *rx, got, 5, 5);
  CHECK(got.pkts.size() == 5);
  L.finish({tx.get(), rx.get()});
}

TEST_CASE("Impairment: closing with packets still held leaves a clean loop", "[quic][impair]") {
  UdpTestLoop L;
  auto tx = L.open("127.0.0.1");
  auto rx = L.open("127.0.0.1");
  Collector got;
  rx->set_receiver(&got);
  tx->set_impairment(cfg_with(0, 0, 0, 10'000, 0));
  rx->set_impairment(cfg_with(0, 0, 0, 10'000, 0));
  auto p = make_batch(0, 1, 100);
  REQUIRE(tx->send(rx->local_addr(), nullptr, 0, p, 0).ok());
  REQUIRE(rx->send(tx->local_addr(), nullptr, 0, p, 0).ok());
  L.run_for(10);
  CHECK(tx->impairment()->queued() == 1);
  const std::uint64_t t0 = uv_hrtime();
  L.finish({tx.get(), rx.get()});  // must not wait for the 10 s timer
  CHECK(uv_hrtime() - t0 < 1'000'000'000);
}
