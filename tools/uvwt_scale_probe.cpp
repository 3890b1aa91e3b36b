// uvwt-scale-probe: the client side of test/scale/netns_test.sh.
//   spread HOST PORT N   N connections, one echo each; prints "spread ok N"
//   migrate HOST PORT    echo, Connection::migrate() to a new port, echo 1 MiB,
//                        prints "migrate ok" when every byte came back
//   reset HOST PORT      echo, prints "ready", then echoes every 200 ms until
//                        the connection ends; prints its error and exits 0
//                        only if it was a stateless reset
//   reconnect HOST PORT  a ReconnectingClient; echoes, prints "ready port P"
//                        (its local port, by which the test finds the
//                        backend), and once the backend's drain ended the
//                        session, echoes on the new one and prints
//                        "reconnected port P2 after N attempt(s)"
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <memory>
#include <string>
#include <utility>

#include <uvwt/uvwt.hpp>

namespace {

using Done = std::function<void(bool ok)>;

// Echoes `n` bytes of `fill` over a new bidi stream; done(true) when all came back.
// done runs once: a stream whose FIN came back may still report an error when
// the connection closes before our own FIN was acknowledged.
void echo(const std::shared_ptr<uvwt::Session> &s, std::size_t n, std::uint8_t fill, Done once) {
  auto fired = std::make_shared<bool>(false);
  Done done = [fired, once](bool ok) {
    if (std::exchange(*fired, true)) return;
    once(ok);
  };
  s->open_bidi_stream([n, fill, done, fired](const uvwt::Error &err, std::shared_ptr<uvwt::Stream> st) {
    if (err) {
      std::printf("open stream: %s\n", err.to_string().c_str());
      return done(false);
    }
    auto got = std::make_shared<std::size_t>(0);
    auto bad = std::make_shared<bool>(false);
    st->on_data([got, bad, n, fill, done](std::span<const std::uint8_t> d, bool fin) {
      for (auto b : d) *bad = *bad || b != fill;
      *got += d.size();
      if (!fin) return;
      if (*bad || *got != n) std::printf("echo: %zu of %zu bytes back%s\n", *got, n, *bad ? ", corrupted" : "");
      done(!*bad && *got == n);
    });
    st->on_error([done, fired](const uvwt::Error &e) {
      if (!*fired) std::printf("stream error: %s\n", e.to_string().c_str());
      done(false);
    });
    auto off = std::make_shared<std::size_t>(0);
    auto pump = std::make_shared<std::function<void()>>();
    std::weak_ptr<uvwt::Stream> ws = st;
    *pump = [ws, off, n, fill, pump] {
      auto st = ws.lock();
      if (!st) return;
      while (*off < n && st->writable()) {
        const std::size_t k = std::min<std::size_t>(16384, n - *off);
        st->write(uvwt::Bytes(k, fill));
        *off += k;
      }
      if (*off == n) {
        st->end();
        *pump = nullptr;
      }
    };
    st->on_writable([pump] {
      if (*pump) (*pump)();
    });
    (*pump)();
  });
}

struct Probe {
  uv_loop_t *loop;
  std::string host;
  std::uint16_t port;
  int rc = 1;

  static uvwt::ClientConfig client_config() {
    auto cfg = uvwt::ClientConfig::development();
    cfg.verify_peer = false;
    cfg.connect_timeout = uvwt::Duration(5'000);
    cfg.idle_timeout = uvwt::Duration(30'000);
    return cfg;
  }

  void connect(std::function<void(std::shared_ptr<uvwt::Connection>, std::shared_ptr<uvwt::Session>)> then) {
    uvwt::Connection::create_client(loop, client_config(), host, port, "/echo", std::nullopt,
                                    [then](const uvwt::Error &e, std::shared_ptr<uvwt::Connection> c) {
                                      if (e || !c) {
                                        std::printf("connect failed: %s\n", e.to_string().c_str());
                                        return then(nullptr, nullptr);
                                      }
                                      auto id = c->get_ready_session_id();
                                      then(c, id ? c->get_session(*id) : nullptr);
                                    });
  }

  void spread(int n) {
    auto left = std::make_shared<int>(n);
    auto ok = std::make_shared<int>(0);
    for (int i = 0; i < n; ++i) {
      connect([this, left, ok, n](auto c, auto s) {
        auto finish = [this, left, ok, n, c](bool good) {
          *ok += good ? 1 : 0;
          if (c) c->close();
          if (--*left == 0) {
            std::printf("spread %s %d/%d\n", *ok == n ? "ok" : "failed", *ok, n);
            rc = *ok == n ? 0 : 1;
          }
        };
        if (!s) return finish(false);
        echo(s, 1000, 1, finish);
      });
    }
  }

  void migrate() {
    connect([this](auto c, auto s) {
      if (!s) return;
      echo(s, 65536, 1, [this, c, s](bool ok) {
        if (!ok) return std::printf("echo before migrating failed\n"), c->close();
        const auto before = c->local_address();
        if (auto err = c->migrate()) return std::printf("migrate: %s\n", err.to_string().c_str()), c->close();
        echo(s, 1u << 20, 2, [this, c, before](bool ok2) {
          const auto after = c->local_address();
          std::printf("migrate %s port %u -> %u\n", ok2 ? "ok" : "failed", before ? before->port : 0,
                      after ? after->port : 0);
          rc = ok2 && before && after && before->port != after->port ? 0 : 1;
          c->close();
        });
      });
    });
  }

  void reset() {
    connect([this](auto c, auto s) {
      if (!s) return;
      echo(s, 1000, 1, [this, c, s](bool ok) {
        if (!ok) return std::printf("first echo failed\n"), c->close();
        std::printf("ready\n");
        std::fflush(stdout);
        c->on_closed([this](const uvwt::Error &e) {
          std::printf("closed: %s\n", e.to_string().c_str());
          rc = e.to_string().find("stateless reset") != std::string::npos ? 0 : 1;
        });
        auto tick = new uv_timer_t;
        uv_timer_init(loop, tick);
        tick->data = new std::weak_ptr<uvwt::Session>(s);
        uv_timer_start(
            tick,
            [](uv_timer_t *t) {
              auto *w = static_cast<std::weak_ptr<uvwt::Session> *>(t->data);
              auto s = w->lock();
              if (s && s->connection() && s->connection()->state() == uvwt::ConnectionState::connected) {
                echo(s, 100, 3, [](bool) {});
                return;
              }
              delete w;
              uv_close(reinterpret_cast<uv_handle_t *>(t),
                       [](uv_handle_t *h) { delete reinterpret_cast<uv_timer_t *>(h); });
            },
            200, 200);
      });
    });
  }
  static std::uint16_t local_port(const std::shared_ptr<uvwt::Session> &s) {
    auto c = s->connection();
    auto a = c ? c->local_address() : std::nullopt;
    return a ? a->port : 0;
  }

  std::shared_ptr<uvwt::Client> client;
  std::shared_ptr<uvwt::ReconnectingClient> rc_client;

  void finish_reconnect(int code) {
    rc = code;
    rc_client->close([this] { client->close(); });
  }

  void reconnect() {
    auto cfg = client_config();
    // Quick retries: an attempt the balancer hashes to the draining backend
    // is refused, the next one (a new port, a new hash) goes elsewhere.
    cfg.connect_timeout = uvwt::Duration(2'000);
    cfg.retry_delay = uvwt::Duration(100);
    cfg.retry_backoff = 1.0;
    cfg.max_retries = 20;
    uvwt::Error err;
    client = uvwt::Client::create(loop, cfg, err);
    if (!client) return (void)std::printf("client: %s\n", err.to_string().c_str());
    rc_client = uvwt::ReconnectingClient::create(client, "https://" + host + ":" + std::to_string(port) + "/echo");
    auto first = std::make_shared<std::uint16_t>(0);
    rc_client->on_lost([](const uvwt::SessionCloseInfo &ci) {
      std::printf("lost: code %u %s\n", ci.code, ci.reason.c_str());
      std::fflush(stdout);
    });
    rc_client->on_failed([this](const uvwt::Error &e, int attempts) {
      std::printf("gave up after %d attempt(s): %s\n", attempts, e.to_string().c_str());
      finish_reconnect(1);
    });
    rc_client->on_connected([this, first](const std::shared_ptr<uvwt::Session> &s, int attempt) {
      const std::uint16_t p = local_port(s);
      s->on_draining([] { std::printf("draining\n"), std::fflush(stdout); });
      echo(s, 1000, *first == 0 ? 1 : 2, [this, first, p, attempt](bool ok) {
        if (!ok) return std::printf("echo on port %u failed\n", p), finish_reconnect(1);
        if (*first == 0) {
          *first = p;
          std::printf("ready port %u\n", p);
          std::fflush(stdout);
          return;
        }
        std::printf("reconnected port %u after %d attempt(s)\n", p, attempt);
        finish_reconnect(p != *first ? 0 : 1);
      });
    });
  }
};

}  // namespace

int main(int argc, char **argv) {
  if (argc < 4) {
    std::fprintf(stderr, "usage: uvwt-scale-probe spread|migrate|reset|reconnect HOST PORT [N]\n");
    return 2;
  }
  std::setvbuf(stdout, nullptr, _IOLBF, 0);  // the test reads the lines while the probe runs
  uv_loop_t loop;
  uv_loop_init(&loop);
  Probe p{&loop, argv[2], static_cast<std::uint16_t>(std::atoi(argv[3]))};
  const std::string mode = argv[1];
  if (mode == "spread")
    p.spread(argc > 4 ? std::atoi(argv[4]) : 12);
  else if (mode == "migrate")
    p.migrate();
  else if (mode == "reset")
    p.reset();
  else if (mode == "reconnect")
    p.reconnect();
  else
    return 2;
  uv_run(&loop, UV_RUN_DEFAULT);
  // Closed objects still hold their loop handles until the last reference
  // goes: drop ours, let their handles close, then the loop closes empty.
  p.rc_client.reset();
  p.client.reset();
  uv_run(&loop, UV_RUN_DEFAULT);
  if (uv_loop_close(&loop) != 0) {
    std::fprintf(stderr, "uvwt-scale-probe: handles left open on the loop\n");
    return 1;
  }
  return p.rc;
}
