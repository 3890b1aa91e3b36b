#pragma once

#include <uv.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <set>
#include <vector>

#include <uvwt/client.hpp>

#include "client/connection_pool.hpp"
#include "common/deferred.hpp"
#include "connection/proxy_tunnel.hpp"

namespace uvwt::detail {

class ConnectionImpl;
class TlsClientContext;
struct ConnectOp;

// Stops a connect started by connect_cancellable(); its callback then gets
// Errc::cancelled (unless it has already run).
using CancelConnect = std::function<void()>;

// The queue for an object built on `client` (Browser, ReconnectingClient, a
// cancellable connect): the client's own when it is ours, so that their
// callbacks keep their order with its; a new one for another Client.
std::shared_ptr<Deferred> queue_of(const std::shared_ptr<Client> &client);

class ClientImpl final : public Client, public std::enable_shared_from_this<ClientImpl> {
 public:
  ClientImpl(uv_loop_t *loop, const ClientConfig &config, std::shared_ptr<TlsClientContext> tls);
  ~ClientImpl() override;

  [[nodiscard]] uv_loop_t *loop() const noexcept override { return loop_; }
  [[nodiscard]] const ClientConfig &config() const noexcept override { return config_; }
  [[nodiscard]] bool is_closed() const noexcept override { return closed_; }
  void connect(const std::string &url, const ConnectOptions &options, SessionCallback cb) override;
  void set_default_headers(Headers headers) override;
  [[nodiscard]] Headers default_headers() const override { return default_headers_; }
  void close(CloseCallback cb) override;
  [[nodiscard]] ClientStats stats() const override { return stats_; }
  [[nodiscard]] ClientDiagnostics diagnostics() const override;

  CancelConnect connect_cancellable(const std::string &url, const ConnectOptions &options, SessionCallback cb);
  [[nodiscard]] const std::shared_ptr<Deferred> &deferred() const noexcept { return deferred_; }
  // Live connections to the proxy (tests: several tunnels share one).
  [[nodiscard]] std::size_t proxy_connections() const;
  void set_proxy(ProxySpec spec);
  // Sessions now on a pooled connection `c` (tests).
  [[nodiscard]] std::size_t pooled_sessions_on(const std::shared_ptr<ConnectionImpl> &c) const {
    return pool_.sessions_on(c);
  }

 private:
  friend struct ConnectOp;
  void adopt(const std::shared_ptr<ConnectionImpl> &c);
  void op_finished(const std::shared_ptr<ConnectOp> &op, const Error &err, double seconds, bool pooled);
  void maybe_closed();
  // Connections owned plus pending connects, each counted once.
  [[nodiscard]] std::size_t connections_in_use() const;

  uv_loop_t *loop_;
  ClientConfig config_;
  std::shared_ptr<TlsClientContext> tls_;
  std::shared_ptr<Deferred> deferred_;
  // With config().proxy: how to reach the proxy, and the live proxy
  // connections every connect shares (one connection, many tunnels).
  std::optional<ProxySpec> proxy_;
  std::shared_ptr<ProxyPool> proxy_pool_ = std::make_shared<ProxyPool>();
  std::string user_agent_;
  Headers default_headers_;
  ClientStats stats_;
  std::set<std::shared_ptr<ConnectOp>> ops_;
  std::set<std::shared_ptr<ConnectionImpl>> conns_;
  std::vector<CloseCallback> close_cbs_;
  bool closed_ = false;
  ConnectionPool pool_;  // after conns_: its timers go first
};

// Cancellable connect on any Client (a foreign implementation cannot be
// cancelled: its result is then dropped instead).
CancelConnect connect_cancellable(const std::shared_ptr<Client> &client, const std::string &url,
                                  const ConnectOptions &options, Client::SessionCallback cb);

}  // namespace uvwt::detail
