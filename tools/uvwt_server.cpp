// uvwt-server: a WebTransport test server for browsers, the demo and benchmarks.
//
//   /echo     bidi streams echoed as data arrives (FIN included); each uni
//             stream echoed as it arrives on a new server-opened uni stream;
//             datagrams echoed. Reading pauses while the echo cannot be sent.
//   /push     opens a bidi stream ("hello from server", FIN) and a uni stream
//             ("uni from server"), then echoes like /echo
//   /close    closes the session after 200 ms with 4242 "bye from server"
//   /discard  reads and drops everything
//
// Prints `cert-sha256: HEX`, `cert-sha256-b64: B64` and then `listening: PORT`
// on stdout, then `session: ROUTE from ADDR dialect NAME` per accepted session
// and `session-end: ROUTE datagrams ...` when it ends (tests parse these lines).
#include <uv.h>

#include <algorithm>
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
  double exit_after = 0;      // seconds; 0 = run until a signal
  uvwt::ServerConfig limits;  // only the limit fields are read from here
  std::size_t max_datagrams_per_packet = uvwt::TransportConfig{}.max_datagrams_per_packet;
  std::size_t max_datagrams_in_flight = uvwt::TransportConfig{}.max_datagrams_in_flight;
  uvwt::QuicLbConfig quic_lb;  // docs/scaling.md
  uvwt::Bytes reset_secret;
};

// "0a1b..." -> bytes; false on odd length or a non-hex digit.
bool parse_hex(const std::string &s, uvwt::Bytes &out) {
  if (s.size() % 2 != 0) return false;
  out.clear();
  for (std::size_t i = 0; i < s.size(); i += 2) {
    char *end = nullptr;
    const std::string pair = s.substr(i, 2);
    const unsigned long v = std::strtoul(pair.c_str(), &end, 16);
    if (*end != '\0') return false;
    out.push_back(static_cast<std::uint8_t>(v));
  }
  return true;
}

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
               "limits (docs/security.md):\n"
               "  --retry             address validation: a Retry before every connection\n"
               "  --max-unvalidated N handshakes in progress before Initials need a Retry token (128)\n"
               "  --max-half-open N   handshakes in progress, validated or not (1024)\n"
               "  --max-per-address N handshakes in progress per source IP address (64)\n"
               "  --handshake-timeout MS  a handshake not done by then is dropped (10000)\n"
               "  --stateless-rate N  stateless resets, Version Negotiation and refusals per second (1000)\n"
               "  --pending-session-timeout MS  early streams/datagrams wait this long for their session (3000)\n"
               "  --max-connections N (10000)\n"
               "  --max-datagrams-per-packet N\n"
               "                      datagrams packed into one QUIC packet at most (default %zu)\n"
               "  --max-datagrams-in-flight N\n"
               "                      datagrams sent and not yet acknowledged at most, 0: any (default %zu)\n"
               "scaling out (docs/scaling.md):\n"
               "  --server-id HEX     QUIC-LB server id carried by every connection id\n"
               "  --lb-config-id N    QUIC-LB config rotation codepoint 0..6 (0)\n"
               "  --lb-nonce-len N    QUIC-LB nonce length 4..18 (8)\n"
               "  --lb-key HEX        16-byte AES key: single-pass encrypted ids\n"
               "  --reset-secret HEX  stateless reset / Retry key shared with the other servers\n"
               "routes: /echo /push /close /discard\n",
               uvwt::TransportConfig{}.max_datagrams_per_packet, uvwt::TransportConfig{}.max_datagrams_in_flight);
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

// A positive decimal number for one of the limit options.
bool set_limit(uvwt::ServerConfig &c, const std::string &name, const std::string &v) {
  char *end = nullptr;
  const unsigned long long n = std::strtoull(v.c_str(), &end, 10);
  if (v.empty() || *end != '\0' || n == 0 || n > (1ull << 32)) {
    std::fprintf(stderr, "uvwt-server: bad %s %s (a positive number)\n", name.c_str(), v.c_str());
    return false;
  }
  if (name == "--max-unvalidated") c.max_unvalidated_handshakes = n;
  if (name == "--max-half-open") c.max_handshakes = n;
  if (name == "--max-per-address") c.max_handshakes_per_address = n;
  if (name == "--handshake-timeout") c.handshake_timeout = uvwt::Duration(static_cast<std::int64_t>(n));
  if (name == "--stateless-rate") {
    c.stateless_answers_per_second = static_cast<std::uint32_t>(n);
    c.stateless_answer_burst = static_cast<std::uint32_t>(std::max<unsigned long long>(1, n / 10));
  }
  if (name == "--pending-session-timeout") c.pending_session_timeout = uvwt::Duration(static_cast<std::int64_t>(n));
  if (name == "--max-connections") c.max_connections = n;
  return true;
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
    // A non-negative decimal count.
    auto count_value = [&](std::size_t &out) {
      if (!value(v)) return false;
      char *end = nullptr;
      out = std::strtoul(v.c_str(), &end, 10);
      if (*end == '\0' && !v.empty()) return true;
      std::fprintf(stderr, "uvwt-server: bad %s %s\n", a.c_str(), v.c_str());
      return false;
    };
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
    } else if (a == "--server-id" || a == "--lb-key" || a == "--reset-secret") {
      if (!value(v)) return 1;
      uvwt::Bytes &dst = a == "--server-id" ? o.quic_lb.server_id : a == "--lb-key" ? o.quic_lb.key : o.reset_secret;
      if (!parse_hex(v, dst)) {
        std::fprintf(stderr, "uvwt-server: bad %s %s (hex bytes)\n", a.c_str(), v.c_str());
        return 1;
      }
    } else if (a == "--lb-config-id" || a == "--lb-nonce-len") {
      if (!value(v)) return 1;
      char *end = nullptr;
      const unsigned long n = std::strtoul(v.c_str(), &end, 10);
      if (v.empty() || *end != '\0' || n > 255) {
        std::fprintf(stderr, "uvwt-server: bad %s %s\n", a.c_str(), v.c_str());
        return 1;
      }
      if (a == "--lb-config-id")
        o.quic_lb.config_id = static_cast<std::uint8_t>(n);
      else
        o.quic_lb.nonce_len = n;
    } else if (a == "--retry") {
      o.limits.validate_address = true;
    } else if (a == "--max-unvalidated" || a == "--max-half-open" || a == "--max-per-address" ||
               a == "--handshake-timeout" || a == "--stateless-rate" || a == "--pending-session-timeout" ||
               a == "--max-connections") {
      if (!value(v)) return 1;
      if (!set_limit(o.limits, a, v)) return 1;
    } else if (a == "--exit-after") {
      if (!value(v)) return 1;
      char *end = nullptr;
      o.exit_after = std::strtod(v.c_str(), &end);
      if (*end != '\0' || o.exit_after < 0) {
        std::fprintf(stderr, "uvwt-server: bad --exit-after %s\n", v.c_str());
        return 1;
      }
    } else if (a == "--max-datagrams-per-packet") {
      if (!count_value(o.max_datagrams_per_packet)) return 1;
    } else if (a == "--max-datagrams-in-flight") {
      if (!count_value(o.max_datagrams_in_flight)) return 1;
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

// Echoes one stream's incoming bytes on a send side: its own (bidi) or a
// server-opened uni stream (uni). Bytes are written as they are read; while
// the send side is full, or not open yet, the reader is paused, so the peer
// is held back by flow control and no more than the stream's receive window
// ever waits here (no whole-stream buffering).
class StreamEcho : public std::enable_shared_from_this<StreamEcho> {
 public:
  static void attach(const std::shared_ptr<uvwt::Stream> &st) { make(st)->set_out(st); }

  static void attach_uni(const std::shared_ptr<uvwt::Session> &session, const std::shared_ptr<uvwt::Stream> &st) {
    auto echo = make(st);
    session->open_uni_stream([echo](const uvwt::Error &err, std::shared_ptr<uvwt::Stream> out) {
      if (err) {
        std::fprintf(stderr, "uvwt-server: open uni stream: %s\n", err.to_string().c_str());
        if (auto in = echo->in_.lock()) in->stop_sending(1);
        return;
      }
      echo->set_out(out);
    });
  }

 private:
  static std::shared_ptr<StreamEcho> make(const std::shared_ptr<uvwt::Stream> &in) {
    auto echo = std::make_shared<StreamEcho>();
    echo->in_ = in;
    // A paused receive-only stream whose FIN has arrived is done as far as
    // QUIC goes and may be let go by its session: held here until its data
    // (FIN included) has been read or it failed.
    echo->in_hold_ = in;
    in->on_data([echo](std::span<const std::uint8_t> d, bool fin) { echo->on_data(d, fin); });
    std::weak_ptr<StreamEcho> weak = echo;
    in->on_error([weak](const uvwt::Error &) {
      if (auto e = weak.lock()) e->in_hold_.reset();
    });
    return echo;
  }

  void set_out(const std::shared_ptr<uvwt::Stream> &out) {
    out_ = out;
    out->on_writable([self = shared_from_this()] { self->flush(); });
    flush();
  }
  void on_data(std::span<const std::uint8_t> d, bool fin) {
    auto out = out_.lock();
    if (!d.empty()) {
      if (out && pending_.empty() && out->writable())
        out->write(uvwt::Bytes(d.begin(), d.end()));
      else
        pending_.emplace_back(d.begin(), d.end());
    }
    fin_seen_ = fin_seen_ || fin;
    if (fin) in_hold_.reset();  // nothing more to read
    if (!out || !pending_.empty() || !out->writable()) {
      if (auto in = in_.lock(); in && !in->paused()) in->pause();
    } else if (fin_seen_ && !ended_) {
      ended_ = true;
      out->end();
    }
  }

  void flush() {
    auto out = out_.lock();
    if (!out) return;
    while (!pending_.empty() && out->writable()) {
      out->write(std::move(pending_.front()));
      pending_.pop_front();
    }
    if (!pending_.empty()) return;
    if (fin_seen_ && !ended_) {
      ended_ = true;
      out->end();
    }
    if (auto in = in_.lock(); in && in->paused() && out->writable()) in->resume();
  }

  std::weak_ptr<uvwt::Stream> in_, out_;
  std::shared_ptr<uvwt::Stream> in_hold_;
  std::deque<uvwt::Bytes> pending_;
  bool fin_seen_ = false;
  bool ended_ = false;
};

void echo_session(const std::shared_ptr<uvwt::Session> &s) {
  std::weak_ptr<uvwt::Session> ws = s;
  s->on_datagram([ws](std::span<const std::uint8_t> d) {
    if (auto s = ws.lock()) (void)s->send_datagram(d);
  });
  s->on_bidi_stream([](std::shared_ptr<uvwt::Stream> st) { StreamEcho::attach(st); });
  s->on_uni_stream([ws](std::shared_ptr<uvwt::Stream> st) {
    if (auto s = ws.lock()) StreamEcho::attach_uni(s, st);
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

// One line at exit, for the hardening measurements (docs/security.md).
void print_stats(const uvwt::ServerStats &s) {
  std::printf(
      "stats: accepted %llu rejected %llu retries %llu handshakes_refused %llu invalid_tokens %llu resets %llu "
      "version_negotiations %llu stateless_limited %llu sessions %llu\n",
      static_cast<unsigned long long>(s.connections_accepted), static_cast<unsigned long long>(s.connections_rejected),
      static_cast<unsigned long long>(s.retries_sent), static_cast<unsigned long long>(s.handshakes_refused),
      static_cast<unsigned long long>(s.invalid_retry_tokens), static_cast<unsigned long long>(s.stateless_resets_sent),
      static_cast<unsigned long long>(s.version_negotiations_sent),
      static_cast<unsigned long long>(s.stateless_answers_limited),
      static_cast<unsigned long long>(s.sessions_accepted));
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
  cfg.validate_address = opt.limits.validate_address;
  cfg.max_unvalidated_handshakes = std::min(opt.limits.max_unvalidated_handshakes, opt.limits.max_handshakes);
  cfg.max_handshakes = opt.limits.max_handshakes;
  cfg.max_handshakes_per_address = opt.limits.max_handshakes_per_address;
  cfg.handshake_timeout = opt.limits.handshake_timeout;
  cfg.stateless_answers_per_second = opt.limits.stateless_answers_per_second;
  cfg.stateless_answer_burst = opt.limits.stateless_answer_burst;
  cfg.pending_session_timeout = opt.limits.pending_session_timeout;
  cfg.max_connections = opt.limits.max_connections;
  cfg.max_datagrams_per_packet = opt.max_datagrams_per_packet;
  cfg.max_datagrams_in_flight = opt.max_datagrams_in_flight;
  cfg.quic_lb = opt.quic_lb;
  cfg.stateless_reset_secret = opt.reset_secret;
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
  print_stats(app.server->stats());
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
