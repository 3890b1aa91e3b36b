// QUIC-LB connection ids against draft-ietf-quic-load-balancers-19,
// Appendix B (test vectors), and the reuseport steering program.
#include <linux/filter.h>

#include <cstring>
#include <vector>

#include "catch.hpp"
#include "quic/quic_lb_cid.hpp"
#include "quic/reuseport_steering.hpp"

using uvwt::Bytes;
using uvwt::QuicLbConfig;
using uvwt::WorkerConfig;
using uvwt::detail::CidFactory;

namespace {
// Appendix B: the server id and key every vector uses (prefixes of the id).
const Bytes kServerId{0xed, 0x79, 0x3a, 0x51, 0xd4, 0x9b, 0x8f, 0x5f, 0xab, 0x65, 0xba, 0x04, 0xc3, 0x33, 0x0a};
const Bytes kKey{0x8f, 0x95, 0xf0, 0x92, 0x45, 0x76, 0x5f, 0x80, 0x25, 0x69, 0x34, 0xe5, 0x0c, 0x66, 0x20, 0x7f};

std::shared_ptr<const CidFactory> factory(std::uint8_t cr, std::size_t sid_len, std::size_t nonce_len, Bytes key,
                                          WorkerConfig w = {}) {
  QuicLbConfig lb;
  lb.config_id = cr;
  lb.server_id.assign(kServerId.begin(), kServerId.begin() + static_cast<std::ptrdiff_t>(sid_len));
  lb.nonce_len = nonce_len;
  lb.key = std::move(key);
  uvwt::Error err;
  auto f = CidFactory::create(lb, w, err);
  REQUIRE(f);
  return f;
}

Bytes encode(const CidFactory &f, const Bytes &nonce) {
  Bytes out(f.length());
  f.encode(nonce, out);
  return out;
}
}  // namespace

TEST_CASE("QUIC-LB plaintext ids match the draft's vectors", "[quic][quic_lb]") {
  // Section 4.3 with no key: first octet, then the server id in clear, then
  // the nonce. Vectors: "cr_bits 0 sid_len 3 nonce_len 4" and "cr 1, 8, 5".
  auto f = factory(0, 3, 4, {});
  CHECK(encode(*f, {0x80, 0x49, 0x71, 0x8a}) == Bytes{0x07, 0xed, 0x79, 0x3a, 0x80, 0x49, 0x71, 0x8a});
  auto g = factory(1, 8, 5, {});
  CHECK(encode(*g, {0xee, 0x15, 0xda, 0x27, 0xc4}) ==
        Bytes{0x2d, 0xed, 0x79, 0x3a, 0x51, 0xd4, 0x9b, 0x8f, 0x5f, 0xee, 0x15, 0xda, 0x27, 0xc4});
  Bytes sid;
  REQUIRE(g->decode_server_id(encode(*g, {1, 2, 3, 4, 5}), sid));
  CHECK(sid == Bytes(kServerId.begin(), kServerId.begin() + 8));
}

TEST_CASE("QUIC-LB single-pass encrypted ids match the draft's vector", "[quic][quic_lb]") {
  // Section 4.3.1: server id (8) + nonce (8) is one AES-128-ECB block.
  auto f = factory(2, 8, 8, kKey);
  const Bytes cid = encode(*f, {0xee, 0x08, 0x0d, 0xbf, 0x48, 0xc0, 0xd1, 0xe5});
  CHECK(cid ==
        Bytes{0x50, 0x4d, 0xd2, 0xd0, 0x5a, 0x7b, 0x0d, 0xe9, 0xb2, 0xb9, 0x90, 0x7a, 0xfb, 0x5e, 0xcf, 0x8c, 0xc3});
  Bytes sid;
  REQUIRE(f->decode_server_id(cid, sid));
  CHECK(sid == Bytes(kServerId.begin(), kServerId.begin() + 8));
  // Section 3.1: other config rotation bits are not routable with this config.
  Bytes other = cid;
  other[0] = static_cast<std::uint8_t>((other[0] & 0x1f) | (1 << 5));
  CHECK_FALSE(f->decode_server_id(other, sid));
}

TEST_CASE("every issued id carries the server id and the worker byte", "[quic][quic_lb]") {
  WorkerConfig w;
  w.worker_count = 3;
  w.worker_id = 2;
  auto f = factory(0, 2, 6, {}, w);
  REQUIRE(f->length() == 1 + 2 + 6 + 1);
  std::vector<int> seen(256, 0);
  for (int i = 0; i < 500; ++i) {
    ngtcp2_cid cid;
    f->make(cid);
    REQUIRE(cid.datalen == f->length());
    CHECK(cid.data[0] == f->length() - 1);  // cr 0, length self-description
    Bytes sid;
    REQUIRE(f->decode_server_id(std::span<const std::uint8_t>(cid.data, cid.datalen), sid));
    CHECK(sid == Bytes{0xed, 0x79});
    CHECK(cid.data[f->steering_offset()] % 3 == 2);
    seen[cid.data[f->steering_offset()]] = 1;
  }
  // The worker byte varies (it is not the bare worker id).
  int distinct = 0;
  for (int v : seen) distinct += v;
  CHECK(distinct > 20);
}

TEST_CASE("QuicLbConfig validation names the bad field", "[quic][quic_lb]") {
  uvwt::ServerConfig c;
  c.cert_pem = c.key_pem = "x";
  c.quic_lb.server_id = {1, 2};
  c.quic_lb.key = Bytes(16, 1);
  c.quic_lb.nonce_len = 8;  // 2 + 8 != 16: single pass impossible
  CHECK(c.validate().message.find("quic_lb.key") != std::string::npos);
  c.quic_lb.nonce_len = 14;
  CHECK_FALSE(c.validate());
  c.quic_lb.config_id = 7;
  CHECK(c.validate().message.find("quic_lb.config_id") != std::string::npos);
}

namespace {
// A tiny classic-BPF interpreter for the instructions the program uses, so
// the steering decisions are checked without a kernel.
std::uint32_t run(const std::vector<sock_filter> &prog, const Bytes &pkt) {
  std::uint32_t a = 0;
  for (std::size_t pc = 0; pc < prog.size(); ++pc) {
    const auto &i = prog[pc];
    switch (i.code) {
      case BPF_LD | BPF_B | BPF_ABS:
        if (i.k >= pkt.size()) return 0;
        a = pkt[i.k];
        break;
      case BPF_ALU | BPF_MOD | BPF_K:
        a %= i.k;
        break;
      case BPF_ALU | BPF_AND | BPF_K:
        a &= i.k;
        break;
      case BPF_JMP | BPF_JSET | BPF_K:
        pc += (a & i.k) ? i.jt : i.jf;
        break;
      case BPF_JMP | BPF_JEQ | BPF_K:
        pc += (a == i.k) ? i.jt : i.jf;
        break;
      case BPF_RET | BPF_A:
        return a;
      case BPF_RET | BPF_K:
        return i.k;
      default:
        FAIL("unexpected instruction");
        return 0;
    }
  }
  FAIL("fell off the program");
  return 0;
}
}  // namespace

TEST_CASE("the reuseport program steers by our ids and hashes Initials", "[quic][quic_lb][steering]") {
  const std::size_t len = 10, off = 9;
  const auto prog = uvwt::detail::steering_program(len, off, 2);
  Bytes shorthdr(40, 0);
  shorthdr[0] = 0x40;  // RFC 9000 17.3.1: header form 0, fixed bit 1
  shorthdr[1 + off] = 0x37;
  CHECK(run(prog, shorthdr) == 1);
  shorthdr[1 + off] = 0x36;
  CHECK(run(prog, shorthdr) == 0);
  Bytes hs(60, 0);
  hs[0] = 0xe0;  // 17.2.4: long header, type 2 (Handshake)
  hs[5] = static_cast<std::uint8_t>(len);
  hs[6 + off] = 0x05;
  CHECK(run(prog, hs) == 1);
  hs[5] = 18;  // a DCID of another length is not ours: hash
  CHECK(run(prog, hs) == 0xffffffffu);
  Bytes initial = hs;
  initial[0] = 0xc0;  // 17.2.2: type 0 (Initial)
  initial[5] = static_cast<std::uint8_t>(len);
  CHECK(run(prog, initial) == 0xffffffffu);
  initial[0] = 0xd0;  // 17.2.3: 0-RTT
  CHECK(run(prog, initial) == 0xffffffffu);
}
