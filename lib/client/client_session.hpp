#pragma once

#include <functional>
#include <memory>
#include <vector>

#include <uvwt/session.hpp>

#include "common/deferred.hpp"

namespace uvwt::detail {

// The Session a Client hands out. It forwards everything to the core's
// session and lets the client, a ReconnectingClient or a Browser learn that
// the session ended without taking the user's single on_closed slot.
class ClientSession final : public Session {
 public:
  ClientSession(std::shared_ptr<Session> inner, std::shared_ptr<Deferred> deferred);
  ~ClientSession() override = default;

  // Runs once when the session has ended (on a later turn when it already has).
  void add_close_watcher(ClosedCallback cb);
  [[nodiscard]] const std::shared_ptr<Session> &inner() const noexcept { return inner_; }

  [[nodiscard]] SessionId id() const noexcept override { return inner_->id(); }
  [[nodiscard]] SessionState state() const noexcept override { return inner_->state(); }
  [[nodiscard]] bool is_ready() const noexcept override { return inner_->is_ready(); }
  [[nodiscard]] bool is_closed() const noexcept override { return inner_->is_closed(); }
  [[nodiscard]] SessionInfo info() const override { return inner_->info(); }
  [[nodiscard]] std::shared_ptr<Connection> connection() const override { return inner_->connection(); }
  void open_bidi_stream(StreamCallback cb) override { inner_->open_bidi_stream(std::move(cb)); }
  void open_uni_stream(StreamCallback cb) override { inner_->open_uni_stream(std::move(cb)); }
  void on_bidi_stream(IncomingStreamCallback cb) override { inner_->on_bidi_stream(std::move(cb)); }
  void on_uni_stream(IncomingStreamCallback cb) override { inner_->on_uni_stream(std::move(cb)); }
  Error send_datagram(std::span<const std::uint8_t> data) override { return inner_->send_datagram(data); }
  [[nodiscard]] std::size_t max_datagram_size() const noexcept override { return inner_->max_datagram_size(); }
  void on_datagram(DatagramCallback cb) override { inner_->on_datagram(std::move(cb)); }
  void close(std::uint32_t code, std::string reason, CloseCallback cb) override {
    inner_->close(code, std::move(reason), std::move(cb));
  }
  void drain() override { inner_->drain(); }
  void on_draining(std::function<void()> cb) override { inner_->on_draining(std::move(cb)); }
  void on_closed(ClosedCallback cb) override;
  [[nodiscard]] SessionStats stats() const override { return inner_->stats(); }

 private:
  struct Hooks {
    std::vector<ClosedCallback> watchers;
    ClosedCallback user;
    bool fired = false;
  };
  static void fire(const std::shared_ptr<Hooks> &hooks, const SessionCloseInfo &ci);

  std::shared_ptr<Session> inner_;
  std::shared_ptr<Deferred> deferred_;
  std::shared_ptr<Hooks> hooks_;
};

// Adds a close watcher when `s` came from a Client; false otherwise.
bool watch_session_close(const std::shared_ptr<Session> &s, Session::ClosedCallback cb);

}  // namespace uvwt::detail
