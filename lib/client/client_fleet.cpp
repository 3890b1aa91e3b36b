#include <uvwt/client.hpp>

#include <algorithm>

#include "common/deferred.hpp"
#include "common/log.hpp"

namespace uvwt {

namespace detail {

class ClientFleetImpl final : public ClientFleet, public std::enable_shared_from_this<ClientFleetImpl> {
 public:
  ClientFleetImpl(uv_loop_t *loop, std::vector<std::shared_ptr<Client>> clients, std::size_t max_concurrent)
      : clients_(std::move(clients)), max_concurrent_(max_concurrent), deferred_(std::make_shared<Deferred>(loop)) {
    if (max_concurrent_ == 0)
      max_concurrent_ = std::max<std::size_t>(1, clients_.front()->config().max_concurrent_handshakes);
  }

  std::shared_ptr<Client> get_client(Error &err) override {
    if (closed_ || clients_.empty()) {
      err = Error(Errc::client, closed_ ? "client fleet is closed" : "client fleet is empty");
      return nullptr;
    }
    err = Error();
    auto c = clients_[next_ % clients_.size()];
    next_ = (next_ + 1) % clients_.size();
    return c;
  }

  [[nodiscard]] std::size_t client_count() const noexcept override { return clients_.size(); }

  void connect_all(const std::string &url, SessionsCallback cb) override {
    if (clients_.empty()) {
      deferred_->post([cb = std::move(cb)] { cb({}); });
      return;
    }
    auto run = std::make_shared<Run>();
    run->url = url;
    run->clients = clients_;
    run->results.resize(clients_.size());
    run->cb = std::move(cb);
    run->deferred = deferred_;
    run->limit = max_concurrent_;
    launch(run);
  }

  void close_all(CloseCallback cb) override {
    closed_ = true;
    auto clients = std::move(clients_);
    clients_.clear();
    if (clients.empty()) {
      if (cb) deferred_->post(std::move(cb));
      return;
    }
    auto remaining = std::make_shared<std::size_t>(clients.size());
    auto shared_cb = std::make_shared<CloseCallback>(std::move(cb));
    for (auto &c : clients)
      c->close([remaining, shared_cb] {
        if (--*remaining == 0 && *shared_cb) (*shared_cb)();
      });
  }

 private:
  struct Run {
    std::string url;
    std::vector<std::shared_ptr<Client>> clients;
    std::vector<std::shared_ptr<Session>> results;
    SessionsCallback cb;
    std::shared_ptr<Deferred> deferred;
    std::size_t limit = 1, next = 0, in_flight = 0, finished = 0;
  };

  static void launch(const std::shared_ptr<Run> &run) {
    while (run->in_flight < run->limit && run->next < run->clients.size()) {
      const std::size_t i = run->next++;
      ++run->in_flight;
      run->clients[i]->connect(run->url, [run, i](const Error &err, std::shared_ptr<Session> s) {
        --run->in_flight;
        ++run->finished;
        if (err)
          UVWT_WARN("client fleet: client %zu failed to connect to %s: %s", i, run->url.c_str(),
                    err.to_string().c_str());
        else
          run->results[i] = std::move(s);
        if (run->finished == run->clients.size()) {
          std::vector<std::shared_ptr<Session>> out;
          for (auto &r : run->results)
            if (r) out.push_back(std::move(r));
          auto cb = std::move(run->cb);
          run->cb = nullptr;
          run->clients.clear();
          cb(std::move(out));
          return;
        }
        launch(run);
      });
    }
  }

  std::vector<std::shared_ptr<Client>> clients_;
  std::size_t max_concurrent_;
  std::shared_ptr<Deferred> deferred_;
  std::size_t next_ = 0;
  bool closed_ = false;
};

}  // namespace detail

std::shared_ptr<ClientFleet> ClientFleet::create(uv_loop_t *loop, std::vector<std::shared_ptr<Client>> clients,
                                                 Error &err, std::size_t max_concurrent_handshakes) {
  if (clients.empty()) {
    err = Error(Errc::client, "client fleet needs at least one client");
    return nullptr;
  }
  if (std::find(clients.begin(), clients.end(), nullptr) != clients.end()) {
    err = Error(Errc::client, "client fleet: a client is null");
    return nullptr;
  }
  err = Error();
  return std::make_shared<detail::ClientFleetImpl>(loop, std::move(clients), max_concurrent_handshakes);
}

}  // namespace uvwt
