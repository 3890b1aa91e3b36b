#include "quic/quic_lb_cid.hpp"

#include "quic/connection_id.hpp"

#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>

#include <array>
#include <cstring>

namespace uvwt::detail {

namespace {
constexpr std::size_t kBlock = 16;

void fill_random(std::uint8_t *dest, std::size_t len) { gnutls_rnd(GNUTLS_RND_NONCE, dest, len); }

// A random byte congruent to `id` modulo `count`: the balancer-invisible
// worker byte looks like noise (exactly uniform for a power-of-two count).
std::uint8_t steering_byte(std::uint8_t id, std::uint8_t count) {
  std::uint8_t r;
  fill_random(&r, 1);
  int v = r - r % count + id;
  if (v > 255) v -= count;
  return static_cast<std::uint8_t>(v);
}
}  // namespace

std::shared_ptr<const CidFactory> CidFactory::create(const QuicLbConfig &lb, const WorkerConfig &worker, Error &err) {
  auto f = std::make_shared<CidFactory>();
  f->lb_ = lb;
  f->workers_ = worker.worker_count;
  f->worker_id_ = worker.worker_id;
  const std::size_t extra = worker.worker_count > 1 ? 1 : 0;
  f->len_ = lb.enabled() ? 1 + lb.server_id.size() + lb.nonce_len + extra : kCidLen;
  if (lb.enabled() && !lb.key.empty()) {
    // AES-128-ECB of one block is CBC with a zero IV, reset before every use.
    gnutls_cipher_hd_t h = nullptr;
    gnutls_datum_t key{const_cast<std::uint8_t *>(lb.key.data()), static_cast<unsigned>(lb.key.size())};
    std::array<std::uint8_t, kBlock> iv{};
    gnutls_datum_t ivd{iv.data(), kBlock};
    if (const int rv = gnutls_cipher_init(&h, GNUTLS_CIPHER_AES_128_CBC, &key, &ivd); rv < 0) {
      err = Error(Errc::configuration, std::string("quic_lb.key: AES-128 unavailable: ") + gnutls_strerror(rv));
      return nullptr;
    }
    f->cipher_ = h;
  }
  return f;
}

CidFactory::~CidFactory() {
  if (cipher_ != nullptr) gnutls_cipher_deinit(static_cast<gnutls_cipher_hd_t>(cipher_));
}

bool CidFactory::aes_block(const std::uint8_t *in, std::uint8_t *out, bool decrypt) const {
  auto h = static_cast<gnutls_cipher_hd_t>(cipher_);
  std::array<std::uint8_t, kBlock> iv{};
  gnutls_cipher_set_iv(h, iv.data(), kBlock);
  const int rv =
      decrypt ? gnutls_cipher_decrypt2(h, in, kBlock, out, kBlock) : gnutls_cipher_encrypt2(h, in, kBlock, out, kBlock);
  return rv >= 0;
}

void CidFactory::encode(std::span<const std::uint8_t> nonce, std::span<std::uint8_t> out) const {
  // Section 2.4: config rotation in the top three bits, the id's length
  // after the first octet in the low five (length self-description).
  out[0] = static_cast<std::uint8_t>((lb_.config_id << 5) | ((out.size() - 1) & 0x1f));
  std::uint8_t *body = out.data() + 1;
  std::memcpy(body, lb_.server_id.data(), lb_.server_id.size());
  std::memcpy(body + lb_.server_id.size(), nonce.data(), lb_.nonce_len);
  // Section 4.3.1: with server id + nonce exactly one block, the block is
  // encrypted in place with AES-128-ECB.
  if (cipher_ != nullptr) aes_block(body, body, false);
}

void CidFactory::make(ngtcp2_cid &out) const {
  out.datalen = len_;
  if (!lb_.enabled()) {
    fill_random(out.data, len_);
  } else {
    std::array<std::uint8_t, NGTCP2_MAX_CIDLEN> nonce{};
    fill_random(nonce.data(), lb_.nonce_len);
    encode(std::span<const std::uint8_t>(nonce.data(), lb_.nonce_len), std::span<std::uint8_t>(out.data, len_));
  }
  if (workers_ > 1) out.data[steering_offset()] = steering_byte(worker_id_, workers_);
}

bool CidFactory::decode_server_id(std::span<const std::uint8_t> cid, Bytes &server_id) const {
  const std::size_t sid_len = lb_.server_id.size();
  // Section 3.1: other rotation bits or a short id are unroutable.
  if (!lb_.enabled() || cid.size() < 1 + sid_len + lb_.nonce_len || (cid[0] >> 5) != lb_.config_id) return false;
  std::array<std::uint8_t, kBlock> plain{};
  const std::uint8_t *body = cid.data() + 1;
  if (cipher_ != nullptr) {
    if (!aes_block(body, plain.data(), true)) return false;
    body = plain.data();
  }
  server_id.assign(body, body + sid_len);
  return true;
}

}  // namespace uvwt::detail
