// Stream preamble parser: the first input byte picks the stream kind, the
// rest is the stream. Every split must route the same way, and the bytes
// handed on (payload, or the replay to nghttp3) must rebuild the stream.

#include "fuzz_support.hpp"
#include "h3/stream_preamble.hpp"
#include "h3/wt_codes.hpp"

using namespace uvwt::detail;

namespace {

struct Routed {
  PreambleState state = PreambleState::need_more;
  std::uint64_t session = 0, first = 0, error_code = 0;
  std::size_t header_len = 0;
  std::vector<std::uint8_t> preamble, rest;
};

Routed route(bool bidi, bool wt_only, std::span<const std::uint8_t> in, const std::vector<std::size_t> &cuts) {
  StreamPreambleParser p(bidi, wt_only);
  Routed r;
  uvwt_fuzz::for_pieces(in, cuts, [&](std::span<const std::uint8_t> piece) {
    if (r.state != PreambleState::need_more) {
      if (r.state != PreambleState::error) r.rest.insert(r.rest.end(), piece.begin(), piece.end());
      FUZZ_CHECK(p.feed(piece).consumed == 0);
      return;
    }
    const auto res = p.feed(piece);
    r.state = res.state;
    FUZZ_CHECK(p.held().size() <= 16);
    switch (res.state) {
      case PreambleState::need_more:
        FUZZ_CHECK(res.consumed == piece.size());
        break;
      case PreambleState::webtransport:
        FUZZ_CHECK(res.consumed <= piece.size());
        r.session = p.session_id();
        r.header_len = p.header_len();
        FUZZ_CHECK(r.session % 4 == 0 && p.held().size() == r.header_len);
        r.preamble.assign(p.held().begin(), p.held().end());
        r.rest.assign(piece.begin() + static_cast<std::ptrdiff_t>(res.consumed), piece.end());
        break;
      case PreambleState::http3:
        FUZZ_CHECK(res.consumed == 0);
        r.rest.assign(p.held().begin(), p.held().end());
        r.rest.insert(r.rest.end(), piece.begin(), piece.end());
        break;
      case PreambleState::error:
        r.error_code = res.error_code;
        FUZZ_CHECK(r.error_code == kH3IdError || r.error_code == kH3StreamCreationError);
        break;
    }
    if (res.state != PreambleState::need_more) r.first = p.first_varint();
  });
  return r;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t *data, std::size_t size) {
  if (size == 0) return 0;
  const bool bidi = (data[0] & 1) != 0;
  const bool wt_only = bidi && (data[0] & 2) != 0;
  const std::span<const std::uint8_t> in(data + 1, size - 1);

  const Routed whole = route(bidi, wt_only, in, {});
  std::vector<std::size_t> bytewise;
  for (std::size_t i = 1; i < in.size() && i < 64; ++i) bytewise.push_back(i);
  for (const Routed &r : {route(bidi, wt_only, in, uvwt_fuzz::cuts_for(in, 2)), route(bidi, wt_only, in, bytewise)}) {
    FUZZ_CHECK(r.state == whole.state);
    FUZZ_CHECK(r.session == whole.session && r.header_len == whole.header_len);
    FUZZ_CHECK(r.error_code == whole.error_code);
    FUZZ_CHECK(r.preamble == whole.preamble && r.rest == whole.rest);
  }
  if (whole.state == PreambleState::webtransport) {
    std::vector<std::uint8_t> rebuilt = whole.preamble;
    rebuilt.insert(rebuilt.end(), whole.rest.begin(), whole.rest.end());
    FUZZ_CHECK(rebuilt == std::vector<std::uint8_t>(in.begin(), in.end()));
    std::uint8_t buf[kWtPreambleMaxSize];
    const std::size_t n =
        bidi ? encode_wt_bidi_preamble(whole.session, buf) : encode_wt_uni_preamble(whole.session, buf);
    StreamPreambleParser p(bidi);
    const auto res = p.feed({buf, n});
    FUZZ_CHECK(res.state == PreambleState::webtransport && res.consumed == n && p.session_id() == whole.session);
  } else if (whole.state == PreambleState::http3) {
    FUZZ_CHECK(whole.rest == std::vector<std::uint8_t>(in.begin(), in.end()));
    FUZZ_CHECK(whole.first != (bidi ? kFrameWebtransportStream : kStreamTypeWebtransport));
  } else if (whole.state == PreambleState::need_more) {
    FUZZ_CHECK(in.size() < 16);
  }
  return 0;
}

namespace uvwt_fuzz {
std::vector<std::vector<std::uint8_t>> seeds() {
  std::vector<std::vector<std::uint8_t>> s;
  for (std::uint8_t kind : {0, 1, 3}) {
    for (std::uint64_t session : {0ull, 4ull, 1024ull, 1ull << 40, 6ull}) {
      std::vector<std::uint8_t> b(1 + kWtPreambleMaxSize);
      b[0] = kind;
      const std::size_t n =
          (kind & 1) ? encode_wt_bidi_preamble(session, b.data() + 1) : encode_wt_uni_preamble(session, b.data() + 1);
      b.resize(1 + n);
      b.insert(b.end(), {'d', 'a', 't', 'a'});
      s.push_back(b);
    }
  }
  s.push_back({0, 0x00, 0x04, 0x00});     // control stream
  s.push_back({0, 0x02});                 // QPACK encoder
  s.push_back({1, 0x01, 0x03, 1, 2, 3});  // request HEADERS
  s.push_back({3, 0x01, 0x03, 1, 2, 3});  // HEADERS on a server-initiated bidi stream
  return s;
}
}  // namespace uvwt_fuzz
