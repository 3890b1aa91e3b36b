#include <uvwt/client.hpp>

#include <list>
#include <random>

#include "client/client_impl.hpp"
#include "client/close_watch.hpp"
#include "common/deferred.hpp"
#include "common/log.hpp"
#include "common/timer.hpp"

namespace uvwt {

namespace detail {

namespace {
// Errors a retry cannot fix: give up at once rather than spin.
bool retry_cannot_help(const Error &e) {
  switch (e.errc) {
    case Errc::invalid_url:
    case Errc::configuration:
    case Errc::unsupported:
    case Errc::proxy_authentication:  // the same credentials get the same 407
    case Errc::closed:
    case Errc::cancelled:
      return true;
    default:
      return false;
  }
}
}  // namespace

class ReconnectingClientImpl final : public ReconnectingClient,
                                     public std::enable_shared_from_this<ReconnectingClientImpl> {
 public:
  ReconnectingClientImpl(std::shared_ptr<Client> client, std::string url)
      : client_(std::move(client)),
        url_(std::move(url)),
        deferred_(queue_of(client_)),
        retry_timer_(client_->loop()),
        rng_(std::random_device{}()) {}

  void start() {
    deferred_->post([weak = weak_from_this()] {
      if (auto self = weak.lock()) self->attempt();
    });
  }

  [[nodiscard]] const std::string &url() const noexcept override { return url_; }
  [[nodiscard]] bool is_connected() const noexcept override {
    return session_ && session_->is_ready() && !session_->is_closed();
  }
  [[nodiscard]] bool is_closed() const noexcept override { return closed_; }
  [[nodiscard]] bool has_failed() const noexcept override { return failed_; }
  [[nodiscard]] int attempts() const noexcept override { return attempts_; }
  [[nodiscard]] int consecutive_failures() const noexcept override { return failures_; }

  void on_connected(ConnectedCallback cb) override { on_connected_ = std::move(cb); }
  void on_lost(LostCallback cb) override { on_lost_ = std::move(cb); }
  void on_failed(FailedCallback cb) override { on_failed_ = std::move(cb); }

  using ReconnectingClient::get_session;
  void get_session(Duration wait_timeout, SessionCallback cb) override {
    if (closed_ || failed_ || is_connected() || wait_timeout.count() <= 0) {
      std::shared_ptr<Session> s = !closed_ && is_connected() ? session_ : nullptr;
      deferred_->post([cb = std::move(cb), s] { cb(s); });
      return;
    }
    auto it = waiters_.insert(waiters_.end(), Waiter{std::move(cb), std::make_unique<Timer>(client_->loop())});
    it->timer->start(static_cast<std::uint64_t>(wait_timeout.count()), [this, it] {
      auto cb = std::move(it->cb);
      waiters_.erase(it);  // destroys the running timer's owner: nothing below touches it
      cb(nullptr);
    });
  }

  void close(CloseCallback cb) override {
    if (closed_) {
      if (cb) deferred_->post(std::move(cb));
      return;
    }
    closed_ = true;
    retry_timer_.stop();
    if (cancel_) {
      auto c = std::move(cancel_);
      cancel_ = nullptr;
      c();
    }
    answer_waiters(nullptr);
    auto s = std::move(session_);
    session_ = nullptr;
    auto self = shared_from_this();
    auto done = [self, cb = std::move(cb)] {
      if (cb) cb();
    };
    if (s && !s->is_closed())
      s->close(0, "reconnecting client closed", done);
    else
      deferred_->post(done);
  }

 private:
  struct Waiter {
    SessionCallback cb;
    std::unique_ptr<Timer> timer;
  };

  void attempt() {
    if (closed_ || failed_) return;
    ++attempts_;
    std::weak_ptr<ReconnectingClientImpl> weak = weak_from_this();
    cancel_ = connect_cancellable(client_, url_, ConnectOptions{},
                                  [weak](const Error &err, const std::shared_ptr<Session> &s) {
                                    if (auto self = weak.lock())
                                      self->on_result(err, s);
                                    else if (s)
                                      s->close(0, "reconnecting client gone", {});
                                  });
  }

  void on_result(const Error &err, const std::shared_ptr<Session> &s) {
    cancel_ = nullptr;
    if (closed_) {
      if (s) s->close(0, "reconnecting client closed", {});
      return;
    }
    if (!err) {
      const int attempt_no = failures_ + 1;
      failures_ = 0;
      session_ = s;
      UVWT_INFO("reconnecting client: connected to %s (attempt %d)", url_.c_str(), attempt_no);
      std::weak_ptr<ReconnectingClientImpl> weak = weak_from_this();
      std::weak_ptr<Session> ws = s;
      auto on_close = [weak, ws](const SessionCloseInfo &ci) {
        if (auto self = weak.lock()) self->on_session_closed(ws.lock(), ci);
      };
      watch_session_close(s, on_close);
      answer_waiters(s);
      if (on_connected_) on_connected_(s, attempt_no);
      return;
    }
    ++failures_;
    const int max = client_->config().max_retries;
    if (retry_cannot_help(err) || (max >= 0 && failures_ > max)) {
      failed_ = true;
      const std::string why =
          retry_cannot_help(err) ? "not retried" : "max retries (" + std::to_string(max) + ") exceeded";
      Error last = err;  // keeps the code, its space and the HTTP status
      last.message = why + " after " + std::to_string(failures_) + " failed attempt(s) to " + url_ + ": " + err.message;
      UVWT_ERROR("reconnecting client: %s", last.message.c_str());
      answer_waiters(nullptr);
      if (on_failed_) on_failed_(last, attempts_);
      return;
    }
    std::uniform_real_distribution<double> jitter(0.5, 1.5);
    const Duration delay = reconnect_delay(client_->config(), failures_, jitter(rng_));
    UVWT_WARN("reconnecting client: attempt %d to %s failed (%s), retrying in %lld ms", attempts_, url_.c_str(),
              err.to_string().c_str(), static_cast<long long>(delay.count()));
    retry_timer_.start(static_cast<std::uint64_t>(delay.count()), [this] { attempt(); });
  }

  void on_session_closed(const std::shared_ptr<Session> &s, const SessionCloseInfo &ci) {
    if (closed_ || !s || s != session_) return;
    session_ = nullptr;
    UVWT_WARN("reconnecting client: session to %s lost, reconnecting", url_.c_str());
    if (on_lost_) on_lost_(ci);
    // The close is still being delivered: start over on the next turn.
    deferred_->post([weak = weak_from_this()] {
      if (auto self = weak.lock()) self->attempt();
    });
  }

  void answer_waiters(const std::shared_ptr<Session> &s) {
    auto all = std::move(waiters_);
    waiters_.clear();
    for (auto &w : all) {
      w.timer.reset();
      w.cb(s);
    }
  }

  std::shared_ptr<Client> client_;
  std::string url_;
  std::shared_ptr<Deferred> deferred_;
  Timer retry_timer_;
  std::mt19937_64 rng_;
  std::shared_ptr<Session> session_;
  CancelConnect cancel_;
  std::list<Waiter> waiters_;
  ConnectedCallback on_connected_;
  LostCallback on_lost_;
  FailedCallback on_failed_;
  int attempts_ = 0, failures_ = 0;
  bool closed_ = false, failed_ = false;
};

}  // namespace detail

std::shared_ptr<ReconnectingClient> ReconnectingClient::create(std::shared_ptr<Client> client, std::string url) {
  auto r = std::make_shared<detail::ReconnectingClientImpl>(std::move(client), std::move(url));
  r->start();
  return r;
}

}  // namespace uvwt
