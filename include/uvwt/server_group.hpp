#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include <uv.h>

#include <uvwt/config.hpp>
#include <uvwt/error.hpp>
#include <uvwt/server.hpp>

namespace uvwt {

// One loop per core (docs/scaling.md): N threads, each with its own uv loop
// and Server on the same address and port (SO_REUSEPORT). A classic BPF
// program in the kernel sends every packet of a connection to the worker
// that owns it, by a byte of the connection ids that worker issued, so a
// client that changes its address or port still reaches the same loop; new
// connections spread by the kernel's 4-tuple hash. The workers share the
// stateless-reset / Retry key (a random one unless the configuration sets
// stateless_reset_secret) and ServerConfig::quic_lb, so they also sit behind
// a QUIC-LB balancer as one server.
class ServerGroup {
 public:
  // Runs on worker `index`'s own thread, with its loop and Server, before it
  // listens: install routes and hooks there. Every callback of that Server
  // runs on that thread; share state between workers with care.
  using WorkerSetup = std::function<void(std::size_t index, uv_loop_t *loop, Server &server)>;

  // Starts `workers` threads (1..255) one after the other (the kernel numbers
  // the sockets of a reuseport group by bind order). Port 0 picks a free
  // port; port() tells which. Returns null with `err` set when any worker
  // fails to start (the started ones are stopped first).
  static std::unique_ptr<ServerGroup> start(ServerConfig config, const std::string &host, std::uint16_t port,
                                            std::size_t workers, const WorkerSetup &setup, Error &err);
  ~ServerGroup();  // stop()
  ServerGroup(const ServerGroup &) = delete;
  ServerGroup &operator=(const ServerGroup &) = delete;

  [[nodiscard]] std::uint16_t port() const noexcept;
  [[nodiscard]] std::size_t workers() const noexcept;
  // Every worker's Server::shutdown() (GOAWAY, drain, close), then its loop
  // ends and its thread is joined. Blocks the caller until all are done.
  void stop();

 private:
  struct Impl;
  explicit ServerGroup(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace uvwt
