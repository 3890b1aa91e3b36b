#include <uvwt/load_balancer.hpp>

#include <cmath>
#include <random>

#include "common/clock.hpp"
#include "common/deferred.hpp"
#include "common/log.hpp"
#include "common/timer.hpp"

namespace uvwt {

namespace {

enum class Strategy { round_robin, weighted, least_latency };

std::optional<Strategy> parse_strategy(const std::string &s) {
  if (s == "round_robin") return Strategy::round_robin;
  if (s == "weighted") return Strategy::weighted;
  if (s == "least_latency") return Strategy::least_latency;
  return std::nullopt;
}

// "[::1]" and "::1" name the same target; the factory wants the bare literal.
std::string bare_host(const std::string &h) {
  if (h.size() >= 2 && h.front() == '[' && h.back() == ']') return h.substr(1, h.size() - 2);
  return h;
}

std::string target_name(const std::string &host, std::uint16_t port) { return Address{host, port}.to_string(); }

Error check_arguments(const std::vector<Address> &targets, const LoadBalancerOptions &o) {
  if (targets.empty()) return {Errc::configuration, "load balancer needs at least one target"};
  for (const auto &t : targets) {
    if (bare_host(t.host).empty()) return {Errc::configuration, "load balancer target with an empty host"};
    if (t.port == 0) return {Errc::configuration, "load balancer target " + bare_host(t.host) + " has port 0"};
  }
  if (o.health_check_interval.count() <= 0)
    return {Errc::configuration, "invalid health_check_interval: must be positive"};
  if (o.health_check_timeout.count() <= 0)
    return {Errc::configuration, "invalid health_check_timeout: must be positive"};
  return {};
}

}  // namespace

class ConnectionLoadBalancer::Impl : public std::enable_shared_from_this<Impl> {
 public:
  struct Request {
    ClientConfig config;
    std::string path;
    Strategy strategy = Strategy::round_robin;
    Connection::ConnectCallback cb;
    std::vector<bool> excluded;  // targets this request already failed on
    Error last_error;
  };
  struct Target {
    std::string host;
    std::uint16_t port = 0;
    double weight = 1.0;
    std::shared_ptr<Connection> conn;
    std::optional<double> connect_latency;  // seconds
    std::optional<double> rtt;              // seconds, last smoothed RTT measured
    bool failed = false, creating = false, probing = false;
    std::vector<std::shared_ptr<Request>> waiters;  // sharing the running attempt
  };

  Impl(uv_loop_t *loop, const std::vector<Address> &targets, ConnectionFactory factory, HealthChecker checker,
       LoadBalancerOptions options)
      : loop_(loop),
        // Its own queue: the balancer only orders its own callbacks, never
        // against the tasks of the connections it holds.
        deferred_(std::make_shared<detail::Deferred>(loop)),
        factory_(std::move(factory)),
        checker_(std::move(checker)),
        options_(std::move(options)) {
    for (const auto &a : targets) {
      const std::string host = bare_host(a.host);
      bool dup = false;
      for (const auto &t : targets_) dup = dup || (t.host == host && t.port == a.port);
      if (dup) continue;
      Target t;
      t.host = host;
      t.port = a.port;
      targets_.push_back(std::move(t));
    }
    if (!factory_) factory_ = default_connection_factory();
    if (options_.seed)
      rng_.seed(*options_.seed);
    else
      rng_.seed((static_cast<std::uint64_t>(std::random_device{}()) << 32) ^ std::random_device{}());
  }

  void get_connection(const ClientConfig &config, const std::string &path, const std::string &strategy,
                      Connection::ConnectCallback cb) {
    auto r = std::make_shared<Request>();
    r->cb = std::move(cb);
    const auto s = parse_strategy(strategy);
    if (!s) {
      return deliver(r,
                     Error(Errc::configuration, "unknown load balancing strategy '" + strategy +
                                                    "' (round_robin, weighted or least_latency)"),
                     nullptr);
    }
    if (shut_down_) return deliver(r, Error(Errc::closed, "load balancer is shut down"), nullptr);
    r->config = config;
    r->path = path;
    r->strategy = *s;
    r->excluded.assign(targets_.size(), false);
    last_config_ = config;
    attempt(r);
  }

  Error update_target_weight(const std::string &host, std::uint16_t port, double weight) {
    if (!std::isfinite(weight) || weight < 0) return Error(Errc::configuration, "weight must be a finite number >= 0");
    const std::string h = bare_host(host);
    for (auto &t : targets_) {
      if (t.host == h && t.port == port) {
        t.weight = weight;
        return Error();
      }
    }
    return Error(Errc::configuration, "unknown target " + target_name(h, port));
  }

  [[nodiscard]] LoadBalancerStats stats() const {
    LoadBalancerStats s;
    s.total_targets = targets_.size();
    for (const auto &t : targets_) {
      if (t.failed) ++s.failed_targets;
      if (t.conn) ++s.active_connections;
      if (t.conn && t.conn->is_connected()) ++s.connected_connections;
    }
    s.available_targets = s.total_targets - s.failed_targets;
    return s;
  }

  [[nodiscard]] std::vector<TargetStats> target_stats() const {
    std::vector<TargetStats> v;
    for (const auto &t : targets_) {
      TargetStats s;
      s.host = t.host;
      s.port = t.port;
      s.weight = t.weight;
      s.latency = latency(t);
      s.failed = t.failed;
      s.connected = t.conn && t.conn->is_connected();
      v.push_back(std::move(s));
    }
    return v;
  }

  void close_all_connections(CloseCallback cb) {
    std::vector<std::shared_ptr<Connection>> conns;
    for (auto &t : targets_)
      if (t.conn) conns.push_back(std::move(t.conn));
    for (auto &t : targets_) t.conn.reset();
    if (conns.empty()) {
      if (cb) deferred_->post(std::move(cb));
      return;
    }
    auto left = std::make_shared<std::size_t>(conns.size());
    auto shared_cb = std::make_shared<CloseCallback>(std::move(cb));
    for (auto &c : conns) {
      c->close(0, "load balancer closing", [left, shared_cb] {
        if (--*left == 0 && *shared_cb) (*shared_cb)();
      });
    }
  }

  void shutdown(CloseCallback cb) {
    if (cb) shutdown_cbs_.push_back(std::move(cb));
    if (shut_down_) {
      maybe_finish_shutdown();
      return;
    }
    shut_down_ = true;
    health_timer_.reset();
    auto self = shared_from_this();
    close_all_connections([self] {
      self->connections_closed_ = true;
      self->maybe_finish_shutdown();
    });
  }

  [[nodiscard]] bool is_shut_down() const noexcept { return shut_down_; }

 private:
  // The smoothed RTT is remembered past the connection's end, so live and
  // closed targets compare on the same figure.
  static void refresh_rtt(Target &t) {
    if (t.conn && t.conn->is_connected()) {
      const double rtt = t.conn->diagnostics().rtt;
      if (rtt > 0) t.rtt = rtt;
    }
  }
  [[nodiscard]] static std::optional<double> latency(const Target &t) {
    if (t.conn && t.conn->is_connected()) {
      const double rtt = t.conn->diagnostics().rtt;
      if (rtt > 0) return rtt;
    }
    return t.rtt ? t.rtt : t.connect_latency;
  }

  [[nodiscard]] bool candidate(const Request &r, std::size_t i) const { return !targets_[i].failed && !r.excluded[i]; }

  // A random candidate with probability proportional to its weight; any
  // candidate when no weight is positive.
  std::size_t pick_weighted(const std::vector<std::size_t> &avail) {
    double total = 0;
    for (auto i : avail) total += targets_[i].weight;
    if (total <= 0) {
      std::uniform_int_distribution<std::size_t> d(0, avail.size() - 1);
      return avail[d(rng_)];
    }
    std::uniform_real_distribution<double> d(0.0, total);
    double x = d(rng_);
    for (auto i : avail) {
      if (targets_[i].weight <= 0) continue;
      if (x < targets_[i].weight) return i;
      x -= targets_[i].weight;
    }
    // Rounding left x at the very top: the last target with weight.
    for (auto it = avail.rbegin(); it != avail.rend(); ++it)
      if (targets_[*it].weight > 0) return *it;
    return avail.back();
  }

  std::optional<std::size_t> pick(const Request &r) {
    const std::size_t n = targets_.size();
    std::vector<std::size_t> avail;
    for (std::size_t i = 0; i < n; ++i)
      if (candidate(r, i)) avail.push_back(i);
    if (avail.empty()) return std::nullopt;
    switch (r.strategy) {
      case Strategy::round_robin:
        for (std::size_t k = 0; k < n; ++k) {
          const std::size_t i = (rr_next_ + k) % n;
          if (candidate(r, i)) {
            rr_next_ = (i + 1) % n;
            return i;
          }
        }
        return std::nullopt;
      case Strategy::weighted:
        return pick_weighted(avail);
      case Strategy::least_latency: {
        bool all_rtt = true;
        for (auto i : avail) {
          Target &t = targets_[i];
          if (!t.rtt && !t.connect_latency) return i;  // untried targets first, in list order
          refresh_rtt(t);
          all_rtt = all_rtt && t.rtt.has_value();
        }
        // One measure for all: RTTs when every candidate has one (any real
        // connection does), else connect durations (a factory's connections
        // may report no RTT). Never an RTT against a connect duration.
        std::optional<std::size_t> best;
        double best_latency = 0;
        for (auto i : avail) {
          const Target &t = targets_[i];
          const auto l = all_rtt ? t.rtt : (t.connect_latency ? t.connect_latency : t.rtt);
          if (!best || *l < best_latency) {
            best = i;
            best_latency = *l;
          }
        }
        return best;
      }
    }
    return std::nullopt;
  }

  void deliver(const std::shared_ptr<Request> &r, Error err, std::shared_ptr<Connection> conn) {
    if (!r->cb) return;
    deferred_->post([cb = std::move(r->cb), err = std::move(err), conn = std::move(conn)] { cb(err, conn); });
    r->cb = nullptr;
  }

  void attempt(const std::shared_ptr<Request> &r) {
    if (shut_down_) return deliver(r, Error(Errc::closed, "load balancer is shut down"), nullptr);
    const auto idx = pick(*r);
    if (!idx) {
      std::string msg = targets_.empty() ? "load balancer has no targets" : "no available target";
      if (!targets_.empty())
        msg += " (" + std::to_string(stats().failed_targets) + " of " + std::to_string(targets_.size()) + " failed)";
      if (r->last_error) msg += "; last error: " + r->last_error.to_string();
      return deliver(r, Error(Errc::connection, msg, r->last_error.space, r->last_error.code), nullptr);
    }
    Target &t = targets_[*idx];
    if (t.conn) {
      if (t.conn->is_connected()) return deliver(r, Error(), t.conn);
      // Closing, draining or gone: replace it (its owner-side close continues alone).
      t.conn.reset();
    }
    t.waiters.push_back(r);
    if (t.creating) return;
    t.creating = true;
    ++pending_ops_;
    const std::uint64_t started = detail::now_ns();
    auto self = shared_from_this();
    const std::size_t i = *idx;
    factory_(loop_, r->config, t.host, t.port, r->path,
             [self, i, started](const Error &err, const std::shared_ptr<Connection> &conn) {
               const double elapsed = static_cast<double>(detail::now_ns() - started) / 1e9;
               // A factory may answer from inside the call: finish on a later turn.
               self->deferred_->post([self, i, elapsed, err, conn] { self->attempt_done(i, elapsed, err, conn); });
             });
  }

  void attempt_done(std::size_t i, double elapsed, const Error &err, const std::shared_ptr<Connection> &conn) {
    Target &t = targets_[i];
    t.creating = false;
    auto waiters = std::move(t.waiters);
    t.waiters.clear();
    if (shut_down_) {
      for (auto &w : waiters) deliver(w, Error(Errc::closed, "load balancer is shut down"), nullptr);
      if (conn) {
        auto self = shared_from_this();
        conn->close(0, "load balancer shut down", [self] {
          --self->pending_ops_;
          self->maybe_finish_shutdown();
        });
      } else {
        --pending_ops_;
        maybe_finish_shutdown();
      }
      return;
    }
    --pending_ops_;
    if (!err && conn) {
      t.conn = conn;
      t.connect_latency = elapsed;
      refresh_rtt(t);
      if (t.failed) UVWT_INFO("load balancer: target %s is back", target_name(t.host, t.port).c_str());
      t.failed = false;
      for (auto &w : waiters) deliver(w, Error(), conn);
      return;
    }
    const Error e = err ? err : Error(Errc::connection, "connection factory returned no connection");
    mark_failed(i, e);
    for (auto &w : waiters) {
      w->excluded[i] = true;
      w->last_error = e;
      attempt(w);
    }
  }

  void mark_failed(std::size_t i, const Error &err) {
    Target &t = targets_[i];
    if (!t.failed)
      UVWT_WARN("load balancer: target %s failed: %s", target_name(t.host, t.port).c_str(), err.to_string().c_str());
    t.failed = true;
    if (shut_down_) return;
    if (!health_timer_) health_timer_ = std::make_unique<detail::Timer>(loop_);
    if (!health_timer_->active()) {
      const auto ms = static_cast<std::uint64_t>(std::max<std::int64_t>(1, options_.health_check_interval.count()));
      Impl *raw = this;  // the timer is ours: it cannot outlive us
      health_timer_->start(
          ms, [raw] { raw->health_tick(); }, ms);
    }
  }

  void health_tick() {
    bool any_failed = false;
    for (std::size_t i = 0; i < targets_.size(); ++i) {
      Target &t = targets_[i];
      if (!t.failed) continue;
      any_failed = true;
      if (t.probing) continue;
      t.probing = true;
      ++pending_ops_;
      auto self = shared_from_this();
      auto done = [self, i](bool healthy) {
        self->deferred_->post([self, i, healthy] { self->probe_done(i, healthy); });
      };
      if (checker_)
        checker_(t.host, t.port, options_.health_check_timeout, done);
      else
        default_health_checker(loop_, options_.health_check_config.value_or(last_config_))(
            t.host, t.port, options_.health_check_timeout, done);
    }
    if (!any_failed && health_timer_) health_timer_->stop();
  }

  void probe_done(std::size_t i, bool healthy) {
    Target &t = targets_[i];
    t.probing = false;
    --pending_ops_;
    if (shut_down_) return maybe_finish_shutdown();
    if (healthy && t.failed) {
      t.failed = false;
      // Its figures predate the failure: measure it afresh. Without a latency
      // it counts as untried, so least_latency tries it first (the reference
      // resets its latency to 0 for the same effect).
      t.rtt.reset();
      t.connect_latency.reset();
      UVWT_INFO("load balancer: target %s passed its health check", target_name(t.host, t.port).c_str());
    } else if (!healthy) {
      UVWT_DEBUG("load balancer: target %s still failing", target_name(t.host, t.port).c_str());
    }
  }

  void maybe_finish_shutdown() {
    if (!shut_down_ || !connections_closed_ || pending_ops_ != 0 || shutdown_cbs_.empty()) return;
    auto cbs = std::move(shutdown_cbs_);
    shutdown_cbs_.clear();
    deferred_->post([cbs = std::move(cbs)] {
      for (const auto &c : cbs) c();
    });
  }

  uv_loop_t *loop_;
  std::shared_ptr<detail::Deferred> deferred_;
  ConnectionFactory factory_;
  HealthChecker checker_;
  LoadBalancerOptions options_;
  std::vector<Target> targets_;
  std::size_t rr_next_ = 0;
  std::mt19937_64 rng_;
  ClientConfig last_config_;
  std::unique_ptr<detail::Timer> health_timer_;
  std::size_t pending_ops_ = 0;  // attempts and probes running
  bool shut_down_ = false, connections_closed_ = false;
  std::vector<CloseCallback> shutdown_cbs_;
};

ConnectionLoadBalancer::ConnectionLoadBalancer(uv_loop_t *loop, const std::vector<Address> &targets,
                                               ConnectionFactory factory, HealthChecker health_checker,
                                               LoadBalancerOptions options)
    : impl_(std::make_shared<Impl>(loop, targets, std::move(factory), std::move(health_checker), std::move(options))) {}

std::unique_ptr<ConnectionLoadBalancer> ConnectionLoadBalancer::create(uv_loop_t *loop,
                                                                       const std::vector<Address> &targets, Error &err,
                                                                       ConnectionFactory factory,
                                                                       HealthChecker health_checker,
                                                                       LoadBalancerOptions options) {
  err = check_arguments(targets, options);
  if (err) return nullptr;
  return std::unique_ptr<ConnectionLoadBalancer>(
      new ConnectionLoadBalancer(loop, targets, std::move(factory), std::move(health_checker), std::move(options)));
}

ConnectionLoadBalancer::~ConnectionLoadBalancer() {
  if (!impl_->is_shut_down()) impl_->shutdown({});
}

ConnectionLoadBalancer::ConnectionFactory ConnectionLoadBalancer::default_connection_factory() {
  return [](uv_loop_t *loop, const ClientConfig &config, const std::string &host, std::uint16_t port,
            const std::string &path, Connection::ConnectCallback cb) {
    Connection::create_client(loop, config, host, port, path, std::nullopt, std::move(cb));
  };
}

void ConnectionLoadBalancer::get_connection(const ClientConfig &config, const std::string &path,
                                            const std::string &strategy, Connection::ConnectCallback cb) {
  impl_->get_connection(config, path, strategy, std::move(cb));
}

Error ConnectionLoadBalancer::update_target_weight(const std::string &host, std::uint16_t port, double weight) {
  return impl_->update_target_weight(host, port, weight);
}

LoadBalancerStats ConnectionLoadBalancer::get_load_balancer_stats() const { return impl_->stats(); }

std::vector<TargetStats> ConnectionLoadBalancer::get_target_stats() const { return impl_->target_stats(); }

void ConnectionLoadBalancer::close_all_connections(CloseCallback cb) { impl_->close_all_connections(std::move(cb)); }

void ConnectionLoadBalancer::shutdown(CloseCallback cb) { impl_->shutdown(std::move(cb)); }

}  // namespace uvwt
