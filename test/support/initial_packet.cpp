#include "support/initial_packet.hpp"

#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>

#include <cstring>
#include <string>
#include <utility>

namespace uvwt::test {

namespace {

// RFC 9001 section 5.2.
constexpr std::uint8_t kInitialSaltV1[] = {0x38, 0x76, 0x2c, 0xf7, 0xf5, 0x59, 0x34, 0xb3, 0x4d, 0x17,
                                           0x9a, 0xe6, 0xa4, 0xc8, 0x0c, 0xad, 0xcc, 0xbb, 0x7f, 0x0a};

gnutls_datum_t datum(const void *p, std::size_t n) {
  return {const_cast<unsigned char *>(static_cast<const unsigned char *>(p)), static_cast<unsigned>(n)};
}

// HKDF-Expand-Label (RFC 8446 section 7.1) with an empty context.
void expand_label(const std::uint8_t *secret, const std::string &label, std::uint8_t *out, std::size_t len) {
  const std::string full = "tls13 " + label;
  std::vector<std::uint8_t> info = {static_cast<std::uint8_t>(len >> 8), static_cast<std::uint8_t>(len),
                                    static_cast<std::uint8_t>(full.size())};
  info.insert(info.end(), full.begin(), full.end());
  info.push_back(0);
  const gnutls_datum_t k = datum(secret, 32), i = datum(info.data(), info.size());
  gnutls_hkdf_expand(GNUTLS_MAC_SHA256, &k, &i, out, len);
}

// AES-128 of one block (the header protection mask, RFC 9001 section 5.4.3):
// CBC with a zero IV over a single block is ECB.
void aes_block(const std::uint8_t *key, const std::uint8_t *in, std::uint8_t *out) {
  std::uint8_t zero[16] = {};
  const gnutls_datum_t k = datum(key, 16), iv = datum(zero, 16);
  gnutls_cipher_hd_t h;
  gnutls_cipher_init(&h, GNUTLS_CIPHER_AES_128_CBC, &k, &iv);
  gnutls_cipher_encrypt2(h, in, 16, out, 16);
  gnutls_cipher_deinit(h);
}

void nonce_for(const InitialKeys &k, std::uint64_t pn, std::uint8_t *nonce) {
  std::memcpy(nonce, k.iv, 12);
  for (int i = 0; i < 8; ++i) nonce[11 - i] ^= static_cast<std::uint8_t>(pn >> (8 * i));
}

std::size_t read_varint(std::span<const std::uint8_t> in, std::size_t &at, bool &ok) {
  if (at >= in.size()) {
    ok = false;
    return 0;
  }
  const std::size_t n = std::size_t{1} << (in[at] >> 6);
  if (at + n > in.size()) {
    ok = false;
    return 0;
  }
  std::size_t v = in[at] & 0x3f;
  for (std::size_t i = 1; i < n; ++i) v = v << 8 | in[at + i];
  at += n;
  return v;
}

// Seals `plain` after the header in `pkt` (which ends with the 4-byte packet
// number at `pn_offset`) and applies header protection (RFC 9001 sections
// 5.3 and 5.4): the first byte's low bits are masked as `first_mask` says
// (0x0f long header, 0x1f short header).
void protect(std::vector<std::uint8_t> &pkt, std::size_t pn_offset, std::uint64_t pn,
             std::span<const std::uint8_t> plain, const InitialKeys &k, std::uint8_t first_mask = 0x0f) {
  std::uint8_t nonce[12];
  nonce_for(k, pn, nonce);
  gnutls_aead_cipher_hd_t aead;
  const gnutls_datum_t key = datum(k.key, 16);
  gnutls_aead_cipher_init(&aead, GNUTLS_CIPHER_AES_128_GCM, &key);
  std::vector<std::uint8_t> sealed(plain.size() + 16);
  std::size_t sealed_len = sealed.size();
  gnutls_aead_cipher_encrypt(aead, nonce, 12, pkt.data(), pkt.size(), 16, plain.data(), plain.size(), sealed.data(),
                             &sealed_len);
  gnutls_aead_cipher_deinit(aead);
  pkt.insert(pkt.end(), sealed.begin(), sealed.begin() + static_cast<std::ptrdiff_t>(sealed_len));

  std::uint8_t mask[16];
  aes_block(k.hp, pkt.data() + pn_offset + 4, mask);  // sample: 4 bytes after the packet number starts
  pkt[0] ^= mask[0] & first_mask;
  for (int i = 0; i < 4; ++i) pkt[pn_offset + static_cast<std::size_t>(i)] ^= mask[1 + i];
}

}  // namespace

InitialKeys initial_keys(std::span<const std::uint8_t> dcid, bool client) {
  std::uint8_t initial[32], secret[32];
  const gnutls_datum_t ikm = datum(dcid.data(), dcid.size()), salt = datum(kInitialSaltV1, sizeof kInitialSaltV1);
  gnutls_hkdf_extract(GNUTLS_MAC_SHA256, &ikm, &salt, initial);
  expand_label(initial, client ? "client in" : "server in", secret, 32);
  InitialKeys k{};
  expand_label(secret, "quic key", k.key, 16);
  expand_label(secret, "quic iv", k.iv, 12);
  expand_label(secret, "quic hp", k.hp, 16);
  return k;
}

std::vector<std::uint8_t> seal_client_initial(std::span<const std::uint8_t> dcid, std::span<const std::uint8_t> scid,
                                              std::uint32_t pn, std::span<const std::uint8_t> frames,
                                              std::size_t min_size) {
  std::vector<std::uint8_t> pkt = {0xc3, 0x00, 0x00, 0x00, 0x01};  // Initial, 4-byte packet number, QUIC v1
  pkt.push_back(static_cast<std::uint8_t>(dcid.size()));
  pkt.insert(pkt.end(), dcid.begin(), dcid.end());
  pkt.push_back(static_cast<std::uint8_t>(scid.size()));
  pkt.insert(pkt.end(), scid.begin(), scid.end());
  pkt.push_back(0x00);  // no token
  const std::size_t header_len = pkt.size() + 2 + 4;
  std::vector<std::uint8_t> plain(frames.begin(), frames.end());
  if (header_len + plain.size() + 16 < min_size) plain.resize(min_size - header_len - 16, 0x00);
  const std::size_t length = 4 + plain.size() + 16;  // packet number + payload + AEAD tag
  pkt.push_back(static_cast<std::uint8_t>(0x40 | ((length >> 8) & 0x3f)));
  pkt.push_back(static_cast<std::uint8_t>(length));
  const std::size_t pn_offset = pkt.size();
  for (int i = 3; i >= 0; --i) pkt.push_back(static_cast<std::uint8_t>(pn >> (8 * i)));

  protect(pkt, pn_offset, pn, plain, initial_keys(dcid, true));
  return pkt;
}

PacketKeys keys_from_traffic_secret(std::span<const std::uint8_t, 32> secret) {
  PacketKeys k{};
  expand_label(secret.data(), "quic key", k.key, 16);
  expand_label(secret.data(), "quic iv", k.iv, 12);
  expand_label(secret.data(), "quic hp", k.hp, 16);
  return k;
}

std::vector<std::uint8_t> seal_short_packet(std::span<const std::uint8_t> dcid, std::uint32_t pn,
                                            std::span<const std::uint8_t> frames, const PacketKeys &keys) {
  std::vector<std::uint8_t> pkt = {0x43};  // fixed bit, spin 0, key phase 0, 4-byte packet number
  pkt.insert(pkt.end(), dcid.begin(), dcid.end());
  const std::size_t pn_offset = pkt.size();
  for (int i = 3; i >= 0; --i) pkt.push_back(static_cast<std::uint8_t>(pn >> (8 * i)));
  std::vector<std::uint8_t> plain(frames.begin(), frames.end());
  if (plain.size() < 4) plain.resize(4, 0x00);
  protect(pkt, pn_offset, pn, plain, keys, 0x1f);
  return pkt;
}

std::optional<OpenedInitial> open_client_initial(std::span<const std::uint8_t> d) {
  if (d.size() < 7 || (d[0] & 0xf0) != 0xc0) return std::nullopt;  // long header, Initial
  std::size_t at = 5;
  const std::size_t dcid_len = d[at++];
  if (at + dcid_len + 1 > d.size()) return std::nullopt;
  const auto dcid = d.subspan(at, dcid_len);
  at += dcid_len;
  const std::size_t scid_len = d[at++];
  if (at + scid_len > d.size()) return std::nullopt;
  const auto scid = d.subspan(at, scid_len);
  at += scid_len;
  bool ok = true;
  at += read_varint(d, at, ok);  // token
  const std::size_t length = read_varint(d, at, ok);
  if (!ok || at + length > d.size() || length < 20) return std::nullopt;
  const std::size_t pn_offset = at;

  const InitialKeys k = initial_keys(dcid, true);
  std::vector<std::uint8_t> pkt(d.begin(), d.begin() + static_cast<std::ptrdiff_t>(pn_offset + length));
  std::uint8_t mask[16];
  aes_block(k.hp, pkt.data() + pn_offset + 4, mask);
  pkt[0] ^= mask[0] & 0x0f;
  const std::size_t pn_len = (pkt[0] & 3u) + 1;
  std::uint64_t pn = 0;
  for (std::size_t i = 0; i < pn_len; ++i) {
    pkt[pn_offset + i] ^= mask[1 + i];
    pn = pn << 8 | pkt[pn_offset + i];
  }
  std::uint8_t nonce[12];
  nonce_for(k, pn, nonce);
  const std::size_t ct_at = pn_offset + pn_len;
  std::vector<std::uint8_t> plain(pkt.size() - ct_at);
  std::size_t plain_len = plain.size();
  gnutls_aead_cipher_hd_t aead;
  const gnutls_datum_t key = datum(k.key, 16);
  gnutls_aead_cipher_init(&aead, GNUTLS_CIPHER_AES_128_GCM, &key);
  const int rv = gnutls_aead_cipher_decrypt(aead, nonce, 12, pkt.data(), ct_at, 16, pkt.data() + ct_at,
                                            pkt.size() - ct_at, plain.data(), &plain_len);
  gnutls_aead_cipher_deinit(aead);
  if (rv != 0) return std::nullopt;
  plain.resize(plain_len);
  return OpenedInitial{{dcid.begin(), dcid.end()}, {scid.begin(), scid.end()}, std::move(plain)};
}

}  // namespace uvwt::test
