// One loop per core: the SO_REUSEPORT group with its BPF steering, and a
// client that migrates to a new port mid-session (docs/scaling.md).
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <uvwt/server_group.hpp>

#include <array>
#include <atomic>
#include <vector>

#include "support/echo_client.hpp"
#include "support/echo_handler.hpp"
#include "support/fixture.hpp"

using namespace uvwt;
using namespace uvwt::test;

namespace {
struct PerWorker {
  std::array<std::atomic<int>, 2> sessions{};
  std::array<std::atomic<std::uint64_t>, 2> bytes{};  // stream bytes each worker echoed
};

// Echo, counting per worker what it served.
ServerGroup::WorkerSetup counting_echo(PerWorker &pw) {
  return [&pw](std::size_t index, uv_loop_t *, Server &server) {
    server.route("/echo", [&pw, index](std::shared_ptr<Session> s, const SessionRequest &) {
      pw.sessions[index]++;
      s->on_bidi_stream([&pw, index](std::shared_ptr<Stream> st) {
        std::weak_ptr<Stream> w = st;
        st->on_data([&pw, index, w](std::span<const std::uint8_t> data, bool fin) {
          auto s = w.lock();
          if (!s) return;
          pw.bytes[index] += data.size();
          if (!data.empty()) s->write(Bytes(data.begin(), data.end()));
          if (fin) s->end();
        });
      });
    });
  };
}

bool echo_ok(TestLoop &tl, const std::shared_ptr<Session> &s, std::size_t n, std::uint8_t fill) {
  auto r = echo_bidi_stream(s, Bytes(n, fill));
  REQUIRE(tl.run_until([&] { return r->done(); }, 10'000));
  return r->err.ok() && r->received == Bytes(n, fill);
}

// Whether a fresh UDP socket can bind the wildcard address on `port` (the
// client's sockets bind the wildcard): false while another socket holds it.
bool udp_port_free(std::uint16_t port) {
  const int fd = socket(AF_INET, SOCK_DGRAM, 0);
  REQUIRE(fd >= 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  const bool ok = bind(fd, reinterpret_cast<const sockaddr *>(&a), sizeof a) == 0;
  close(fd);
  return ok;
}
}  // namespace

namespace {
// A client on a fresh /echo server that has echoed once: the start of
// every migration test.
Connected echoed_once(TestLoop &tl, const std::shared_ptr<Server> &server) {
  server->route("/echo", echo_handler());
  auto c = connect(tl, server->port(), "/echo");
  REQUIRE(c.err.ok());
  REQUIRE(echo_ok(tl, c.session, 4000, 1));
  return c;
}
}  // namespace

TEST_CASE("a migrating client keeps its session on the same server", "[scale][migration]") {
  TestLoop tl;
  auto server = start_server(tl);
  std::shared_ptr<Connection> server_side;
  server->on_connection([&](std::shared_ptr<Connection> c) { server_side = c; });
  auto c = echoed_once(tl, server);
  const auto before = c.conn->local_address();
  REQUIRE(before);
  REQUIRE(c.conn->migrate().ok());
  const auto after = c.conn->local_address();
  REQUIRE(after);
  CHECK(after->port != before->port);
  // Data in both directions after the move, on the same session, no loss.
  REQUIRE(echo_ok(tl, c.session, 200'000, 2));
  // The server follows the client to its new port (RFC 9000 9.3): its view
  // of the peer is the new address.
  REQUIRE(server_side);
  REQUIRE(tl.run_until(
      [&] { return server_side->remote_address() && server_side->remote_address()->port == after->port; }));
  CHECK(server->stats().stateless_resets_sent == 0);
  c.conn->close();
  server->close();
}

// RFC 9000 9.2/9.3: once the new path is validated the client sends and
// receives only there; the old socket is closed instead of staying bound
// (and polled) for the rest of the connection's life.
TEST_CASE("a migrated client closes its old socket once the new path is validated", "[scale][migration]") {
  TestLoop tl;
  auto server = start_server(tl);
  auto c = echoed_once(tl, server);
  const auto before = c.conn->local_address();
  REQUIRE(before);
  REQUIRE(c.conn->migrate().ok());
  // Not before validation: packets still in flight to the old port arrive.
  CHECK_FALSE(udp_port_free(before->port));
  REQUIRE(echo_ok(tl, c.session, 100'000, 2));
  REQUIRE(tl.run_until([&] { return udp_port_free(before->port); }, 5'000));
  // The connection lives on over the new socket alone.
  REQUIRE(echo_ok(tl, c.session, 100'000, 3));
  CHECK(c.conn->local_address()->port != before->port);
  CHECK(server->stats().stateless_resets_sent == 0);
  c.conn->close();
  server->close();
}

// Two moves in a row: every socket but the last is closed.
TEST_CASE("a client that migrates twice keeps only its last socket", "[scale][migration]") {
  TestLoop tl;
  auto server = start_server(tl);
  auto c = echoed_once(tl, server);
  const auto first = c.conn->local_address()->port;
  REQUIRE(c.conn->migrate().ok());
  REQUIRE(echo_ok(tl, c.session, 20'000, 2));
  const auto second = c.conn->local_address()->port;
  REQUIRE(c.conn->migrate().ok());
  REQUIRE(echo_ok(tl, c.session, 20'000, 3));
  const auto third = c.conn->local_address()->port;
  REQUIRE(tl.run_until([&] { return udp_port_free(first) && udp_port_free(second); }, 5'000));
  CHECK_FALSE(udp_port_free(third));
  c.conn->close();
  server->close();
}

TEST_CASE("migrate() refuses on a server connection", "[scale][migration]") {
  TestLoop tl;
  auto server = start_server(tl);
  server->route("/echo", echo_handler());
  std::shared_ptr<Connection> server_side;
  server->on_connection([&](std::shared_ptr<Connection> c) { server_side = c; });
  auto c = connect(tl, server->port(), "/echo");
  REQUIRE(c.err.ok());
  REQUIRE(server_side);
  CHECK_FALSE(server_side->migrate().ok());
  c.conn->close();
  server->close();
}

TEST_CASE("ServerGroup steers every connection to its own worker, also after the client's port changes",
          "[scale][steering]") {
  PerWorker pw;
  Error err;
  auto group = ServerGroup::start(server_config(), "127.0.0.1", 0, 2, counting_echo(pw), err);
  REQUIRE(err.ok());
  REQUIRE(group);
  REQUIRE(group->port() != 0);
  {
    TestLoop tl;
    std::vector<Connected> conns;
    for (int i = 0; i < 16; ++i) {
      conns.push_back(connect(tl, group->port(), "/echo"));
      REQUIRE(conns.back().err.ok());
    }
    // New connections spread by the kernel's 4-tuple hash: 16 all on one
    // worker would be a 1 in 2^15 chance.
    CHECK(pw.sessions[0] > 0);
    CHECK(pw.sessions[1] > 0);
    CHECK(pw.sessions[0] + pw.sessions[1] == 16);
    // Every connection's stream data reaches the worker that accepted it (a
    // packet on the other worker would meet an unknown id and a reset), and
    // after the client moved to a new port it still reaches that worker.
    int moved = 0;
    for (auto &c : conns) {
      const std::uint64_t a0 = pw.bytes[0], a1 = pw.bytes[1];
      REQUIRE(echo_ok(tl, c.session, 3000, 3));
      const int owner = pw.bytes[0] - a0 == 3000 ? 0 : 1;
      REQUIRE(pw.bytes[owner] - (owner == 0 ? a0 : a1) == 3000);
      const std::uint64_t b0 = pw.bytes[0], b1 = pw.bytes[1];
      const auto port_before = c.conn->local_address()->port;
      REQUIRE(c.conn->migrate().ok());
      REQUIRE(c.conn->local_address()->port != port_before);
      REQUIRE(echo_ok(tl, c.session, 50'000, 4));
      const std::uint64_t got[2] = {pw.bytes[0] - b0, pw.bytes[1] - b1};
      CHECK(got[owner] == 50'000);
      CHECK(got[1 - owner] == 0);
      ++moved;
    }
    CHECK(moved == 16);
    for (auto &c : conns) c.conn->close();
    tl.run_for(200);
  }
  group->stop();
}
