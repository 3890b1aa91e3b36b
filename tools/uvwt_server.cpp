// uvwt-server: a WebTransport test server for browsers, the demo and benchmarks.
//
//   /echo     bidi streams echoed as data arrives (FIN included); each uni
//             stream's content echoed on a new server-opened uni stream;
//             datagrams echoed
//   /push     opens a bidi stream ("hello from server", FIN) and a uni stream
//             ("uni from server"), then echoes like /echo
//   /close    closes the session after 200 ms with 4242 "bye from server"
//   /discard  reads and drops everything
//
// Prints `cert-sha256: HEX`, `cert-sha256-b64: B64` and then `listening: PORT`
// on stdout, then `session: ROUTE from ADDR dialect NAME` per accepted session
// and `session-end: ROUTE datagrams ...` when it ends (tests parse these lines).
#include <uv.h>

#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include <uvwt/uvwt.hpp>

namespace {

struct Options {
  std::vector<std::string> hosts;
  std::uint16_t port = 4433;
  std::string cert_file, key_file;
  std::string qlog_dir;
  double exit_after = 0;  // seconds; 0 = run until a signal
  std::size_t max_datagrams_per_packet = uvwt::TransportConfig{}.max_datagrams_per_packet;
};

void usage(FILE *out) {
  std::fprintf(out,
               "usage: uvwt-server [options]\n"
               "  --host ADDR         listen address, repeatable (default 127.0.0.1 and ::1)\n"
               "  --port N            UDP port (default 4433, 0 picks a free one)\n"
               "  --cert FILE --key FILE\n"
               "                      PEM certificate and key (default: a fresh self-signed\n"
               "                      ECDSA P-256 certificate valid 10 days)\n"
               "  --log-level LEVEL   trace, debug, info, warning, error, off\n"
               "  --qlog-dir DIR      write a qlog file per connection\n"
               "  --exit-after SECS   shut down gracefully after SECS seconds\n"
               "  --max-datagrams-per-packet N\n"
               "                      datagrams packed into one QUIC packet at most (default %zu)\n"
               "routes: /echo /push /close /discard\n",
               uvwt::TransportConfig{}.max_datagrams_per_packet);
}

bool parse_log_level(const std::string &s, uvwt::LogLevel &out) {
  static constexpr std::pair<const char *, uvwt::LogLevel> kLevels[] = {
      {"trace", uvwt::LogLevel::trace},     {"debug", uvwt::LogLevel::debug},  {"info", uvwt::LogLevel::info},
      {"warning", uvwt::LogLevel::warning}, {"warn", uvwt::LogLevel::warning}, {"error", uvwt::LogLevel::error},
      {"off", uvwt::LogLevel::off}};
  for (const auto &[name, lvl] : kLevels) {
    if (s == name) {
      out = lvl;
      return true;
    }
  }
  return false;
}

// Returns 0 to run, 1 on a bad command line, -1 after --help.
int parse_options(int argc, char **argv, Options &o) {
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto value = [&](std::string &out) {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "uvwt-server: %s needs a value\n", a.c_str());
        return false;
      }
      out = argv[++i];
      return true;
    };
    std::string v;
    if (a == "-h" || a == "--help") {
      usage(stdout);
      return -1;
    } else if (a == "--host") {
      if (!value(v)) return 1;
      o.hosts.push_back(v);
    } else if (a == "--port") {
      if (!value(v)) return 1;
      char *end = nullptr;
      const long p = std::strtol(v.c_str(), &end, 10);
      if (*end != '\0' || p < 0 || p > 65535) {
        std::fprintf(stderr, "uvwt-server: bad port %s\n", v.c_str());
        return 1;
      }
      o.port = static_cast<std::uint16_t>(p);
    } else if (a == "--cert") {
      if (!value(o.cert_file)) return 1;
    } else if (a == "--key") {
      if (!value(o.key_file)) return 1;
    } else if (a == "--qlog-dir") {
      if (!value(o.qlog_dir)) return 1;
    } else if (a == "--log-level") {
      if (!value(v)) return 1;
      uvwt::LogLevel lvl{};
      if (!parse_log_level(v, lvl)) {
        std::fprintf(stderr, "uvwt-server: bad log level %s\n", v.c_str());
        return 1;
      }
      uvwt::set_log_level(lvl);
    } else if (a == "--exit-after") {
      if (!value(v)) return 1;
      char *end = nullptr;
      o.exit_after = std::strtod(v.c_str(), &end);
      if (*end != '\0' || o.exit_after < 0) {
        std::fprintf(stderr, "uvwt-server: bad --exit-after %s\n", v.c_str());
        return 1;
      }
    } else if (a == "--max-datagrams-per-packet") {
      if (!value(v)) return 1;
      char *end = nullptr;
      o.max_datagrams_per_packet = std::strtoul(v.c_str(), &end, 10);
      if (*end != '\0' || v.empty()) {
        std::fprintf(stderr, "uvwt-server: bad --max-datagrams-per-packet %s\n", v.c_str());
        return 1;
      }
    } else {
      std::fprintf(stderr, "uvwt-server: unknown option %s\n", a.c_str());
      usage(stderr);
      return 1;
    }
  }
  if (o.cert_file.empty() != o.key_file.empty()) {
    std::fprintf(stderr, "uvwt-server: --cert and --key go together\n");
    return 1;
  }
  return 0;
}

// Echoes one stream's incoming bytes back on its own send side. When the send
// buffer is full the stream is paused, so the peer is held back by flow
// control instead of the server buffering without bound.
class StreamEcho {
 public:
  static void attach(const std::shared_ptr<uvwt::Stream> &st) {
    auto echo = std::make_shared<StreamEcho>();
    echo->stream_ = st;
    st->on_data([echo](std::span<const std::uint8_t> d, bool fin) { echo->on_data(d, fin); });
    st->on_writable([echo] { echo->flush(); });
  }

 private:
  void on_data(std::span<const std::uint8_t> d, bool fin) {
    auto st = stream_.lock();
    if (!st) return;
    if (!d.empty()) {
      if (pending_.empty() && st->writable())
        st->write(uvwt::Bytes(d.begin(), d.end()));
      else
        pending_.emplace_back(d.begin(), d.end());
    }
    fin_seen_ = fin_seen_ || fin;
    if (!pending_.empty() || !st->writable()) {
      if (!st->paused()) st->pause();
    } else if (fin_seen_ && !ended_) {
      ended_ = true;
      st->end();
    }
  }

  void flush() {
    auto st = stream_.lock();
    if (!st) return;
    while (!pending_.empty() && st->writable()) {
      st->write(std::move(pending_.front()));
      pending_.pop_front();
    }
    if (!pending_.empty()) return;
    if (fin_seen_ && !ended_) {
      ended_ = true;
      st->end();
    }
    if (st->paused() && st->writable()) st->resume();
  }

  std::weak_ptr<uvwt::Stream> stream_;
  std::deque<uvwt::Bytes> pending_;
  bool fin_seen_ = false;
  bool ended_ = false;
};

// Collects a whole uni stream, then sends it back on a new server-opened one.
void echo_uni_stream(const std::shared_ptr<uvwt::Session> &session, const std::shared_ptr<uvwt::Stream> &st) {
  constexpr std::size_t kMaxUniEcho = 64u << 20;  // a test server, not a sink for unbounded data
  struct Collected {
    uvwt::Bytes data;
    bool refused = false;
  };
  auto buf = std::make_shared<Collected>();
  std::weak_ptr<uvwt::Session> ws = session;
  std::weak_ptr<uvwt::Stream> wst = st;
  st->on_data([buf, ws, wst](std::span<const std::uint8_t> d, bool fin) {
    if (buf->refused) return;
    if (buf->data.size() + d.size() > kMaxUniEcho) {
      buf->refused = true;
      buf->data = {};
      if (auto s = wst.lock()) s->stop_sending(1);
      return;
    }
    buf->data.insert(buf->data.end(), d.begin(), d.end());
    if (!fin) return;
    auto s = ws.lock();
    if (!s) return;
    s->open_uni_stream(
        [data = std::move(buf->data)](const uvwt::Error &err, std::shared_ptr<uvwt::Stream> out) mutable {
          if (err) {
            std::fprintf(stderr, "uvwt-server: open uni stream: %s\n", err.to_string().c_str());
            return;
          }
          out->write_and_end(std::move(data));
        });
  });
}

void echo_session(const std::shared_ptr<uvwt::Session> &s) {
  std::weak_ptr<uvwt::Session> ws = s;
  s->on_datagram([ws](std::span<const std::uint8_t> d) {
    if (auto s = ws.lock()) (void)s->send_datagram(d);
  });
  s->on_bidi_stream([](std::shared_ptr<uvwt::Stream> st) { StreamEcho::attach(st); });
  s->on_uni_stream([ws](std::shared_ptr<uvwt::Stream> st) {
    if (auto s = ws.lock()) echo_uni_stream(s, st);
  });
}

void push_streams(const std::shared_ptr<uvwt::Session> &s) {
  s->open_bidi_stream([](const uvwt::Error &err, std::shared_ptr<uvwt::Stream> st) {
    if (err) {
      std::fprintf(stderr, "uvwt-server: open bidi stream: %s\n", err.to_string().c_str());
      return;
    }
    st->on_data([](std::span<const std::uint8_t>, bool) {});
    st->write("hello from server");
    st->end();
  });
  s->open_uni_stream([](const uvwt::Error &err, std::shared_ptr<uvwt::Stream> st) {
    if (err) {
      std::fprintf(stderr, "uvwt-server: open uni stream: %s\n", err.to_string().c_str());
      return;
    }
    st->write("uni from server");
    st->end();
  });
}

void discard_session(const std::shared_ptr<uvwt::Session> &s) {
  s->on_datagram([](std::span<const std::uint8_t>) {});
  s->on_bidi_stream([](std::shared_ptr<uvwt::Stream> st) {
    std::weak_ptr<uvwt::Stream> w = st;
    st->on_data([w](std::span<const std::uint8_t>, bool fin) {
      if (auto st = w.lock(); st && fin) st->end();
    });
  });
  s->on_uni_stream([](std::shared_ptr<uvwt::Stream> st) { st->on_data([](std::span<const std::uint8_t>, bool) {}); });
}

// A one-shot timer that frees itself once closed.
void after(uv_loop_t *loop, std::uint64_t ms, std::function<void()> fn) {
  struct Shot {
    uv_timer_t timer;
    std::function<void()> fn;
  };
  auto *shot = new Shot{{}, std::move(fn)};
  uv_timer_init(loop, &shot->timer);
  shot->timer.data = shot;
  uv_timer_start(
      &shot->timer,
      [](uv_timer_t *t) {
        auto *shot = static_cast<Shot *>(t->data);
        shot->fn();
        uv_close(reinterpret_cast<uv_handle_t *>(t), [](uv_handle_t *h) { delete static_cast<Shot *>(h->data); });
      },
      ms, 0);
}

void close_session_later(uv_loop_t *loop, const std::shared_ptr<uvwt::Session> &s) {
  std::weak_ptr<uvwt::Session> ws = s;
  after(loop, 200, [ws] {
    if (auto s = ws.lock(); s && !s->is_closed()) s->close(4242, "bye from server");
  });
}

// The browser tests read these lines: the dialect each session negotiated, and
// its datagram counts when it ends (received here = sent by the peer).
void log_session(const char *route, const uvwt::SessionRequest &req, const std::shared_ptr<uvwt::Session> &s) {
  std::printf("session: %s from %s dialect %s\n", route, req.remote_address.to_string().c_str(),
              s->info().dialect.c_str());
  std::fflush(stdout);
  std::weak_ptr<uvwt::Session> ws = s;
  s->on_closed([route, ws](const uvwt::SessionCloseInfo &) {
    auto s = ws.lock();
    if (!s) return;
    const auto st = s->stats();
    std::printf("session-end: %s datagrams received %llu sent %llu dropped %llu\n", route,
                static_cast<unsigned long long>(st.datagrams_received),
                static_cast<unsigned long long>(st.datagrams_sent),
                static_cast<unsigned long long>(st.datagrams_dropped));
    std::fflush(stdout);
  });
}

// Everything the process owns on the loop besides the server's own handles.
struct App {
  uv_loop_t *loop = nullptr;
  std::shared_ptr<uvwt::Server> server;
  uv_signal_t sigint{}, sigterm{};
  uv_timer_t exit_timer{};
  bool exit_timer_used = false;
  bool shutting_down = false;

  void begin_shutdown(const char *why) {
    if (shutting_down) {
      // A second signal: stop waiting for sessions to wrap up.
      server->close();
      return;
    }
    shutting_down = true;
    std::fprintf(stderr, "uvwt-server: %s, shutting down\n", why);
    if (exit_timer_used) uv_close(reinterpret_cast<uv_handle_t *>(&exit_timer), nullptr);
    // Keep one signal watcher until the server is gone so a second ^C can hurry it.
    uv_close(reinterpret_cast<uv_handle_t *>(&sigterm), nullptr);
    server->shutdown([this] {
      if (!uv_is_closing(reinterpret_cast<uv_handle_t *>(&sigint)))
        uv_close(reinterpret_cast<uv_handle_t *>(&sigint), nullptr);
    });
  }
};

}  // namespace

int main(int argc, char **argv) {
  Options opt;
  if (const int rc = parse_options(argc, argv, opt); rc != 0) return rc < 0 ? 0 : 2;
  std::signal(SIGPIPE, SIG_IGN);

  uv_loop_t loop_storage;
  uv_loop_t *loop = &loop_storage;
  if (uv_loop_init(loop) != 0) return 1;

  uvwt::ServerConfig cfg;
  cfg.qlog_dir = opt.qlog_dir;
  cfg.max_datagrams_per_packet = opt.max_datagrams_per_packet;
  if (opt.cert_file.empty()) {
    uvwt::CertificatePair cert;
    if (auto err = uvwt::generate_self_signed_certificate({"localhost", "127.0.0.1", "::1"}, cert)) {
      std::fprintf(stderr, "uvwt-server: %s\n", err.to_string().c_str());
      return 1;
    }
    cfg.cert_pem = cert.cert_pem;
    cfg.key_pem = cert.key_pem;
    std::printf("cert-sha256: %s\ncert-sha256-b64: %s\n", cert.sha256_hex().c_str(), cert.sha256_base64().c_str());
  } else {
    cfg.certfile = opt.cert_file;
    cfg.keyfile = opt.key_file;
    std::ifstream in(opt.cert_file, std::ios::binary);
    std::stringstream pem;
    pem << in.rdbuf();
    uvwt::CertificatePair info;
    if (auto err = uvwt::certificate_sha256_from_pem(pem.str(), info.sha256)) {
      std::fprintf(stderr, "uvwt-server: %s: %s\n", opt.cert_file.c_str(), err.to_string().c_str());
      return 1;
    }
    std::printf("cert-sha256: %s\ncert-sha256-b64: %s\n", info.sha256_hex().c_str(), info.sha256_base64().c_str());
  }

  uvwt::Error err;
  App app;
  app.loop = loop;
  app.server = uvwt::Server::create(loop, cfg, err);
  if (!app.server) {
    std::fprintf(stderr, "uvwt-server: %s\n", err.to_string().c_str());
    return 1;
  }
  const bool default_hosts = opt.hosts.empty();
  if (default_hosts) opt.hosts = {"127.0.0.1", "::1"};
  int bound = 0;
  for (const auto &h : opt.hosts) {
    std::uint16_t port = opt.port;
    if (opt.port == 0 && app.server->port() != 0) port = app.server->port();
    if (auto e = app.server->listen(h, port)) {
      std::fprintf(stderr, "uvwt-server: %s\n", e.to_string().c_str());
      if (!default_hosts) return 1;  // an address the user asked for must work
      continue;
    }
    ++bound;
  }
  if (bound == 0) return 1;

  uv_loop_t *lp = loop;
  app.server->route("/echo", [](std::shared_ptr<uvwt::Session> s, const uvwt::SessionRequest &req) {
    log_session("/echo", req, s);
    echo_session(s);
  });
  app.server->route("/push", [](std::shared_ptr<uvwt::Session> s, const uvwt::SessionRequest &req) {
    log_session("/push", req, s);
    echo_session(s);
    push_streams(s);
  });
  app.server->route("/close", [lp](std::shared_ptr<uvwt::Session> s, const uvwt::SessionRequest &req) {
    log_session("/close", req, s);
    close_session_later(lp, s);
  });
  app.server->route("/discard", [](std::shared_ptr<uvwt::Session> s, const uvwt::SessionRequest &req) {
    log_session("/discard", req, s);
    discard_session(s);
  });

  uv_signal_init(loop, &app.sigint);
  uv_signal_init(loop, &app.sigterm);
  app.sigint.data = &app;
  app.sigterm.data = &app;
  auto on_signal = [](uv_signal_t *h, int signum) {
    static_cast<App *>(h->data)->begin_shutdown(signum == SIGINT ? "SIGINT" : "SIGTERM");
  };
  uv_signal_start(&app.sigint, on_signal, SIGINT);
  uv_signal_start(&app.sigterm, on_signal, SIGTERM);
  if (opt.exit_after > 0) {
    uv_timer_init(loop, &app.exit_timer);
    app.exit_timer.data = &app;
    app.exit_timer_used = true;
    uv_timer_start(
        &app.exit_timer, [](uv_timer_t *t) { static_cast<App *>(t->data)->begin_shutdown("time is up"); },
        static_cast<std::uint64_t>(opt.exit_after * 1000), 0);
  }

  std::printf("listening: %u\n", app.server->port());
  std::fflush(stdout);

  uv_run(loop, UV_RUN_DEFAULT);
  app.server.reset();
  uv_run(loop, UV_RUN_DEFAULT);  // close callbacks queued by the last releases
  if (const int rc = uv_loop_close(loop); rc != 0) {
    std::fprintf(stderr, "uvwt-server: loop still has open handles:");
    uv_walk(
        loop, [](uv_handle_t *h, void *) { std::fprintf(stderr, " %s", uv_handle_type_name(uv_handle_get_type(h))); },
        nullptr);
    std::fprintf(stderr, "\n");
    return 1;
  }
  std::printf("exited cleanly\n");
  return 0;
}
