// ConnectionLoadBalancer over real local servers: strategies, reuse,
// failover, health-check restoration and single-flight creation.

#include <uvwt/uvwt.hpp>

#include <array>
#include <cstdlib>
#include <map>

#include "catch.hpp"
#include "support/echo_handler.hpp"
#include "support/fixture.hpp"
#include "testing/testing.hpp"

using namespace uvwt;
using namespace uvwt::test;

namespace {

struct Pick {
  Error err;
  std::shared_ptr<Connection> conn;
  bool done = false;
};

std::shared_ptr<Pick> pick_async(ConnectionLoadBalancer &lb, const std::string &strategy,
                                 const ClientConfig &cfg = client_config(), const std::string &path = "/echo") {
  auto p = std::make_shared<Pick>();
  lb.get_connection(cfg, path, strategy, [p](const Error &e, std::shared_ptr<Connection> c) {
    p->err = e;
    p->conn = std::move(c);
    p->done = true;
  });
  return p;
}

Pick pick(TestLoop &tl, ConnectionLoadBalancer &lb, const std::string &strategy,
          const ClientConfig &cfg = client_config()) {
  auto p = pick_async(lb, strategy, cfg);
  CHECK_FALSE(p->done);  // never answered from inside the call
  REQUIRE(tl.run_until([&] { return p->done; }, 20'000));
  if (!p->err.ok()) std::fprintf(stderr, "pick error: %s\n", p->err.to_string().c_str());
  return *p;
}

std::uint16_t port_of(const std::shared_ptr<Connection> &c) {
  REQUIRE(c);
  auto a = c->remote_address();
  REQUIRE(a);
  return a->port;
}

struct Servers {
  std::array<std::shared_ptr<Server>, 3> s;
  std::array<std::uint16_t, 3> port{};
  Servers(TestLoop &tl, const std::array<ServerConfig, 3> &cfgs) {
    for (std::size_t i = 0; i < 3; ++i) {
      s[i] = start_server(tl, cfgs[i]);
      s[i]->route("/echo", echo_handler());
      port[i] = s[i]->port();
    }
  }
  explicit Servers(TestLoop &tl) : Servers(tl, {server_config(), server_config(), server_config()}) {}
  std::vector<Address> targets() const {
    return {{"127.0.0.1", port[0]}, {"127.0.0.1", port[1]}, {"127.0.0.1", port[2]}};
  }
  std::size_t index_of(std::uint16_t p) const {
    for (std::size_t i = 0; i < 3; ++i)
      if (port[i] == p) return i;
    FAIL("unknown port " << p);
    return 3;
  }
  void close(TestLoop &tl) {
    std::size_t left = 0;
    for (auto &x : s) {
      if (!x) continue;
      ++left;
      x->close([&left] { --left; });
    }
    REQUIRE(tl.run_until([&] { return left == 0; }, 10'000));
  }
};

void shutdown(TestLoop &tl, ConnectionLoadBalancer &lb) {
  bool done = false;
  lb.shutdown([&done] { done = true; });
  CHECK_FALSE(done);
  REQUIRE(tl.run_until([&] { return done; }, 10'000));
}

ClientConfig quick_client() {
  ClientConfig c = client_config();
  c.connect_timeout = std::chrono::milliseconds(1'500);
  return c;
}

std::unique_ptr<ConnectionLoadBalancer> make_lb(TestLoop &tl, std::vector<Address> targets,
                                                ConnectionLoadBalancer::ConnectionFactory factory = {},
                                                ConnectionLoadBalancer::HealthChecker checker = {},
                                                LoadBalancerOptions opts = {}) {
  Error err;
  auto lb = ConnectionLoadBalancer::create(&tl.loop, std::move(targets), err, std::move(factory), std::move(checker),
                                           std::move(opts));
  REQUIRE(err.ok());
  REQUIRE(lb);
  return lb;
}

}  // namespace

TEST_CASE("load balancer: round robin visits targets in order and reuses connections", "[connection][lb][loop]") {
  TestLoop tl;
  Servers sv(tl);
  auto targets = sv.targets();
  targets.push_back({"127.0.0.1", sv.port[1]});  // duplicate: dropped
  auto lb_owner = make_lb(tl, targets);
  auto &lb = *lb_owner;
  CHECK(lb.get_load_balancer_stats().total_targets == 3);

  std::vector<std::shared_ptr<Connection>> got;
  for (int i = 0; i < 7; ++i) {
    auto p = pick(tl, lb, "round_robin");
    REQUIRE(p.err.ok());
    REQUIRE(p.conn->is_connected());
    CHECK(sv.index_of(port_of(p.conn)) == static_cast<std::size_t>(i % 3));
    got.push_back(p.conn);
  }
  CHECK(got[3] == got[0]);
  CHECK(got[4] == got[1]);
  CHECK(got[5] == got[2]);
  CHECK(got[0] != got[1]);
  // A connection created for "/echo" carries its session.
  CHECK(got[0]->get_ready_session_id().has_value());

  const auto st = lb.get_load_balancer_stats();
  CHECK(st.total_targets == 3);
  CHECK(st.failed_targets == 0);
  CHECK(st.available_targets == 3);
  CHECK(st.active_connections == 3);
  const auto ts = lb.get_target_stats();
  REQUIRE(ts.size() == 3);
  for (std::size_t i = 0; i < 3; ++i) {
    CHECK(ts[i].host == "127.0.0.1");
    CHECK(ts[i].port == sv.port[i]);
    CHECK(ts[i].weight == 1.0);
    CHECK(ts[i].connected);
    CHECK_FALSE(ts[i].failed);
    REQUIRE(ts[i].latency.has_value());
    CHECK(*ts[i].latency > 0.0);
    CHECK(*ts[i].latency < 1.0);
  }

  bool closed = false;
  lb.close_all_connections([&closed] { closed = true; });
  REQUIRE(tl.run_until([&] { return closed; }));
  CHECK(got[0]->is_closed());
  CHECK(lb.get_load_balancer_stats().active_connections == 0);
  // A fresh connection replaces the closed one.
  auto p = pick(tl, lb, "round_robin");
  REQUIRE(p.err.ok());
  CHECK(p.conn != got[1]);
  shutdown(tl, lb);
  CHECK(p.conn->is_closed());
  // After shutdown every request fails at once, but still on a later turn.
  auto late = pick(tl, lb, "round_robin");
  CHECK(late.err.errc == Errc::closed);
  sv.close(tl);
}

TEST_CASE("load balancer: IPv6 targets, bracketed or not, are one target", "[connection][lb][loop]") {
  TestLoop tl;
  auto server = start_server(tl, server_config(), "::1");
  server->route("/echo", echo_handler());
  auto lb_owner = make_lb(tl, {{"::1", server->port()}, {"[::1]", server->port()}});
  auto &lb = *lb_owner;
  REQUIRE(lb.get_target_stats().size() == 1);
  CHECK(lb.get_target_stats()[0].host == "::1");
  auto p = pick(tl, lb, "round_robin");
  REQUIRE(p.err.ok());
  CHECK(p.conn->remote_address()->host == "::1");
  CHECK(lb.update_target_weight("[::1]", server->port(), 2.5).ok());
  CHECK(lb.get_target_stats()[0].weight == 2.5);
  shutdown(tl, lb);
  close_all(tl, nullptr, server);
}

TEST_CASE("load balancer: weighted picks follow the weights", "[connection][lb][loop]") {
  TestLoop tl;
  Servers sv(tl);
  LoadBalancerOptions opts;
  opts.seed = 42;
  auto lb_owner = make_lb(tl, sv.targets(), {}, {}, opts);
  auto &lb = *lb_owner;
  CHECK(lb.update_target_weight("127.0.0.1", sv.port[0], 1).ok());
  CHECK(lb.update_target_weight("127.0.0.1", sv.port[1], 2).ok());
  CHECK(lb.update_target_weight("127.0.0.1", sv.port[2], 3).ok());
  CHECK(lb.update_target_weight("127.0.0.1", 1, 1).errc == Errc::configuration);
  CHECK(lb.update_target_weight("127.0.0.1", sv.port[0], -1).errc == Errc::configuration);

  auto run_picks = [&](int n) {
    std::vector<std::shared_ptr<Pick>> ps;
    for (int i = 0; i < n; ++i) ps.push_back(pick_async(lb, "weighted"));
    REQUIRE(tl.run_until([&] { return std::all_of(ps.begin(), ps.end(), [](auto &p) { return p->done; }); }, 30'000));
    std::array<int, 3> count{};
    std::vector<std::size_t> order;
    for (auto &p : ps) {
      REQUIRE(p->err.ok());
      order.push_back(sv.index_of(port_of(p->conn)));
      ++count[order.back()];
    }
    return std::make_pair(count, order);
  };
  // Every target has a connection after a first round.
  for (int i = 0; i < 3; ++i) REQUIRE(pick(tl, lb, "round_robin").err.ok());
  constexpr int n = 3000;
  const auto [count, order] = run_picks(n);
  // Binomial sd is at most sqrt(n/4) ~ 27 picks: allow about 4 sd.
  CHECK(std::abs(count[0] - n / 6) < 110);
  CHECK(std::abs(count[1] - n / 3) < 110);
  CHECK(std::abs(count[2] - n / 2) < 110);

  // The same seed draws the same sequence.
  auto lb2_owner = make_lb(tl, sv.targets(), {}, {}, opts);
  auto &lb2 = *lb2_owner;
  for (std::size_t i = 0; i < 3; ++i) REQUIRE(lb2.update_target_weight("127.0.0.1", sv.port[i], double(i + 1)).ok());
  std::vector<std::size_t> order2;
  for (int i = 0; i < 50; ++i) {
    auto p = pick(tl, lb2, "weighted");
    REQUIRE(p.err.ok());
    order2.push_back(sv.index_of(port_of(p.conn)));
  }
  std::vector<std::size_t> order1;
  {
    auto lb3_owner = make_lb(tl, sv.targets(), {}, {}, opts);
    auto &lb3 = *lb3_owner;
    for (std::size_t i = 0; i < 3; ++i) REQUIRE(lb3.update_target_weight("127.0.0.1", sv.port[i], double(i + 1)).ok());
    for (int i = 0; i < 50; ++i) order1.push_back(sv.index_of(port_of(pick(tl, lb3, "weighted").conn)));
    shutdown(tl, lb3);
  }
  CHECK(order1 == order2);
  shutdown(tl, lb2);

  // All weights zero: uniform.
  for (std::size_t i = 0; i < 3; ++i) REQUIRE(lb.update_target_weight("127.0.0.1", sv.port[i], 0).ok());
  const auto [uni, uorder] = run_picks(n);
  for (int c : uni) CHECK(std::abs(c - n / 3) < 110);
  shutdown(tl, lb);
  sv.close(tl);
}

TEST_CASE("load balancer: least_latency avoids the slow target", "[connection][lb][loop]") {
  TestLoop tl;
  ServerConfig slow = server_config();
  uvwt::testing::impairment(slow).enabled = true;
  uvwt::testing::impairment(slow).delay_ms = 40;  // each way
  Servers sv(tl, {slow, server_config(), server_config()});
  auto lb_owner = make_lb(tl, sv.targets());
  auto &lb = *lb_owner;
  // Untried targets first, in order.
  for (std::size_t i = 0; i < 3; ++i) {
    auto p = pick(tl, lb, "least_latency");
    REQUIRE(p.err.ok());
    CHECK(sv.index_of(port_of(p.conn)) == i);
  }
  const auto ts = lb.get_target_stats();
  REQUIRE(ts[0].latency);
  REQUIRE(ts[1].latency);
  REQUIRE(ts[2].latency);
  CHECK(*ts[0].latency >= 0.07);
  CHECK(*ts[1].latency < 0.03);
  CHECK(*ts[2].latency < 0.03);
  for (int i = 0; i < 10; ++i) {
    auto p = pick(tl, lb, "least_latency");
    REQUIRE(p.err.ok());
    CHECK(sv.index_of(port_of(p.conn)) != 0);
  }
  shutdown(tl, lb);
  sv.close(tl);
}

TEST_CASE("load balancer: least_latency compares connected and disconnected targets on one measure",
          "[connection][lb][loop]") {
  TestLoop tl;
  ServerConfig delayed = server_config();
  uvwt::testing::impairment(delayed).enabled = true;
  uvwt::testing::impairment(delayed).delay_ms = 15;  // each way: RTT at least 30 ms
  Servers sv(tl, {server_config(), delayed, server_config()});
  // Target 0 has the lowest RTT but the slowest connect: its factory answers
  // 300 ms late. Comparing its connect time with target 1's live RTT (what
  // the balancer once did) would wrongly prefer target 1 once 0 is closed.
  const std::uint16_t slow_connect_port = sv.port[0];
  auto factory = [slow_connect_port](uv_loop_t *loop, const ClientConfig &cfg, const std::string &host,
                                     std::uint16_t port, const std::string &path, Connection::ConnectCallback cb) {
    Connection::create_client(loop, cfg, host, port, path, std::nullopt,
                              [loop, port, slow_connect_port, cb](const Error &e, std::shared_ptr<Connection> c) {
                                if (port != slow_connect_port) return cb(e, c);
                                struct Later {
                                  uv_timer_t t;
                                  std::function<void()> fn;
                                };
                                auto *l = new Later{{}, [cb, e, c] { cb(e, c); }};
                                uv_timer_init(loop, &l->t);
                                l->t.data = l;
                                uv_timer_start(
                                    &l->t,
                                    [](uv_timer_t *t) {
                                      auto *l = static_cast<Later *>(t->data);
                                      l->fn();
                                      uv_close(reinterpret_cast<uv_handle_t *>(t),
                                               [](uv_handle_t *h) { delete static_cast<Later *>(h->data); });
                                    },
                                    300, 0);
                              });
  };
  auto lb_owner = make_lb(tl, {{"127.0.0.1", sv.port[0]}, {"127.0.0.1", sv.port[1]}}, factory);
  auto &lb = *lb_owner;
  auto first = pick(tl, lb, "least_latency");
  REQUIRE(first.err.ok());
  CHECK(sv.index_of(port_of(first.conn)) == 0);
  auto second = pick(tl, lb, "least_latency");
  REQUIRE(second.err.ok());
  CHECK(sv.index_of(port_of(second.conn)) == 1);

  // Target 0 disconnected, target 1 connected.
  bool closed = false;
  first.conn->close(0, "test", [&] { closed = true; });
  REQUIRE(tl.run_until([&] { return closed; }));
  auto ts = lb.get_target_stats();
  CHECK_FALSE(ts[0].connected);
  CHECK(ts[1].connected);
  REQUIRE(ts[0].latency);
  REQUIRE(ts[1].latency);
  INFO("latency 0: " << *ts[0].latency << " s, 1: " << *ts[1].latency << " s");
  CHECK(*ts[0].latency < 0.025);  // the remembered RTT, not the 300+ ms connect
  CHECK(*ts[1].latency >= 0.03);
  auto third = pick(tl, lb, "least_latency");
  REQUIRE(third.err.ok());
  CHECK(sv.index_of(port_of(third.conn)) == 0);
  CHECK(third.conn != first.conn);  // a new connection to the same target
  shutdown(tl, lb);
  sv.close(tl);
}

TEST_CASE("load balancer: failover, then restoration by health check", "[connection][lb][loop]") {
  TestLoop tl;
  Servers sv(tl);
  LoadBalancerOptions opts;
  opts.health_check_interval = std::chrono::milliseconds(150);
  opts.health_check_timeout = std::chrono::milliseconds(1'000);
  auto lb_owner = make_lb(tl, sv.targets(), {}, {}, opts);
  auto &lb = *lb_owner;
  const ClientConfig cfg = quick_client();
  for (std::size_t i = 0; i < 3; ++i) REQUIRE(sv.index_of(port_of(pick(tl, lb, "round_robin", cfg).conn)) == i);

  // Server 1 goes away: its cached connection closes with it.
  bool stopped = false;
  sv.s[1]->close([&stopped] { stopped = true; });
  REQUIRE(tl.run_until([&] { return stopped; }));
  sv.s[1].reset();
  REQUIRE(tl.run_until([&] { return !lb.get_target_stats()[1].connected; }));

  CHECK(sv.index_of(port_of(pick(tl, lb, "round_robin", cfg).conn)) == 0);
  // Server 1's turn: the attempt fails, the target is marked, server 2 answers.
  auto p = pick(tl, lb, "round_robin", cfg);
  REQUIRE(p.err.ok());
  CHECK(sv.index_of(port_of(p.conn)) == 2);
  auto st = lb.get_load_balancer_stats();
  CHECK(st.failed_targets == 1);
  CHECK(st.available_targets == 2);
  CHECK(lb.get_target_stats()[1].failed);
  for (int i = 0; i < 4; ++i) CHECK(sv.index_of(port_of(pick(tl, lb, "round_robin", cfg).conn)) != 1);

  // Still down after a few health checks.
  tl.run_for(500);
  CHECK(lb.get_target_stats()[1].failed);

  // Back on the same port: the health check restores it.
  Error err;
  sv.s[1] = Server::create(&tl.loop, server_config(), err);
  REQUIRE(err.ok());
  REQUIRE(sv.s[1]->listen("127.0.0.1", sv.port[1]).ok());
  sv.s[1]->route("/echo", echo_handler());
  REQUIRE(tl.run_until([&] { return !lb.get_target_stats()[1].failed; }, 10'000));
  CHECK(lb.get_load_balancer_stats().failed_targets == 0);
  bool seen = false;
  for (int i = 0; i < 3; ++i) {
    auto q = pick(tl, lb, "round_robin", cfg);
    REQUIRE(q.err.ok());
    seen = seen || sv.index_of(port_of(q.conn)) == 1;
  }
  CHECK(seen);
  shutdown(tl, lb);
  sv.close(tl);
}

TEST_CASE("load balancer: gives up with a clear error when every target fails", "[connection][lb][loop]") {
  TestLoop tl;
  int calls = 0;
  int probes = 0;
  auto failing = [&calls](uv_loop_t *, const ClientConfig &, const std::string &host, std::uint16_t port,
                          const std::string &, Connection::ConnectCallback cb) {
    ++calls;
    // Answering from inside the call must not break the balancer.
    cb(Error(Errc::refused, "refused by " + host + ":" + std::to_string(port)), nullptr);
  };
  auto checker = [&probes](const std::string &host, std::uint16_t, Duration timeout, std::function<void(bool)> cb) {
    ++probes;
    CHECK(host == "10.0.0.1");
    CHECK(timeout == std::chrono::milliseconds(77));
    cb(false);
  };
  LoadBalancerOptions opts;
  opts.health_check_interval = std::chrono::milliseconds(50);
  opts.health_check_timeout = std::chrono::milliseconds(77);
  auto lb_owner = make_lb(tl, {{"10.0.0.1", 1}, {"10.0.0.1", 2}, {"10.0.0.1", 3}}, failing, checker, opts);
  auto &lb = *lb_owner;
  auto p = pick(tl, lb, "round_robin");
  CHECK(p.err.errc == Errc::connection);
  CHECK(p.err.message.find("no available target") != std::string::npos);
  CHECK(p.err.message.find("refused") != std::string::npos);
  CHECK(calls == 3);
  CHECK(lb.get_load_balancer_stats().failed_targets == 3);
  CHECK(lb.get_load_balancer_stats().available_targets == 0);
  // No target left: no further attempt.
  auto q = pick(tl, lb, "weighted");
  CHECK(q.err.errc == Errc::connection);
  CHECK(calls == 3);
  tl.run_for(200);
  CHECK(probes >= 3);
  auto bad = pick(tl, lb, "fastest");
  CHECK(bad.err.errc == Errc::configuration);
  CHECK(bad.err.message.find("fastest") != std::string::npos);
  shutdown(tl, lb);
}

TEST_CASE("load balancer: concurrent callers share one connection attempt", "[connection][lb][loop]") {
  TestLoop tl;
  Servers sv(tl);
  int calls = 0;
  auto counting = [&calls](uv_loop_t *loop, const ClientConfig &cfg, const std::string &host, std::uint16_t port,
                           const std::string &path, Connection::ConnectCallback cb) {
    ++calls;
    ConnectionLoadBalancer::default_connection_factory()(loop, cfg, host, port, path, std::move(cb));
  };
  auto lb_owner = make_lb(tl, sv.targets(), counting);
  auto &lb = *lb_owner;
  // least_latency sends every caller to the first untried target while its
  // attempt runs.
  std::vector<std::shared_ptr<Pick>> ps;
  for (int i = 0; i < 8; ++i) ps.push_back(pick_async(lb, "least_latency"));
  REQUIRE(tl.run_until([&] { return std::all_of(ps.begin(), ps.end(), [](auto &p) { return p->done; }); }));
  CHECK(calls == 1);
  for (auto &p : ps) {
    REQUIRE(p->err.ok());
    CHECK(p->conn == ps[0]->conn);
  }
  // Round robin spreads concurrent callers: one attempt per target.
  ps.clear();
  calls = 0;
  for (int i = 0; i < 9; ++i) ps.push_back(pick_async(lb, "round_robin"));
  REQUIRE(tl.run_until([&] { return std::all_of(ps.begin(), ps.end(), [](auto &p) { return p->done; }); }));
  CHECK(calls == 2);  // target 0 has its connection already
  std::map<std::shared_ptr<Connection>, int> distinct;
  for (auto &p : ps) {
    REQUIRE(p->err.ok());
    ++distinct[p->conn];
  }
  CHECK(distinct.size() == 3);
  for (auto &[c, n] : distinct) CHECK(n == 3);
  // Shutdown while an attempt runs: the caller hears Errc::closed.
  bool closed = false;
  lb.close_all_connections([&closed] { closed = true; });
  REQUIRE(tl.run_until([&] { return closed; }));
  auto pending = pick_async(lb, "round_robin");
  bool down = false;
  lb.shutdown([&down] { down = true; });
  REQUIRE(tl.run_until([&] { return down && pending->done; }));
  CHECK(pending->err.errc == Errc::closed);
  sv.close(tl);
}

TEST_CASE("load balancer: create refuses no targets and bad options with a clear error", "[connection][lb]") {
  TestLoop tl;
  Error err;
  auto none = ConnectionLoadBalancer::create(&tl.loop, {}, err);
  CHECK_FALSE(none);
  CHECK(err.errc == Errc::configuration);
  CHECK(err.message.find("at least one target") != std::string::npos);
  // Only duplicates of nothing valid left: the same.
  err = Error();
  CHECK_FALSE(ConnectionLoadBalancer::create(&tl.loop, {{"", 4433}}, err));
  CHECK(err.errc == Errc::configuration);
  err = Error();
  CHECK_FALSE(ConnectionLoadBalancer::create(&tl.loop, {{"127.0.0.1", 0}}, err));
  CHECK(err.errc == Errc::configuration);
  err = Error();
  LoadBalancerOptions bad;
  bad.health_check_interval = Duration(0);
  CHECK_FALSE(ConnectionLoadBalancer::create(&tl.loop, {{"127.0.0.1", 4433}}, err, {}, {}, bad));
  CHECK(err.errc == Errc::configuration);
  CHECK(err.message.find("health_check_interval") != std::string::npos);
  err = Error();
  bad = LoadBalancerOptions{};
  bad.health_check_timeout = Duration(-1);
  CHECK_FALSE(ConnectionLoadBalancer::create(&tl.loop, {{"127.0.0.1", 4433}}, err, {}, {}, bad));
  CHECK(err.errc == Errc::configuration);
  // The reference's defaults.
  const LoadBalancerOptions defaults;
  CHECK(defaults.health_check_interval == std::chrono::seconds(30));
  CHECK(defaults.health_check_timeout == std::chrono::seconds(5));
}

TEST_CASE("load balancer: the default factory sends the config's headers and user agent", "[connection][lb][loop]") {
  TestLoop tl;
  auto server = start_server(tl);
  std::vector<Headers> seen;
  server->route("/echo", [&](std::shared_ptr<Session>, const SessionRequest &r) { seen.push_back(r.headers); });
  auto lb_owner = make_lb(tl, {{"127.0.0.1", server->port()}});
  ClientConfig cfg = client_config();
  cfg.headers = {{"x-tenant", "acme"}};
  cfg.user_agent = "lb-test/1";
  auto p = pick(tl, *lb_owner, "round_robin", cfg);
  REQUIRE(p.err.ok());
  REQUIRE(tl.run_until([&] { return seen.size() == 1; }));
  auto has = [&](const std::string &k, const std::string &v) {
    return std::find(seen[0].begin(), seen[0].end(), std::pair<std::string, std::string>{k, v}) != seen[0].end();
  };
  CHECK(has("x-tenant", "acme"));
  CHECK(has("user-agent", "lb-test/1"));
  shutdown(tl, *lb_owner);
  close_all(tl, nullptr, server);
}

TEST_CASE("load balancer: active_connections counts every cached connection, as the reference",
          "[connection][lb][loop]") {
  TestLoop tl;
  Servers sv(tl);
  auto lb_owner = make_lb(tl, sv.targets());
  auto &lb = *lb_owner;
  auto a = pick(tl, lb, "round_robin");
  auto b = pick(tl, lb, "round_robin");
  REQUIRE(a.err.ok());
  REQUIRE(b.err.ok());
  CHECK(lb.get_load_balancer_stats().active_connections == 2);
  CHECK(lb.get_load_balancer_stats().connected_connections == 2);
  // A cached connection that closed stays cached until its target is chosen again.
  bool closed = false;
  a.conn->close(0, "test", [&] { closed = true; });
  REQUIRE(tl.run_until([&] { return closed; }));
  const auto st = lb.get_load_balancer_stats();
  CHECK(st.active_connections == 2);
  CHECK(st.connected_connections == 1);
  shutdown(tl, lb);
  CHECK(lb.get_load_balancer_stats().active_connections == 0);
  sv.close(tl);
}

TEST_CASE("load balancer: a target back from a failed health check starts with a fresh latency",
          "[connection][lb][loop]") {
  TestLoop tl;
  Servers sv(tl);
  std::map<std::uint16_t, bool> down;
  auto factory = [&down](uv_loop_t *loop, const ClientConfig &cfg, const std::string &host, std::uint16_t port,
                         const std::string &path, Connection::ConnectCallback cb) {
    if (down[port]) return cb(Error(Errc::refused, "test: target down"), nullptr);
    ConnectionLoadBalancer::default_connection_factory()(loop, cfg, host, port, path, std::move(cb));
  };
  auto checker = [&down](const std::string &, std::uint16_t port, Duration, std::function<void(bool)> cb) {
    cb(!down[port]);
  };
  LoadBalancerOptions opts;
  opts.health_check_interval = std::chrono::milliseconds(100);
  auto lb_owner = make_lb(tl, sv.targets(), factory, checker, opts);
  auto &lb = *lb_owner;
  // least_latency tries every untried target first, in order: all three get an RTT.
  for (std::size_t i = 0; i < 3; ++i) {
    auto p = pick(tl, lb, "least_latency");
    REQUIRE(p.err.ok());
    CHECK(sv.index_of(port_of(p.conn)) == i);
  }
  for (const auto &t : lb.get_target_stats()) CHECK(t.latency.has_value());

  // Target 1 goes down: its live connection closes, its next attempt fails
  // and the caller fails over to target 2.
  down[sv.port[1]] = true;
  CHECK(sv.index_of(port_of(pick(tl, lb, "round_robin").conn)) == 0);
  auto one = pick(tl, lb, "round_robin");
  REQUIRE(sv.index_of(port_of(one.conn)) == 1);
  bool closed = false;
  one.conn->close(0, "test", [&] { closed = true; });
  REQUIRE(tl.run_until([&] { return closed; }));
  CHECK(sv.index_of(port_of(pick(tl, lb, "round_robin").conn)) == 2);
  CHECK(sv.index_of(port_of(pick(tl, lb, "round_robin").conn)) == 0);
  auto again = pick(tl, lb, "round_robin");
  REQUIRE(again.err.ok());
  CHECK(sv.index_of(port_of(again.conn)) == 2);
  REQUIRE(lb.get_target_stats()[1].failed);
  CHECK(lb.get_target_stats()[1].latency.has_value());  // the old RTT, while failed

  // Back: the health check restores it without its old RTT, so least_latency
  // tries it first, as an untried target.
  down[sv.port[1]] = false;
  REQUIRE(tl.run_until([&] { return !lb.get_target_stats()[1].failed; }, 5'000));
  CHECK_FALSE(lb.get_target_stats()[1].latency.has_value());
  auto fresh = pick(tl, lb, "least_latency");
  REQUIRE(fresh.err.ok());
  CHECK(sv.index_of(port_of(fresh.conn)) == 1);
  CHECK(lb.get_target_stats()[1].latency.has_value());
  shutdown(tl, lb);
  sv.close(tl);
}
