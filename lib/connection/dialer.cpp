#include "connection/dialer.hpp"

#include "connection/resolve.hpp"

#include "common/log.hpp"
#include "common/test_hooks.hpp"
#include "connection/connection_impl.hpp"
#include "quic/tls_context.hpp"

namespace uvwt::detail {

void shut_connection(const std::shared_ptr<ConnectionImpl> &c, const Error &why) {
  if (!c || c->is_closed() || c->is_closing()) return;
  if (c->state() == ConnectionState::connecting)
    c->abandon(why);
  else
    c->close(0, why.message, {});
}

Dialer::Dialer(std::shared_ptr<Deferred> deferred, const ClientConfig &cfg, std::shared_ptr<TlsClientContext> tls,
               std::string host, std::uint16_t port, AttemptCallback on_attempt, DoneCallback done)
    : loop_(deferred->loop()),
      cfg_(cfg),
      tls_(std::move(tls)),
      host_(std::move(host)),
      port_(port),
      on_attempt_(std::move(on_attempt)),
      done_cb_(std::move(done)),
      deferred_(std::move(deferred)),
      stagger_(loop_) {}

Dialer::~Dialer() {
  if (dns_ != nullptr) uv_cancel(reinterpret_cast<uv_req_t *>(dns_));
}

std::shared_ptr<Dialer> Dialer::start(std::shared_ptr<Deferred> deferred, const ClientConfig &cfg,
                                      std::shared_ptr<TlsClientContext> tls, std::string host, std::uint16_t port,
                                      AttemptCallback on_attempt, DoneCallback done, AttemptSetup setup) {
  auto d = std::make_shared<Dialer>(std::move(deferred), cfg, std::move(tls), std::move(host), port,
                                    std::move(on_attempt), std::move(done));
  d->setup_ = std::move(setup);
  d->resolve();
  return d;
}

std::shared_ptr<Dialer> Dialer::start_with(std::shared_ptr<Deferred> deferred, const ClientConfig &cfg,
                                           std::shared_ptr<TlsClientContext> tls, std::string host,
                                           std::vector<SockAddr> addrs, AttemptCallback on_attempt, DoneCallback done) {
  auto d = std::make_shared<Dialer>(std::move(deferred), cfg, std::move(tls), std::move(host), 0, std::move(on_attempt),
                                    std::move(done));
  d->deferred_->post([d, addrs = std::move(addrs)] {
    if (addrs.empty())
      d->on_resolved(Error(Errc::dns, "no address given"), {});
    else
      d->on_resolved(Error(), addrs);
  });
  return d;
}

void Dialer::resolve() {
  if (auto lit = SockAddr::parse(host_, port_)) {
    deferred_->post([self = shared_from_this(), a = *lit] { self->on_resolved(Error(), {a}); });
    return;
  }
  if (const auto &fake = testing::resolved_addresses_of(cfg_); !fake.empty()) {
    std::vector<SockAddr> out;
    for (const auto &a : fake)
      if (auto sa = SockAddr::parse(a.host, a.port != 0 ? a.port : port_)) out.push_back(*sa);
    deferred_->post([self = shared_from_this(), out] { self->on_resolved(Error(), out); });
    return;
  }
  dns_ = detail::resolve(deferred_, host_, port_,
                         [weak = weak_from_this()](const Error &err, const std::vector<SockAddr> &addrs) {
                           auto self = weak.lock();
                           if (!self) return;
                           self->dns_ = nullptr;
                           self->on_resolved(err, addrs);
                         });
}

std::vector<SockAddr> Dialer::interleave(const std::vector<SockAddr> &addrs) {
  if (addrs.empty()) return {};
  const int first = addrs.front().family();
  std::vector<SockAddr> a, b;
  for (const auto &x : addrs) (x.family() == first ? a : b).push_back(x);
  std::vector<SockAddr> out;
  for (std::size_t i = 0; i < a.size() || i < b.size(); ++i) {
    if (i < a.size()) out.push_back(a[i]);
    if (i < b.size()) out.push_back(b[i]);
  }
  return out;
}

bool Dialer::more_telling(const Error &a, const Error &b) {
  auto rank = [](const Error &e) {
    switch (e.errc) {
      case Errc::ok:
        return 0;
      case Errc::refused:
        return 1;
      case Errc::connection:
        return 2;
      case Errc::timeout:
        return 3;
      default:
        return 4;
    }
  };
  return rank(a) > rank(b);
}

void Dialer::on_resolved(const Error &err, const std::vector<SockAddr> &addrs) {
  if (done_) return;
  if (err) return fail(err);
  addrs_ = interleave(addrs);
  UVWT_DEBUG("client: %s resolved to %zu address(es)", host_.c_str(), addrs_.size());
  start_next();
}

void Dialer::start_next() {
  while (!done_ && next_ < addrs_.size()) {
    const std::size_t index = attempts_.size();
    const SockAddr addr = addrs_[next_++];
    Error err;
    auto conn = start_attempt(addr, err);
    attempts_.push_back(conn);
    if (!conn) {
      if (more_telling(err, best_error_)) best_error_ = err;
      continue;  // nothing to wait for: try the next address now
    }
    ++active_;
    UVWT_DEBUG("client: connecting to %s (%s)", addr.to_string().c_str(), host_.c_str());
    if (on_attempt_) on_attempt_(conn);
    std::weak_ptr<Dialer> weak = weak_from_this();
    conn->connect_cb = [weak, index](const Error &e) {
      if (auto self = weak.lock()) self->on_attempt_done(index, e ? e : Error());
    };
    if (next_ < addrs_.size()) stagger_.start(kAttemptDelayMs, [this] { start_next(); });
    return;
  }
  if (!done_ && active_ == 0)
    fail(best_error_ ? best_error_ : Error(Errc::dns, "no address to connect to for '" + host_ + "'"));
}

std::shared_ptr<ConnectionImpl> Dialer::start_attempt(const SockAddr &addr, Error &err) {
  auto conn = ConnectionImpl::make_client(deferred_, cfg_);
  if (setup_) setup_(*conn);
  conn->connect_to(addr, host_, tls_);
  if (conn->state() == ConnectionState::connecting) return conn;
  err = conn->close_error();  // it finishes closing on its own
  return nullptr;
}

void Dialer::on_attempt_done(std::size_t index, const Error &err) {
  if (done_) return;
  --active_;
  if (!err) {
    done_ = true;
    stagger_.stop();
    auto winner = attempts_[index];
    abandon_all(Error(Errc::cancelled, "another address connected first"), index);
    auto cb = std::move(done_cb_);
    done_cb_ = nullptr;
    cb(Error(), std::move(winner));
    return;
  }
  UVWT_DEBUG("client: attempt %zu to %s failed: %s", index, host_.c_str(), err.to_string().c_str());
  if (more_telling(err, best_error_)) best_error_ = err;
  stagger_.stop();
  start_next();
}

void Dialer::fail(const Error &err) {
  if (done_) return;
  done_ = true;
  stagger_.stop();
  auto cb = std::move(done_cb_);
  done_cb_ = nullptr;
  cb(err, nullptr);
}

void Dialer::abandon_all(const Error &why, std::size_t except) {
  for (std::size_t i = 0; i < attempts_.size(); ++i) {
    auto &c = attempts_[i];
    if (i == except || !c) continue;
    // Connected with its callback still queued is possible: close, not skip.
    c->connect_cb = nullptr;
    shut_connection(c, why);
  }
  attempts_.clear();
}

std::shared_ptr<ConnectionImpl> Dialer::latest() const {
  for (auto it = attempts_.rbegin(); it != attempts_.rend(); ++it)
    if (*it && !(*it)->is_closed()) return *it;
  return nullptr;
}

void Dialer::cancel(const Error &why) {
  if (dns_ != nullptr) uv_cancel(reinterpret_cast<uv_req_t *>(dns_));
  if (done_) return;
  done_ = true;
  stagger_.stop();
  done_cb_ = nullptr;
  abandon_all(why, static_cast<std::size_t>(-1));
}

}  // namespace uvwt::detail
