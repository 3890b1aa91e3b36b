// ServerGroup: one thread, loop and Server per worker on a SO_REUSEPORT group
// (docs/scaling.md). The Servers' own code does the steering (their endpoint
// sets SO_REUSEPORT and attaches the BPF program, lib/quic/endpoint_scale.cpp).
#include <uvwt/server_group.hpp>

#include <gnutls/crypto.h>

#include <condition_variable>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

namespace uvwt {

namespace {

// One worker: its thread owns the loop and the Server; the only way in from
// another thread is `stop_`, a uv_async_t.
class Worker {
 public:
  // Blocks until the worker listens (or failed to); the port it bound.
  Error start(const ServerConfig &cfg, const std::string &host, std::uint16_t port, std::size_t index,
              const ServerGroup::WorkerSetup &setup, std::uint16_t &bound) {
    thread_ = std::thread([this, cfg, host, port, index, setup] { run(cfg, host, port, index, setup); });
    std::unique_lock lock(mu_);
    cv_.wait(lock, [this] { return ready_; });
    bound = port_;
    return err_;
  }

  void stop() {
    if (!thread_.joinable()) return;
    if (listening_) uv_async_send(&stop_);
    thread_.join();
  }

 private:
  void run(const ServerConfig &cfg, const std::string &host, std::uint16_t port, std::size_t index,
           const ServerGroup::WorkerSetup &setup) {
    uv_loop_init(&loop_);
    Error err;
    server_ = Server::create(&loop_, cfg, err);
    if (server_) {
      if (setup) setup(index, &loop_, *server_);
      err = server_->listen(host, port);
    }
    if (!err) {
      stop_.data = this;
      uv_async_init(&loop_, &stop_, [](uv_async_t *a) { static_cast<Worker *>(a->data)->on_stop(); });
      listening_ = true;
    }
    report(err, err ? 0 : server_->port());
    if (err) {
      if (server_) server_->close({});
    }
    uv_run(&loop_, UV_RUN_DEFAULT);
    server_.reset();
    uv_run(&loop_, UV_RUN_DEFAULT);  // handles closed by the Server's destructor
    uv_loop_close(&loop_);
  }

  void on_stop() {
    server_->shutdown([this] { uv_close(reinterpret_cast<uv_handle_t *>(&stop_), nullptr); });
  }

  void report(Error err, std::uint16_t port) {
    std::lock_guard lock(mu_);
    err_ = std::move(err);
    port_ = port;
    ready_ = true;
    cv_.notify_all();
  }

  uv_loop_t loop_{};
  uv_async_t stop_{};
  std::shared_ptr<Server> server_;
  std::thread thread_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool ready_ = false;
  bool listening_ = false;
  Error err_;
  std::uint16_t port_ = 0;
};

}  // namespace

struct ServerGroup::Impl {
  std::vector<std::unique_ptr<Worker>> workers;
  std::uint16_t port = 0;
};

ServerGroup::ServerGroup(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

ServerGroup::~ServerGroup() { stop(); }

std::unique_ptr<ServerGroup> ServerGroup::start(ServerConfig config, const std::string &host, std::uint16_t port,
                                                std::size_t workers, const WorkerSetup &setup, Error &err) {
  if (workers == 0 || workers > 255) {
    err = Error(Errc::configuration, "ServerGroup: workers must be 1..255");
    return nullptr;
  }
  // One key for all: a worker must reset (and accept Retry tokens for) the
  // connections of any other.
  if (config.stateless_reset_secret.empty()) {
    config.stateless_reset_secret.resize(32);
    gnutls_rnd(GNUTLS_RND_KEY, config.stateless_reset_secret.data(), config.stateless_reset_secret.size());
  }
  config.worker.reuse_port = true;
  config.worker.worker_count = static_cast<std::uint8_t>(workers);
  auto impl = std::make_unique<Impl>();
  impl->port = port;
  for (std::size_t i = 0; i < workers; ++i) {
    config.worker.worker_id = static_cast<std::uint8_t>(i);
    auto w = std::make_unique<Worker>();
    std::uint16_t bound = 0;
    err = w->start(config, host, impl->port, i, setup, bound);
    impl->workers.push_back(std::move(w));
    if (err) {
      for (auto &started : impl->workers) started->stop();
      return nullptr;
    }
    impl->port = bound;  // the others join the port the first one got
  }
  return std::unique_ptr<ServerGroup>(new ServerGroup(std::move(impl)));
}

std::uint16_t ServerGroup::port() const noexcept { return impl_->port; }

std::size_t ServerGroup::workers() const noexcept { return impl_->workers.size(); }

void ServerGroup::stop() {
  if (!impl_) return;
  for (auto &w : impl_->workers) w->stop();
  impl_->workers.clear();
}

}  // namespace uvwt
