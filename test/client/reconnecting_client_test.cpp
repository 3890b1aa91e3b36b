// Loopback tests of ReconnectingClient: reconnecting across a server restart
// on the same port within the backoff bounds, giving up after max_retries,
// get_session timing out, closing while connecting.

#include <uvwt/uvwt.hpp>

#include <chrono>
#include <cmath>

#include "catch.hpp"
#include "client/client_fixture.hpp"
#include "common/deferred.hpp"
#include "testing/testing.hpp"

using namespace uvwt;
using namespace uvwt::test;

namespace {
ClientConfig retry_config(int max_retries) {
  ClientConfig c = client_config();
  c.connect_timeout = Duration(300);
  c.max_retries = max_retries;
  c.retry_delay = Duration(50);
  c.retry_backoff = 2.0;
  c.max_retry_delay = Duration(200);
  return c;
}

std::shared_ptr<Session> wait_session(TestLoop &tl, ReconnectingClient &rc, Duration timeout) {
  bool done = false;
  std::shared_ptr<Session> out;
  rc.get_session(timeout, [&](std::shared_ptr<Session> s) {
    out = std::move(s);
    done = true;
  });
  CHECK_FALSE(done);
  REQUIRE(tl.run_until([&] { return done; }, 15'000));
  return out;
}

void close_rc(TestLoop &tl, ReconnectingClient &rc) {
  bool done = false;
  rc.close([&] { done = true; });
  CHECK_FALSE(done);
  REQUIRE(tl.run_until([&] { return done; }, 10'000));
  CHECK(rc.is_closed());
}
}  // namespace

TEST_CASE("ReconnectingClient reconnects after the server restarts on the same port", "[client][loop][reconnect]") {
  TestLoop tl;
  auto server = start_server(tl);
  server->route("/echo", echo_handler());
  const auto port = server->port();
  auto client = make_client(tl, retry_config(-1));  // unlimited
  auto rc = ReconnectingClient::create(client, url_of(port, "/echo"));
  CHECK(rc->url() == url_of(port, "/echo"));
  CHECK_FALSE(rc->is_connected());

  std::vector<int> connected_attempts;
  int lost = 0;
  rc->on_connected([&](const std::shared_ptr<Session> &s, int attempt) {
    CHECK(s->is_ready());
    connected_attempts.push_back(attempt);
  });
  rc->on_lost([&](const SessionCloseInfo &) { ++lost; });
  rc->on_failed([&](const Error &e, int) { FAIL("gave up: " << e.to_string()); });

  auto first = wait_session(tl, *rc, Duration(5'000));
  REQUIRE(first);
  CHECK(rc->is_connected());
  REQUIRE(connected_attempts == std::vector<int>{1});
  CHECK(rc->attempts() == 1);

  // get_session answers at once (on a later turn) with the ready session.
  CHECK(wait_session(tl, *rc, Duration(5'000)) == first);

  close_server(tl, server);
  REQUIRE(tl.run_until([&] { return lost == 1; }, 5'000));
  CHECK_FALSE(rc->is_connected());
  // Server down: attempts fail (refused, or a 300 ms timeout once the kernel
  // rate-limits its ICMP errors) and back off 50, 100, 200, 200 ... ms (x0.5..1.5).
  tl.run_for(900);
  const int failed_while_down = rc->consecutive_failures();
  CHECK(failed_while_down >= 2);
  CHECK(failed_while_down <= 12);

  Error err;
  server = Server::create(&tl.loop, server_config(), err);
  REQUIRE(err.ok());
  REQUIRE(server->listen("127.0.0.1", port).ok());
  server->route("/echo", echo_handler());
  const auto restarted = std::chrono::steady_clock::now();
  auto second = wait_session(tl, *rc, Duration(5'000));
  REQUIRE(second);
  const auto waited = std::chrono::steady_clock::now() - restarted;
  // At worst an attempt in flight times out (300 ms), the next one comes at
  // most max_retry_delay * 1.5 = 300 ms later and needs a handshake (generous
  // on a loaded machine).
  CHECK(waited < std::chrono::milliseconds(300 + 300 + 1'400));
  CHECK(second != first);
  REQUIRE(connected_attempts.size() == 2);
  CHECK(connected_attempts[1] >= 2);  // the attempt number after the loss
  CHECK(rc->consecutive_failures() == 0);
  CHECK(rc->attempts() == 1 + connected_attempts[1]);

  close_rc(tl, *rc);
  CHECK(second->is_closed());
  CHECK(lost == 1);  // our own close is not a loss
  // Closed: answers null at once.
  CHECK(wait_session(tl, *rc, Duration(1'000)) == nullptr);
  close_client(tl, client);
  close_server(tl, server);
}

TEST_CASE("ReconnectingClient gives up after max_retries consecutive failures", "[client][loop][reconnect]") {
  TestLoop tl;
  auto client = make_client(tl, retry_config(2));
  auto rc = ReconnectingClient::create(client, url_of(closed_port(tl), "/echo"));
  Error why;
  int attempts_reported = 0;
  rc->on_failed([&](const Error &e, int attempts) {
    why = e;
    attempts_reported = attempts;
  });
  // A waiter is answered with null when the client gives up.
  auto s = wait_session(tl, *rc, Duration(10'000));
  CHECK(s == nullptr);
  REQUIRE(tl.run_until([&] { return attempts_reported > 0; }, 10'000));
  CHECK(rc->has_failed());
  CHECK(attempts_reported == 3);  // the first attempt and 2 retries
  CHECK(rc->attempts() == 3);
  CHECK((why.errc == Errc::refused || why.errc == Errc::timeout));
  CHECK(why.message.find("max retries (2) exceeded") != std::string::npos);
  CHECK(client->stats().connections_failed == 3);
  CHECK(wait_session(tl, *rc, Duration(1'000)) == nullptr);
  close_rc(tl, *rc);
  close_client(tl, client);
}

TEST_CASE("ReconnectingClient: no retry for a bad URL, get_session times out, close while connecting",
          "[client][loop][reconnect]") {
  TestLoop tl;
  SECTION("bad URL gives up at once") {
    auto client = make_client(tl, retry_config(-1));
    auto rc = ReconnectingClient::create(client, "http://127.0.0.1/echo");
    Error why;
    rc->on_failed([&](const Error &e, int) { why = e; });
    REQUIRE(tl.run_until([&] { return rc->has_failed(); }, 2'000));
    CHECK(why.errc == Errc::invalid_url);
    CHECK(rc->attempts() == 1);
    close_rc(tl, *rc);
    close_client(tl, client);
  }
  SECTION("get_session times out, close cancels the connect in flight") {
    ClientConfig cfg = retry_config(-1);
    uvwt::testing::impairment(cfg).enabled = true;
    uvwt::testing::impairment(cfg).blackhole = true;
    cfg.connect_timeout = Duration(5'000);
    auto client = make_client(tl, cfg);
    auto server = start_server(tl);
    auto rc = ReconnectingClient::create(client, url_of(server->port(), "/echo"));
    const auto t0 = std::chrono::steady_clock::now();
    CHECK(wait_session(tl, *rc, Duration(150)) == nullptr);
    const auto waited = std::chrono::steady_clock::now() - t0;
    CHECK(waited >= std::chrono::milliseconds(140));
    CHECK(waited < std::chrono::milliseconds(1'000));
    CHECK(rc->attempts() == 1);
    CHECK(client->diagnostics().connection_states[ConnectionState::connecting] == 1);
    close_rc(tl, *rc);
    REQUIRE(tl.run_until([&] { return client->diagnostics().connection_states.empty(); }, 2'000));
    CHECK(client->stats().connections_failed == 1);
    close_client(tl, client);
    close_server(tl, server);
  }
}

namespace {
using Clock = std::chrono::steady_clock;

// A Client whose every connect fails (refused) on the next turn, recording
// when each attempt was made: retry gaps without network timing in them.
class FailingClient final : public Client {
 public:
  FailingClient(uv_loop_t *loop, ClientConfig cfg)
      : loop_(loop), cfg_(std::move(cfg)), deferred_(std::make_shared<detail::Deferred>(loop)) {}
  [[nodiscard]] uv_loop_t *loop() const noexcept override { return loop_; }
  [[nodiscard]] const ClientConfig &config() const noexcept override { return cfg_; }
  [[nodiscard]] bool is_closed() const noexcept override { return closed_; }
  void connect(const std::string &, const ConnectOptions &, SessionCallback cb) override {
    calls.push_back(Clock::now());
    deferred_->post([cb = std::move(cb)] { cb(Error(Errc::refused, "test: refused"), nullptr); });
  }
  void set_default_headers(Headers) override {}
  [[nodiscard]] Headers default_headers() const override { return {}; }
  void close(CloseCallback cb) override {
    closed_ = true;
    if (cb) deferred_->post(std::move(cb));
  }
  [[nodiscard]] ClientStats stats() const override { return {}; }
  [[nodiscard]] ClientDiagnostics diagnostics() const override { return {}; }

  std::vector<Clock::time_point> calls;

 private:
  uv_loop_t *loop_;
  ClientConfig cfg_;
  std::shared_ptr<detail::Deferred> deferred_;
  bool closed_ = false;
};

// Gaps between consecutive attempts, in ms.
std::vector<double> gaps_ms(const std::vector<Clock::time_point> &calls) {
  std::vector<double> out;
  for (std::size_t i = 1; i < calls.size(); ++i)
    out.push_back(std::chrono::duration<double, std::milli>(calls[i] - calls[i - 1]).count());
  return out;
}
}  // namespace

TEST_CASE("ReconnectingClient waits the backoff formula between attempts", "[client][loop][reconnect][timing]") {
  TestLoop tl;
  ClientConfig cfg = client_config();
  cfg.retry_delay = Duration(100);
  cfg.retry_backoff = 2.0;
  cfg.max_retry_delay = Duration(10'000);
  cfg.max_retries = 4;
  const std::vector<double> formula{100, 200, 400, 800};  // retry_delay * backoff^(n-1)
  // The loop clock may lag the monotonic clock by a few ms: lower bounds allow that much.
  constexpr double kClockSlack = 5;
  constexpr double kSchedulingSlack = 500;

  const bool jitter = GENERATE(false, true);
  cfg.retry_jitter = jitter;
  auto client = std::make_shared<FailingClient>(&tl.loop, cfg);
  auto rc = ReconnectingClient::create(client, "https://127.0.0.1:1/x");
  int failed_attempts = 0;
  rc->on_failed([&](const Error &e, int attempts) {
    CHECK(e.errc == Errc::refused);
    failed_attempts = attempts;
  });
  REQUIRE(tl.run_until([&] { return rc->has_failed(); }, 10'000));
  CHECK(failed_attempts == 5);  // the first attempt and max_retries retries
  const auto gaps = gaps_ms(client->calls);
  REQUIRE(gaps.size() == formula.size());
  bool deviates = false;
  for (std::size_t i = 0; i < gaps.size(); ++i) {
    INFO("jitter " << jitter << ", retry " << i + 1 << ": gap " << gaps[i] << " ms, formula " << formula[i] << " ms");
    const double low = jitter ? 0.5 * formula[i] : formula[i];
    const double high = jitter ? 1.5 * formula[i] : formula[i];
    CHECK(gaps[i] >= low - kClockSlack);
    CHECK(gaps[i] < high + kSchedulingSlack);
    deviates = deviates || std::abs(gaps[i] - formula[i]) > 0.05 * formula[i];
  }
  // Four uniform factors all within 5 % of 1 happen once in 10^4 runs.
  if (jitter) CHECK(deviates);

  bool closed = false;
  rc->close([&] { closed = true; });
  REQUIRE(tl.run_until([&] { return closed; }, 2'000));
  CHECK_FALSE(client->is_closed());  // the client stays the caller's
}

TEST_CASE("ReconnectingClient reconnects at once after a lost session", "[client][loop][reconnect][timing]") {
  TestLoop tl;
  auto server = start_server(tl);
  std::shared_ptr<Session> server_side;
  server->route("/echo", [&](std::shared_ptr<Session> s, const SessionRequest &req) {
    server_side = s;
    echo_handler()(std::move(s), req);
  });
  ClientConfig cfg = client_config();
  cfg.retry_delay = Duration(5'000);  // a reconnect waiting for it would take 2.5 s at least
  cfg.max_retry_delay = Duration(30'000);
  auto client = make_client(tl, cfg);
  auto rc = ReconnectingClient::create(client, url_of(server->port(), "/echo"));
  std::vector<Clock::time_point> connected_at;
  std::vector<int> connected_attempts;
  Clock::time_point lost_at{};
  rc->on_connected([&](const std::shared_ptr<Session> &, int attempt) {
    connected_at.push_back(Clock::now());
    connected_attempts.push_back(attempt);
  });
  rc->on_lost([&](const SessionCloseInfo &) { lost_at = Clock::now(); });
  REQUIRE(tl.run_until([&] { return connected_at.size() == 1 && server_side; }, 10'000));

  server_side->close(7, "go away", {});
  server_side.reset();
  REQUIRE(tl.run_until([&] { return connected_at.size() == 2; }, 10'000));
  REQUIRE(lost_at != Clock::time_point{});
  CHECK(connected_at[1] - lost_at < std::chrono::milliseconds(2'000));
  CHECK(connected_attempts == std::vector<int>{1, 1});
  CHECK(rc->attempts() == 2);
  CHECK(rc->is_connected());

  close_rc(tl, *rc);
  CHECK_FALSE(client->is_closed());
  close_client(tl, client);
  server_side.reset();
  close_server(tl, server);
}

TEST_CASE("ReconnectingClient::get_session waits 5 s by default", "[client][loop][reconnect][timing]") {
  TestLoop tl;
  ClientConfig cfg = retry_config(-1);
  uvwt::testing::impairment(cfg).enabled = true;
  uvwt::testing::impairment(cfg).blackhole = true;
  cfg.connect_timeout = Duration(20'000);
  auto client = make_client(tl, cfg);
  auto server = start_server(tl);
  auto rc = ReconnectingClient::create(client, url_of(server->port(), "/echo"));
  CHECK(ReconnectingClient::kDefaultGetSessionTimeout == std::chrono::seconds(5));
  bool done = false;
  std::shared_ptr<Session> got;
  const auto t0 = std::chrono::steady_clock::now();
  rc->get_session([&](std::shared_ptr<Session> s) {
    got = std::move(s);
    done = true;
  });
  REQUIRE(tl.run_until([&] { return done; }, 15'000));
  const auto waited = std::chrono::steady_clock::now() - t0;
  CHECK(got == nullptr);
  CHECK(waited >= std::chrono::milliseconds(4'900));
  CHECK(waited < std::chrono::milliseconds(9'000));
  close_rc(tl, *rc);
  close_client(tl, client);
  close_server(tl, server);
}
