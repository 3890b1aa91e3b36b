#include <uvwt/client.hpp>

#include <deque>

#include "client/client_impl.hpp"
#include "common/deferred.hpp"
#include "common/log.hpp"

namespace uvwt {

namespace detail {

class BrowserImpl final : public Browser, public std::enable_shared_from_this<BrowserImpl> {
 public:
  explicit BrowserImpl(std::shared_ptr<Client> client) : client_(std::move(client)), deferred_(queue_of(client_)) {}

  void navigate(const std::string &url, SessionCallback cb) override { enqueue({Kind::navigate, url, std::move(cb)}); }
  void back(SessionCallback cb) override { enqueue({Kind::back, {}, std::move(cb)}); }
  void forward(SessionCallback cb) override { enqueue({Kind::forward, {}, std::move(cb)}); }
  void refresh(SessionCallback cb) override { enqueue({Kind::refresh, {}, std::move(cb)}); }

  [[nodiscard]] std::vector<std::string> history() const override { return history_; }
  [[nodiscard]] int history_index() const noexcept override { return index_; }
  [[nodiscard]] std::shared_ptr<Session> current_session() const override { return current_; }
  [[nodiscard]] bool is_closed() const noexcept override { return closed_; }

  void close(CloseCallback cb) override {
    if (closed_) {
      if (cb) deferred_->post(std::move(cb));
      return;
    }
    closed_ = true;
    // The in-flight operation is answered first, then the queued ones in the
    // order they were issued: the order the caller started them in.
    if (in_flight_ && in_flight_->cb) {
      deferred_->post([cb = std::move(in_flight_->cb)] { cb(Error(Errc::cancelled, "browser closed"), nullptr); });
      in_flight_->cb = nullptr;
    }
    in_flight_ = nullptr;
    auto queued = std::move(queue_);
    queue_.clear();
    for (auto &op : queued)
      deferred_->post([cb = std::move(op.cb)] { cb(Error(Errc::cancelled, "browser closed"), nullptr); });
    if (cancel_) {
      auto c = std::move(cancel_);
      cancel_ = nullptr;
      c();
    }
    history_.clear();
    index_ = -1;
    auto s = std::move(current_);
    current_ = nullptr;
    auto self = shared_from_this();
    auto done = [self, cb = std::move(cb)] {
      if (cb) cb();
    };
    if (s && !s->is_closed())
      s->close(0, "browser closed", done);
    else
      deferred_->post(done);
  }

 private:
  enum class Kind { navigate, back, forward, refresh };
  struct Op {
    Kind kind;
    std::string url;
    SessionCallback cb;
  };

  void enqueue(Op op) {
    if (closed_) {
      deferred_->post([cb = std::move(op.cb)] { cb(Error(Errc::closed, "browser is closed"), nullptr); });
      return;
    }
    queue_.push_back(std::move(op));
    if (!busy_) {
      busy_ = true;  // the first operation starts on a later turn, after the caller returns
      deferred_->post([weak = weak_from_this()] {
        if (auto self = weak.lock()) self->run_next();
      });
    }
  }

  bool live() const { return current_ && !current_->is_closed(); }

  // Runs queued operations until one has to wait for a connect.
  void run_next() {
    busy_ = false;
    while (!closed_ && !queue_.empty()) {
      Op op = std::move(queue_.front());
      queue_.pop_front();
      const int size = static_cast<int>(history_.size());
      int target = -1;  // history index to load; -1 for a new URL
      switch (op.kind) {
        case Kind::navigate:
          if (index_ >= 0 && history_[static_cast<std::size_t>(index_)] == op.url) {
            if (live()) {
              op.cb(Error(), current_);
              continue;
            }
            // The current entry again with its session gone: a refresh, so the
            // entry stays one and forward history is kept.
            target = index_;
          }
          break;
        case Kind::back:
          target = index_ > 0 ? index_ - 1 : -2;
          break;
        case Kind::forward:
          target = index_ >= 0 && index_ < size - 1 ? index_ + 1 : -2;
          break;
        case Kind::refresh:
          target = size > 0 ? index_ : -2;
          break;
      }
      if (target == -2) {
        op.cb(Error(), nullptr);  // nowhere to go: nothing changes
        continue;
      }
      const std::string url = target >= 0 ? history_[static_cast<std::size_t>(target)] : op.url;
      busy_ = true;
      std::weak_ptr<BrowserImpl> weak = weak_from_this();
      auto shared_op = std::make_shared<Op>(std::move(op));
      in_flight_ = shared_op;
      cancel_ =
          connect_cancellable(client_, url, ConnectOptions{},
                              [weak, shared_op, target, url](const Error &err, const std::shared_ptr<Session> &s) {
                                auto self = weak.lock();
                                if (!self) {
                                  if (s) s->close(0, "browser gone", {});
                                  return;
                                }
                                self->loaded(*shared_op, target, url, err, s);
                              });
      return;
    }
  }

  void loaded(Op &op, int target, const std::string &url, const Error &err, const std::shared_ptr<Session> &s) {
    cancel_ = nullptr;
    in_flight_ = nullptr;
    if (closed_) {
      if (s) s->close(0, "browser closed", {});
      if (op.cb) op.cb(err ? err : Error(Errc::cancelled, "browser closed"), nullptr);  // close() took it otherwise
      return;
    }
    if (err) {
      UVWT_WARN("browser: loading %s failed: %s", url.c_str(), err.to_string().c_str());
      op.cb(err, nullptr);
    } else {
      if (target >= 0) {
        index_ = target;
      } else {
        history_.resize(static_cast<std::size_t>(index_) + 1);  // forward history goes
        if (history_.empty() || history_.back() != url) history_.push_back(url);
        index_ = static_cast<int>(history_.size()) - 1;
      }
      auto old = std::move(current_);
      current_ = s;
      if (old && old != s && !old->is_closed()) old->close(0, "navigated away", {});
      op.cb(Error(), s);
    }
    run_next();
  }

  std::shared_ptr<Client> client_;
  std::shared_ptr<Deferred> deferred_;
  std::vector<std::string> history_;
  int index_ = -1;
  std::shared_ptr<Session> current_;
  std::deque<Op> queue_;
  std::shared_ptr<Op> in_flight_;  // waiting for its connect
  CancelConnect cancel_;
  bool busy_ = false, closed_ = false;
};

}  // namespace detail

std::shared_ptr<Browser> Browser::create(std::shared_ptr<Client> client) {
  return std::make_shared<detail::BrowserImpl>(std::move(client));
}

}  // namespace uvwt
