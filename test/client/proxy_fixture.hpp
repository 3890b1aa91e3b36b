#pragma once

// Loopback MASQUE setup for the proxy tests: a WebTransport echo server, a
// uvwt CONNECT-UDP proxy (private targets allowed: everything is loopback)
// and client configs that go through it.

#include <uvwt/udp_proxy.hpp>

#include <numeric>

#include "client/client_fixture.hpp"

namespace uvwt::test {

struct ProxyRig {
  std::shared_ptr<Server> target;  // echo server
  std::shared_ptr<Server> proxy_server;
  std::shared_ptr<UdpProxy> proxy;
};

inline UdpProxyConfig loopback_proxy_config() {
  UdpProxyConfig c;
  c.policy.allow_private_targets = true;
  return c;
}

inline ServerConfig proxy_server_config() {
  ServerConfig c = server_config();
  c.assume_full_mtu = true;
  return c;
}

inline ProxyRig start_proxy_rig(TestLoop &tl, const UdpProxyConfig &pcfg = loopback_proxy_config(),
                                const ServerConfig &target_cfg = server_config(),
                                const ServerConfig &proxy_cfg = proxy_server_config()) {
  ProxyRig r;
  r.target = start_server(tl, target_cfg);
  r.target->set_default_handler(echo_handler());
  r.proxy_server = start_server(tl, proxy_cfg);
  Error err;
  r.proxy = UdpProxy::create(r.proxy_server, pcfg, err);
  REQUIRE(err.ok());
  REQUIRE(r.proxy);
  return r;
}

inline ClientConfig proxied_client_config(std::uint16_t proxy_port, const std::string &path = "") {
  ClientConfig c = client_config();
  c.proxy.url = "https://127.0.0.1:" + std::to_string(proxy_port) + path;
  c.proxy.server_certificate_hashes = {test_certificate().sha256};
  c.proxy.connect_timeout = std::chrono::milliseconds(5'000);
  return c;
}

inline void close_rig(TestLoop &tl, ProxyRig &r) {
  if (r.proxy) r.proxy->close_tunnels();
  close_server(tl, r.proxy_server);
  close_server(tl, r.target);
  r.proxy.reset();
}

inline std::uint64_t checksum(std::span<const std::uint8_t> b) {
  std::uint64_t h = 1469598103934665603ull;
  for (const auto v : b) h = (h ^ v) * 1099511628211ull;
  return h;
}

// Writes `data` on a new bidi stream with FIN and collects the echo.
struct EchoResult {
  Bytes got;
  bool done = false;
  Error err;
};
inline std::shared_ptr<EchoResult> echo_over_bidi(const std::shared_ptr<Session> &s, Bytes data) {
  auto r = std::make_shared<EchoResult>();
  s->open_bidi_stream([r, data = std::move(data)](const Error &e, std::shared_ptr<Stream> st) mutable {
    if (e || !st) {
      r->err = e;
      r->done = true;
      return;
    }
    st->on_data([r](std::span<const std::uint8_t> d, bool fin) {
      r->got.insert(r->got.end(), d.begin(), d.end());
      if (fin) r->done = true;
    });
    st->write_and_end(std::move(data));
  });
  return r;
}

}  // namespace uvwt::test
