#pragma once
// A hostile peer for the handshake limits: many real QUIC client handshakes
// (decryptable Initials with a ClientHello, each with its own connection ids)
// from one UDP socket, whose answers are never heard. Built from the
// library's internal QUIC layer with a do-nothing application on top.

#include <memory>
#include <string>
#include <vector>

#include "catch.hpp"
#include "quic/endpoint.hpp"
#include "quic/quic_app.hpp"
#include "quic/quic_connection.hpp"
#include "quic/null_quic_app.hpp"
#include "quic/tls_context.hpp"
#include "support/fixture.hpp"

namespace uvwt::test {

class InitialFlood {
 public:
  // `mute_after_first`: after its first flight a handshake sends nothing
  // more (it stalls); otherwise it keeps retransmitting its Initial.
  InitialFlood(TestLoop &tl, const std::string &host, std::uint16_t port, bool mute_after_first = false)
      : tl_(tl), mute_(mute_after_first) {
    cfg_.handshake_timeout = std::chrono::milliseconds(60'000);
    cfg_.idle_timeout = std::chrono::milliseconds(60'000);
    ep_ = std::make_unique<detail::Endpoint>(std::make_shared<detail::Deferred>(&tl.loop), cfg_);
    auto remote = detail::SockAddr::parse(host, port);
    REQUIRE(remote);
    remote_ = *remote;
    REQUIRE(ep_->bind(detail::SockAddr::any(remote_.family(), 0), &sock_).ok());
    detail::TlsClientOptions o;
    o.verify_peer = false;
    Error err;
    tls_ = detail::TlsClientContext::create(o, err);
    REQUIRE(err.ok());
    ImpairmentConfig deaf;
    deaf.enabled = true;
    deaf.receive_blackhole = true;
    ep_->set_impairment(deaf);
  }
  ~InitialFlood() { close(); }

  // Starts `n` handshakes, each sending its first Initial now.
  void start(std::size_t n) {
    for (std::size_t i = 0; i < n; ++i) {
      Error err;
      auto q = detail::QuicConnection::create_client(*ep_, *sock_, sock_->local_addr(), remote_, *tls_, "localhost",
                                                     cfg_, app_, err);
      REQUIRE(q);
      q->write_now();
      conns_.push_back(std::move(q));
    }
    if (mute_) {
      ImpairmentConfig all;
      all.enabled = true;
      all.blackhole = true;
      ep_->set_impairment(all);
    }
  }
  [[nodiscard]] std::size_t local_port() const { return sock_->local_addr().port(); }

  void close() {
    if (!ep_) return;
    conns_.clear();
    bool done = false;
    ep_->close([&] { done = true; });
    tl_.run_until([&] { return done; }, 5'000);
    ep_.reset();
  }

 private:
  TestLoop &tl_;
  bool mute_;
  TransportConfig cfg_;
  std::unique_ptr<detail::Endpoint> ep_;
  detail::UdpSocket *sock_ = nullptr;
  detail::SockAddr remote_;
  std::shared_ptr<detail::TlsClientContext> tls_;
  detail::NullQuicApp app_;
  std::vector<std::unique_ptr<detail::QuicConnection>> conns_;
};

}  // namespace uvwt::test
