#include <uvwt/load_balancer.hpp>

#include <algorithm>

#include "common/log.hpp"

namespace uvwt {

// Healthy means a full QUIC + TLS + HTTP/3 SETTINGS exchange completes: a
// server that only answers ICMP or only the QUIC handshake is not usable.
ConnectionLoadBalancer::HealthChecker ConnectionLoadBalancer::default_health_checker(uv_loop_t *loop,
                                                                                     ClientConfig config) {
  return [loop, config = std::move(config)](const std::string &host, std::uint16_t port, Duration timeout,
                                            std::function<void(bool)> cb) {
    ClientConfig c = config;
    c.connect_timeout = timeout;
    c.handshake_timeout = std::min(c.handshake_timeout, timeout);
    Connection::create_client(
        loop, c, host, port, "", std::nullopt,
        [cb = std::move(cb), host, port](const Error &err, const std::shared_ptr<Connection> &conn) {
          if (err || !conn) {
            UVWT_DEBUG("health probe of %s: %s", Address{host, port}.to_string().c_str(), err.to_string().c_str());
            return cb(false);
          }
          // Report once the probe's socket is gone, so nothing of it outlives the answer.
          conn->close(0, "health check", [cb] { cb(true); });
        });
  };
}

}  // namespace uvwt
