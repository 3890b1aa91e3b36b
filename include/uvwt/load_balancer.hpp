#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <uv.h>

#include <uvwt/export.hpp>
#include <uvwt/config.hpp>
#include <uvwt/connection.hpp>
#include <uvwt/error.hpp>
#include <uvwt/types.hpp>

namespace uvwt {

// pywebtransport's get_load_balancer_stats().
struct UVWT_EXPORT LoadBalancerStats {
  std::size_t total_targets = 0;
  std::size_t failed_targets = 0;
  // Cached connections, whatever their state, as the reference counts them: a
  // connection that closed stays cached until its target is chosen again.
  std::size_t active_connections = 0;
  std::size_t available_targets = 0;      // total_targets - failed_targets
  std::size_t connected_connections = 0;  // of active_connections, those still connected
};

// One entry of pywebtransport's get_target_stats().
struct UVWT_EXPORT TargetStats {
  std::string host;
  std::uint16_t port = 0;
  double weight = 1.0;
  // Seconds: the smoothed RTT of the live cached connection, else the last
  // one measured, else the duration of the last successful connect; nullopt
  // while never connected and after a health check restored the target.
  std::optional<double> latency;
  bool failed = false;
  bool connected = false;  // a cached connection to it is connected
};

struct UVWT_EXPORT LoadBalancerOptions {
  Duration health_check_interval{30'000};  // between probes of failed targets
  Duration health_check_timeout{5'000};    // per probe
  // Seed of the `weighted` strategy's random choice; nullopt: std::random_device.
  std::optional<std::uint64_t> seed;
  // Configuration the default health checker connects with (certificate pins,
  // trust). nullopt: the one last passed to get_connection().
  std::optional<ClientConfig> health_check_config;
};

// Spreads client connections over a fixed list of servers, keeps one
// connection per target for reuse, fails over to the next target when a
// connection attempt fails and probes failed targets until they answer again.
// All callbacks run on the loop, never from inside the call that started them.
class UVWT_EXPORT ConnectionLoadBalancer {
 public:
  // Creates a connection; the default is Connection::create_client without a proxy.
  using ConnectionFactory =
      std::function<void(uv_loop_t *loop, const ClientConfig &config, const std::string &host, std::uint16_t port,
                         const std::string &path, Connection::ConnectCallback cb)>;
  // Reports whether a target answers within `timeout`.
  using HealthChecker =
      std::function<void(const std::string &host, std::uint16_t port, Duration timeout, std::function<void(bool)> cb)>;

  // Targets are (host, port); duplicates are dropped, order is kept; IPv6
  // literals may be given with or without brackets. Empty factory or checker:
  // the defaults below. nullptr and Errc::configuration for no target, a
  // target with an empty host or port 0, or a health check interval or
  // timeout that is not positive (the reference raises at construction too).
  static std::unique_ptr<ConnectionLoadBalancer> create(uv_loop_t *loop, const std::vector<Address> &targets,
                                                        Error &err, ConnectionFactory factory = {},
                                                        HealthChecker health_checker = {},
                                                        LoadBalancerOptions options = {});
  // Shuts down (without waiting) if shutdown() was not called.
  ~ConnectionLoadBalancer();
  ConnectionLoadBalancer(const ConnectionLoadBalancer &) = delete;
  ConnectionLoadBalancer &operator=(const ConnectionLoadBalancer &) = delete;

  static ConnectionFactory default_connection_factory();
  // A real QUIC + TLS + HTTP/3 handshake (no session) with connect timeout =
  // the probe timeout, closed right after; healthy when it completes.
  static HealthChecker default_health_checker(uv_loop_t *loop, ClientConfig config);

  // Returns a connection to a target chosen by `strategy`: "round_robin"
  // (starting with the first target), "weighted" or "least_latency". A live cached connection to the target is
  // reused (whatever `path` it was created with); concurrent callers choosing
  // the same target share one connection attempt. A failed attempt marks the
  // target failed and the next available target is tried.
  // Errors: Errc::configuration (unknown strategy), Errc::connection (no
  // available target; the message carries the last attempt's error),
  // Errc::closed (after shutdown).
  void get_connection(const ClientConfig &config, const std::string &path, const std::string &strategy,
                      Connection::ConnectCallback cb);
  // The reference's defaults: path "/", strategy "round_robin".
  void get_connection(const ClientConfig &config, Connection::ConnectCallback cb) {
    get_connection(config, "/", "round_robin", std::move(cb));
  }
  void get_connection(const ClientConfig &config, const std::string &path, Connection::ConnectCallback cb) {
    get_connection(config, path, "round_robin", std::move(cb));
  }

  // Errc::configuration for an unknown target or a negative / non-finite weight.
  Error update_target_weight(const std::string &host, std::uint16_t port, double weight);

  [[nodiscard]] LoadBalancerStats get_load_balancer_stats() const;
  [[nodiscard]] std::vector<TargetStats> get_target_stats() const;

  // Closes every cached connection; cb once all of them are closed.
  void close_all_connections(CloseCallback cb = {});
  // Stops health checks, closes every connection, and calls cb once nothing
  // of the balancer is left on the loop (running attempts and probes included).
  void shutdown(CloseCallback cb = {});

  class UVWT_NO_EXPORT Impl;

 private:
  ConnectionLoadBalancer(uv_loop_t *loop, const std::vector<Address> &targets, ConnectionFactory factory,
                         HealthChecker health_checker, LoadBalancerOptions options);
  std::shared_ptr<Impl> impl_;
};

}  // namespace uvwt
