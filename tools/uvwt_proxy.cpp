// uvwt-proxy: a MASQUE CONNECT-UDP proxy (RFC 9298) on HTTP/3. Clients with
// ClientConfig::proxy (or any RFC 9298 client) tunnel their QUIC through it.
// docs/proxy.md describes the options.

#include <uvwt/uvwt.hpp>

#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

namespace {

struct Options {
  std::string host = "127.0.0.1";
  std::uint16_t port = 4433;
  std::string cert_file, key_file;
  uvwt::UdpProxyConfig proxy;
  std::string authorization;
};

void usage() {
  std::puts(
      "usage: uvwt-proxy [options]\n"
      "  --host H              address to listen on (default 127.0.0.1)\n"
      "  --port P              UDP port (default 4433; 0 picks one)\n"
      "  --cert F --key F      PEM certificate and key (default: self-signed, printed)\n"
      "  --template T          URI template (default /.well-known/masque/udp/{target_host}/{target_port}/)\n"
      "  --allow-host H        allow this target name (repeat; *.example.com for a domain; default any)\n"
      "  --allow-port P        allow this target port (repeat; default any)\n"
      "  --allow-private       allow loopback/private/link-local targets (testing only)\n"
      "  --auth VALUE          require proxy-authorization: VALUE (else 407)\n"
      "  --max-tunnels-per-connection N   (default 16)\n"
      "  --max-tunnels N                  (default 10000)\n"
      "  --max-bytes-per-connection N     (default 0: no limit)\n"
      "  --idle-timeout MS                tunnel idle timeout (default 30000)");
}

int parse(int argc, char **argv, Options &o) {
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto next = [&]() -> const char * { return i + 1 < argc ? argv[++i] : nullptr; };
    const char *v = nullptr;
    if (a == "-h" || a == "--help") {
      usage();
      return -1;
    }
    if (a == "--allow-private") {
      o.proxy.policy.allow_private_targets = true;
      continue;
    }
    if ((v = next()) == nullptr) {
      std::fprintf(stderr, "uvwt-proxy: %s needs a value\n", a.c_str());
      return 2;
    }
    if (a == "--host")
      o.host = v;
    else if (a == "--port")
      o.port = static_cast<std::uint16_t>(std::atoi(v));
    else if (a == "--cert")
      o.cert_file = v;
    else if (a == "--key")
      o.key_file = v;
    else if (a == "--template")
      o.proxy.uri_template = v;
    else if (a == "--allow-host")
      o.proxy.policy.allowed_hosts.emplace_back(v);
    else if (a == "--allow-port")
      o.proxy.policy.allowed_ports.push_back(static_cast<std::uint16_t>(std::atoi(v)));
    else if (a == "--auth")
      o.authorization = v;
    else if (a == "--max-tunnels-per-connection")
      o.proxy.max_tunnels_per_connection = std::strtoull(v, nullptr, 10);
    else if (a == "--max-tunnels")
      o.proxy.max_tunnels = std::strtoull(v, nullptr, 10);
    else if (a == "--max-bytes-per-connection")
      o.proxy.max_bytes_per_connection = std::strtoull(v, nullptr, 10);
    else if (a == "--idle-timeout")
      o.proxy.tunnel_idle_timeout = uvwt::Duration(std::atoll(v));
    else {
      std::fprintf(stderr, "uvwt-proxy: unknown option %s\n", a.c_str());
      usage();
      return 2;
    }
  }
  return 0;
}

uv_signal_t sigint;

}  // namespace

int main(int argc, char **argv) {
  Options opt;
  if (const int rc = parse(argc, argv, opt); rc != 0) return rc < 0 ? 0 : rc;
  std::signal(SIGPIPE, SIG_IGN);
  uv_loop_t loop;
  if (uv_loop_init(&loop) != 0) return 1;

  uvwt::ServerConfig cfg;
  cfg.assume_full_mtu = true;  // tunnelled packets need full-size datagrams at once
  if (opt.cert_file.empty()) {
    uvwt::CertificatePair cert;
    if (auto err = uvwt::generate_self_signed_certificate({"localhost", "127.0.0.1", "::1"}, cert)) {
      std::fprintf(stderr, "uvwt-proxy: %s\n", err.to_string().c_str());
      return 1;
    }
    cfg.cert_pem = cert.cert_pem;
    cfg.key_pem = cert.key_pem;
    std::printf("cert-sha256: %s\n", cert.sha256_hex().c_str());
  } else {
    cfg.certfile = opt.cert_file;
    cfg.keyfile = opt.key_file;
  }
  if (!opt.authorization.empty()) opt.proxy.authenticate = uvwt::require_proxy_authorization(opt.authorization);

  uvwt::Error err;
  auto server = uvwt::Server::create(&loop, cfg, err);
  if (!server) {
    std::fprintf(stderr, "uvwt-proxy: %s\n", err.to_string().c_str());
    return 1;
  }
  if ((err = server->listen(opt.host, opt.port))) {
    std::fprintf(stderr, "uvwt-proxy: listen: %s\n", err.to_string().c_str());
    return 1;
  }
  auto proxy = uvwt::UdpProxy::create(server, opt.proxy, err);
  if (!proxy) {
    std::fprintf(stderr, "uvwt-proxy: %s\n", err.to_string().c_str());
    return 1;
  }
  std::printf("listening: %s:%u\ntemplate: %s\n", opt.host.c_str(), server->port(), opt.proxy.uri_template.c_str());
  std::fflush(stdout);

  uv_signal_init(&loop, &sigint);
  sigint.data = &server;
  uv_signal_start(
      &sigint,
      [](uv_signal_t *s, int) {
        auto &srv = *static_cast<std::shared_ptr<uvwt::Server> *>(s->data);
        uv_signal_stop(s);
        uv_close(reinterpret_cast<uv_handle_t *>(s), nullptr);
        srv->close();
      },
      SIGINT);
  uv_run(&loop, UV_RUN_DEFAULT);
  const auto st = proxy->stats();
  std::printf("tunnels opened %llu refused %llu, to targets %llu bytes, from targets %llu bytes\n",
              static_cast<unsigned long long>(st.tunnels_opened), static_cast<unsigned long long>(st.tunnels_refused),
              static_cast<unsigned long long>(st.bytes_to_targets),
              static_cast<unsigned long long>(st.bytes_from_targets));
  proxy.reset();
  server.reset();
  uv_run(&loop, UV_RUN_DEFAULT);
  return uv_loop_close(&loop) == 0 ? 0 : 1;
}
