#pragma once

#include <ngtcp2/ngtcp2.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>

#include <uvwt/config.hpp>
#include <uvwt/error.hpp>

namespace uvwt::detail {

// Makes every connection id a server issues (docs/scaling.md, "Connection
// ids"): without QUIC-LB 18 random bytes; with it the encoding of
// draft-ietf-quic-load-balancers-19 Section 4 (first octet, server id, nonce;
// plaintext or AES-128 single-pass). With several workers one more byte
// follows, congruent to the worker id modulo the worker count, which the
// reuseport steering program reads (lib/quic/reuseport_steering.cpp).
class CidFactory {
 public:
  CidFactory() = default;  // random ids, no workers
  static std::shared_ptr<const CidFactory> create(const QuicLbConfig &lb, const WorkerConfig &worker, Error &err);
  ~CidFactory();
  CidFactory(const CidFactory &) = delete;
  CidFactory &operator=(const CidFactory &) = delete;

  [[nodiscard]] std::size_t length() const noexcept { return len_; }
  // Offset of the worker byte inside the id; meaningful when workers() > 1.
  [[nodiscard]] std::size_t steering_offset() const noexcept { return len_ - 1; }
  [[nodiscard]] std::uint8_t workers() const noexcept { return workers_; }
  void make(ngtcp2_cid &out) const;

  // What a QUIC-LB balancer does (Section 4.4): the server id in `cid`, or
  // false when the id is not routable with this configuration (other config
  // rotation bits, too short).
  bool decode_server_id(std::span<const std::uint8_t> cid, Bytes &server_id) const;

  // Exposed for the test vectors: encodes with the given nonce instead of a
  // random one (no worker byte).
  void encode(std::span<const std::uint8_t> nonce, std::span<std::uint8_t> out) const;

 private:
  bool aes_block(const std::uint8_t *in, std::uint8_t *out, bool decrypt) const;

  QuicLbConfig lb_;
  std::size_t len_ = 18;
  std::uint8_t workers_ = 1;
  std::uint8_t worker_id_ = 0;
  void *cipher_ = nullptr;  // gnutls_cipher_hd_t for the encrypted mode
};

}  // namespace uvwt::detail
