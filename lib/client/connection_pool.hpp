#pragma once

#include <uv.h>

#include <cstddef>
#include <memory>
#include <string>
#include <vector>

#include <uvwt/config.hpp>

#include "common/timer.hpp"

namespace uvwt::detail {

class ConnectionImpl;

// The open connections of one Client that new sessions may share
// (ClientConfig::pool_connections), per authority, with their session counts.
// A connection leaves the pool when it closes, drains or is told GOAWAY; it
// is closed once its last session ended (after pool_idle_linger).
class ConnectionPool {
 public:
  ConnectionPool(uv_loop_t *loop, const ClientConfig &cfg) : loop_(loop), cfg_(cfg) {}

  // A connection to `authority` with room for one more session, or null.
  [[nodiscard]] std::shared_ptr<ConnectionImpl> find(const std::string &authority);
  // A session now runs on `c` (new or reused); `c` joins the pool if new.
  void session_started(const std::string &authority, const std::shared_ptr<ConnectionImpl> &c);
  // Opening a session on `c` failed without the server's answer (its limit,
  // GOAWAY): no more sessions go there.
  void mark_full(const std::shared_ptr<ConnectionImpl> &c);
  // A session on `c` ended: `c` closes once none is left (after the linger).
  void session_ended(const std::shared_ptr<ConnectionImpl> &c);
  // Sessions running on pooled connections now (tests, diagnostics).
  [[nodiscard]] std::size_t sessions_on(const std::shared_ptr<ConnectionImpl> &c) const;

 private:
  struct Entry {
    std::string authority;
    std::weak_ptr<ConnectionImpl> conn;
    std::size_t sessions = 0;
    bool full = false;
    std::unique_ptr<Timer> linger;
  };
  Entry *entry_of(const ConnectionImpl *c);
  [[nodiscard]] bool has_room(const Entry &e) const;
  void linger_then_close(Entry &e);
  void drop_gone();

  uv_loop_t *loop_;
  ClientConfig cfg_;
  std::vector<std::unique_ptr<Entry>> entries_;
};

}  // namespace uvwt::detail
