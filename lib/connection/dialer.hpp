#pragma once

#include <uv.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <uvwt/config.hpp>

#include "common/deferred.hpp"
#include "common/timer.hpp"
#include "quic/socket_addr.hpp"

namespace uvwt::detail {

class ConnectionImpl;
class TlsClientContext;

// Closes a connection the fastest way its state allows: abandoned while
// connecting, closed (CONNECTION_CLOSE) once connected.
void shut_connection(const std::shared_ptr<ConnectionImpl> &c, const Error &why);

// Resolves a host and races QUIC connections to its addresses, Happy
// Eyeballs style (RFC 8305): families interleaved, the next address tried
// 250 ms after the previous one or at once when it fails, the first
// connection to finish its handshake and SETTINGS exchange wins, the others
// are abandoned.
class Dialer : public std::enable_shared_from_this<Dialer> {
 public:
  using AttemptCallback = std::function<void(const std::shared_ptr<ConnectionImpl> &)>;
  using DoneCallback = std::function<void(const Error &, std::shared_ptr<ConnectionImpl>)>;
  // Runs on each attempt before its first packet (impairment a test set on
  // the connection that create_client returned, say).
  using AttemptSetup = std::function<void(ConnectionImpl &)>;

  static constexpr std::uint64_t kAttemptDelayMs = 250;

  // on_attempt sees every connection started (so that its owner can close
  // it); done runs once, on a later turn, unless cancel() came first. The
  // attempts post their callbacks on `deferred`, their owner's queue.
  static std::shared_ptr<Dialer> start(std::shared_ptr<Deferred> deferred, const ClientConfig &cfg,
                                       std::shared_ptr<TlsClientContext> tls, std::string host, std::uint16_t port,
                                       AttemptCallback on_attempt, DoneCallback done, AttemptSetup setup = nullptr);
  // The same with addresses already known (tests, callers with their own resolver).
  static std::shared_ptr<Dialer> start_with(std::shared_ptr<Deferred> deferred, const ClientConfig &cfg,
                                            std::shared_ptr<TlsClientContext> tls, std::string host,
                                            std::vector<SockAddr> addrs, AttemptCallback on_attempt, DoneCallback done);
  ~Dialer();
  Dialer(const Dialer &) = delete;
  Dialer &operator=(const Dialer &) = delete;

  // The attempt started last that is still running (null when none is).
  [[nodiscard]] std::shared_ptr<ConnectionImpl> latest() const;
  // Stops: abandons every attempt still connecting, no callback.
  void cancel(const Error &why);

  // Interleaves IPv6 and IPv4 addresses, starting with the family of the first.
  static std::vector<SockAddr> interleave(const std::vector<SockAddr> &addrs);
  // Of several attempt errors, the one that tells the most: reaching a server
  // (TLS, HTTP, protocol) beats a timeout, which beats refused/unreachable.
  static bool more_telling(const Error &a, const Error &b);

  Dialer(std::shared_ptr<Deferred> deferred, const ClientConfig &cfg, std::shared_ptr<TlsClientContext> tls,
         std::string host, std::uint16_t port, AttemptCallback on_attempt, DoneCallback done);

 private:
  void resolve();
  void on_resolved(const Error &err, const std::vector<SockAddr> &addrs);
  void start_next();
  std::shared_ptr<ConnectionImpl> start_attempt(const SockAddr &addr, Error &err);
  void on_attempt_done(std::size_t index, const Error &err);
  void fail(const Error &err);
  void abandon_all(const Error &why, std::size_t except);

  uv_loop_t *loop_;
  ClientConfig cfg_;
  std::shared_ptr<TlsClientContext> tls_;
  std::string host_;
  std::uint16_t port_;
  AttemptCallback on_attempt_;
  DoneCallback done_cb_;
  AttemptSetup setup_;
  std::shared_ptr<Deferred> deferred_;
  Timer stagger_;
  uv_getaddrinfo_t *dns_ = nullptr;  // lookup in flight (resolve.hpp); freed by its own callback
  std::vector<SockAddr> addrs_;
  std::size_t next_ = 0;
  std::vector<std::shared_ptr<ConnectionImpl>> attempts_;
  std::size_t active_ = 0;
  Error best_error_;
  bool done_ = false;
};

}  // namespace uvwt::detail
