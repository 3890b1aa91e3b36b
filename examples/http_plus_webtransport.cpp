// An existing libuv program -- a small HTTP/1.1 server on uv_tcp_t that serves
// a page and its script -- which adds a WebTransport endpoint on the same loop.
// uvwt owns no thread and no loop of its own: it is one more set of handles on
// the loop the program already runs, so adding it means creating a Server and
// closing it on the way out, like any other handle.
//
//   http_plus_webtransport [--port N]
//
// HTTP on TCP port N (0 picks a free one) and WebTransport on UDP port N (the
// same number: a browser's page at http://localhost:N/ reaches
// https://localhost:N/echo). SIGINT or SIGTERM: both servers shut down and
// every handle closes, so uv_loop_close() succeeds; the exit status says so.
#include <uv.h>

#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <list>
#include <memory>
#include <string>
#include <string_view>

#include <uvwt/uvwt.hpp>

namespace {

constexpr std::string_view kPage = R"(<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>uvwt next to HTTP</title></head>
<body><pre id="log"></pre><script src="/app.js"></script></body></html>
)";

// The script is generated per run: it carries the WebTransport port and the
// SHA-256 of the fresh self-signed certificate (serverCertificateHashes).
std::string make_script(std::uint16_t port, const std::string &hash_b64) {
  return "const WT_URL = 'https://localhost:" + std::to_string(port) +
         "/echo';\n"
         "const CERT_SHA256 = '" +
         hash_b64 +
         "';\n"
         "(async () => {\n"
         "  const log = (m) => { document.getElementById('log').textContent += m + '\\n'; };\n"
         "  const hash = Uint8Array.from(atob(CERT_SHA256), (c) => c.charCodeAt(0));\n"
         "  const wt = new WebTransport(WT_URL, {serverCertificateHashes: [{algorithm: 'sha-256', value: hash}]});\n"
         "  await wt.ready;\n"
         "  const s = await wt.createBidirectionalStream();\n"
         "  const w = s.writable.getWriter();\n"
         "  await w.write(new TextEncoder().encode('hello over WebTransport'));\n"
         "  await w.close();\n"
         "  const {value} = await s.readable.getReader().read();\n"
         "  log('echoed: ' + new TextDecoder().decode(value));\n"
         "})().catch((e) => { document.getElementById('log').textContent += 'error: ' + e + '\\n'; });\n";
}

struct App;

// One HTTP connection. Requests are small GETs: the header block is bounded so
// a client that never sends "\r\n\r\n" cannot grow our memory.
struct HttpConn {
  static constexpr std::size_t kMaxHeader = 8192;
  uv_tcp_t tcp{};
  uv_write_t write_req{};
  std::string in, out;
  App *app = nullptr;
  std::list<HttpConn>::iterator self;
};

struct App {
  uv_loop_t *loop = nullptr;
  uv_tcp_t listener{};
  uv_signal_t sigint{}, sigterm{};
  std::list<HttpConn> conns;  // std::list: handles must not move while libuv holds them
  std::shared_ptr<uvwt::Server> wt;
  std::string script;
  bool stopping = false;
};

void close_conn(HttpConn *c) {
  auto *h = reinterpret_cast<uv_handle_t *>(&c->tcp);
  if (uv_is_closing(h)) return;
  uv_close(h, [](uv_handle_t *h) {
    auto *c = static_cast<HttpConn *>(h->data);
    c->app->conns.erase(c->self);
  });
}

void respond(HttpConn *c, int status, std::string_view type, std::string_view body) {
  const char *text = status == 200 ? "OK" : status == 404 ? "Not Found" : "Request Header Fields Too Large";
  c->out = "HTTP/1.1 " + std::to_string(status) + " " + text + "\r\ncontent-type: " + std::string(type) +
           "\r\ncontent-length: " + std::to_string(body.size()) + "\r\nconnection: close\r\n\r\n" + std::string(body);
  uv_read_stop(reinterpret_cast<uv_stream_t *>(&c->tcp));
  uv_buf_t buf = uv_buf_init(c->out.data(), static_cast<unsigned>(c->out.size()));
  c->write_req.data = c;
  // One request per connection (connection: close) keeps the example short.
  if (uv_write(&c->write_req, reinterpret_cast<uv_stream_t *>(&c->tcp), &buf, 1,
               [](uv_write_t *req, int) { close_conn(static_cast<HttpConn *>(req->data)); }) != 0)
    close_conn(c);
}

void handle_request(HttpConn *c) {
  const auto sp1 = c->in.find(' ');
  const auto sp2 = c->in.find(' ', sp1 + 1);
  const std::string path =
      sp1 == std::string::npos || sp2 == std::string::npos ? "" : c->in.substr(sp1 + 1, sp2 - sp1 - 1);
  std::printf("http: GET %s\n", path.c_str());
  if (path == "/" || path == "/index.html") return respond(c, 200, "text/html", kPage);
  if (path == "/app.js") return respond(c, 200, "text/javascript", c->app->script);
  respond(c, 404, "text/plain", "not found\n");
}

void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf) {
  auto *c = static_cast<HttpConn *>(s->data);
  if (n > 0) c->in.append(buf->base, static_cast<std::size_t>(n));
  delete[] buf->base;
  if (n < 0) return close_conn(c);
  if (c->in.find("\r\n\r\n") != std::string::npos) return handle_request(c);
  if (c->in.size() > HttpConn::kMaxHeader) respond(c, 431, "text/plain", "header too large\n");
}

void on_http_connection(uv_stream_t *server, int status) {
  auto *app = static_cast<App *>(server->data);
  if (status < 0 || app->stopping) return;
  HttpConn &c = app->conns.emplace_back();
  c.app = app;
  c.self = std::prev(app->conns.end());
  c.tcp.data = &c;
  uv_tcp_init(app->loop, &c.tcp);
  if (uv_accept(server, reinterpret_cast<uv_stream_t *>(&c.tcp)) != 0) return close_conn(&c);
  uv_read_start(
      reinterpret_cast<uv_stream_t *>(&c.tcp),
      [](uv_handle_t *, std::size_t size, uv_buf_t *buf) { *buf = uv_buf_init(new char[size], unsigned(size)); },
      on_read);
}

// The program's shutdown path, extended by one line for uvwt: the WebTransport
// server's graceful shutdown (GOAWAY, drain, close) runs next to the TCP close.
void stop(App *app, const char *why) {
  if (app->stopping) return;
  app->stopping = true;
  std::printf("%s: shutting down\n", why);
  uv_close(reinterpret_cast<uv_handle_t *>(&app->listener), nullptr);
  for (auto &c : app->conns) close_conn(&c);
  uv_close(reinterpret_cast<uv_handle_t *>(&app->sigint), nullptr);
  uv_close(reinterpret_cast<uv_handle_t *>(&app->sigterm), nullptr);
  app->wt->shutdown(uvwt::Duration{2000}, [] { std::printf("webtransport: closed\n"); });
}

// uvwt's side: an echo route, as any WebTransport application would add.
void add_echo_route(uvwt::Server &server) {
  server.route("/echo", [](std::shared_ptr<uvwt::Session> s, const uvwt::SessionRequest &req) {
    std::printf("webtransport: session from %s\n", req.remote_address.to_string().c_str());
    // Callbacks get their session / stream: nothing to capture.
    s->on_datagram([](uvwt::Session &session, std::span<const std::uint8_t> d) {
      (void)session.send_datagram(d);  // a full queue drops the echo: datagrams are unreliable
    });
    s->on_bidi_stream([](uvwt::Session &, std::shared_ptr<uvwt::Stream> st) {
      st->on_data([](uvwt::Stream &stream, std::span<const std::uint8_t> d, bool fin) {
        if (!d.empty()) stream.write(uvwt::Bytes(d.begin(), d.end()));
        if (fin) stream.end();
      });
    });
  });
}

bool start_webtransport(App &app, std::uint16_t port) {
  uvwt::CertificatePair cert;
  uvwt::Error err = uvwt::generate_self_signed_certificate({"localhost", "127.0.0.1"}, cert);
  uvwt::ServerConfig cfg;
  cfg.cert_pem = cert.cert_pem;
  cfg.key_pem = cert.key_pem;
  if (!err) app.wt = uvwt::Server::create(app.loop, cfg, err);
  // "localhost": 127.0.0.1 and ::1 (browsers may try ::1 first).
  if (!err) err = app.wt->listen("localhost", port);
  if (err) {
    std::fprintf(stderr, "webtransport: %s\n", err.to_string().c_str());
    return false;
  }
  add_echo_route(*app.wt);
  app.script = make_script(port, cert.sha256_base64());
  std::printf("webtransport: https://localhost:%u/echo cert-sha256 %s\n", port, cert.sha256_hex().c_str());
  return true;
}

bool start_http(App &app, std::uint16_t &port) {
  sockaddr_in addr{};
  uv_ip4_addr("127.0.0.1", port, &addr);
  uv_tcp_init(app.loop, &app.listener);
  app.listener.data = &app;
  int rc = uv_tcp_bind(&app.listener, reinterpret_cast<const sockaddr *>(&addr), 0);
  if (rc == 0) rc = uv_listen(reinterpret_cast<uv_stream_t *>(&app.listener), 64, on_http_connection);
  if (rc != 0) {
    std::fprintf(stderr, "http: %s\n", uv_strerror(rc));
    return false;
  }
  int len = sizeof addr;
  uv_tcp_getsockname(&app.listener, reinterpret_cast<sockaddr *>(&addr), &len);
  port = ntohs(addr.sin_port);
  std::printf("http: http://localhost:%u/\n", port);
  return true;
}

}  // namespace

int main(int argc, char **argv) {
  std::uint16_t port = 8080;
  if (argc == 3 && std::strcmp(argv[1], "--port") == 0) port = static_cast<std::uint16_t>(std::atoi(argv[2]));
  std::setvbuf(stdout, nullptr, _IOLBF, 0);
  std::signal(SIGPIPE, SIG_IGN);

  uv_loop_t loop;
  uv_loop_init(&loop);
  App app;
  app.loop = &loop;
  const bool started = start_http(app, port) && start_webtransport(app, port);

  uv_signal_init(&loop, &app.sigint);
  uv_signal_init(&loop, &app.sigterm);
  app.sigint.data = app.sigterm.data = &app;
  uv_signal_start(
      &app.sigint, [](uv_signal_t *h, int) { stop(static_cast<App *>(h->data), "SIGINT"); }, SIGINT);
  uv_signal_start(
      &app.sigterm, [](uv_signal_t *h, int) { stop(static_cast<App *>(h->data), "SIGTERM"); }, SIGTERM);
  if (!started) {
    // Startup failed half way: close what was opened, so the loop still ends clean.
    app.stopping = true;
    uv_close(reinterpret_cast<uv_handle_t *>(&app.listener), nullptr);
    uv_close(reinterpret_cast<uv_handle_t *>(&app.sigint), nullptr);
    uv_close(reinterpret_cast<uv_handle_t *>(&app.sigterm), nullptr);
    if (app.wt) app.wt->close();
  }

  uv_run(&loop, UV_RUN_DEFAULT);
  app.wt.reset();  // the last reference: its handles close on the next run
  uv_run(&loop, UV_RUN_DEFAULT);
  const int rc = uv_loop_close(&loop);
  std::printf("uv_loop_close: %s\n", rc == 0 ? "0 (every handle closed)" : uv_strerror(rc));
  return started && rc == 0 ? 0 : 1;
}
