// Varints, datagram prefixes and the application error code mapping.

#include <cstring>

#include "fuzz_support.hpp"
#include "h3/datagram.hpp"
#include "h3/varint.hpp"
#include "h3/wt_codes.hpp"

using namespace uvwt::detail;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t *data, std::size_t size) {
  const std::span<const std::uint8_t> in(data, size);

  const auto r = varint_read(in);
  FUZZ_CHECK(r.has_value() == (size > 0 && size >= varint_size_from_first(data[0])));
  if (r) {
    FUZZ_CHECK(r->value <= kVarintMax);
    FUZZ_CHECK(r->len >= varint_size(r->value));
    std::uint8_t buf[kVarintMaxSize];
    const auto n = static_cast<std::size_t>(varint_write(buf, r->value) - buf);
    FUZZ_CHECK(n == varint_size(r->value));
    const auto again = varint_read({buf, n});
    FUZZ_CHECK(again && again->value == r->value && again->len == n);
    if (r->len == n) FUZZ_CHECK(std::memcmp(buf, data, n) == 0);
  }

  // The assembler agrees with varint_read, one byte at a time.
  VarintAssembler a;
  std::size_t taken = 0;
  for (std::size_t i = 0; i < size && !a.done(); ++i) taken += a.feed(in.subspan(i, 1));
  FUZZ_CHECK(a.done() == r.has_value());
  if (r) FUZZ_CHECK(a.value() == r->value && taken == r->len);

  const auto d = decode_datagram_prefix(in);
  if (d) {
    FUZZ_CHECK(d->first % 4 == 0);
    FUZZ_CHECK(r && d->second == r->len);
    std::uint8_t buf[kVarintMaxSize];
    const std::size_t n = encode_datagram_prefix(d->first, buf);
    FUZZ_CHECK(n == datagram_prefix_size(d->first));
    const auto back = decode_datagram_prefix({buf, n});
    FUZZ_CHECK(back && back->first == d->first);
  }

  if (size >= 8) {
    std::uint64_t v = 0;
    for (std::size_t i = 0; i < 8; ++i) v = (v << 8) | data[i];
    // Fold into the application range half of the time so that it is hit.
    if (data[0] & 1) v = kWtAppErrorFirst + v % (kWtAppErrorLast - kWtAppErrorFirst + 2);
    const auto app = wt_h3_to_app(v);
    if (app)
      FUZZ_CHECK(wt_app_to_h3(*app) == v);
    else
      FUZZ_CHECK(v < kWtAppErrorFirst || v > kWtAppErrorLast || is_h3_grease(v));
    const auto n = static_cast<std::uint32_t>(v);
    const std::uint64_t h3 = wt_app_to_h3(n);
    FUZZ_CHECK(!is_h3_grease(h3) && wt_h3_to_app(h3) == n);
  }
  return 0;
}

namespace uvwt_fuzz {
std::vector<std::vector<std::uint8_t>> seeds() {
  std::vector<std::vector<std::uint8_t>> s;
  for (std::uint64_t v : {0ull, 37ull, 15293ull, 494878333ull, 151288809941952652ull, 0x52e4a40fa8dbull,
                          0x52e5ac983162ull, 0x52e4a40fa8f9ull}) {
    std::vector<std::uint8_t> b(8);
    b.resize(static_cast<std::size_t>(varint_write(b.data(), v) - b.data()));
    s.push_back(b);
    std::vector<std::uint8_t> raw(8);
    for (int i = 0; i < 8; ++i) raw[static_cast<std::size_t>(i)] = static_cast<std::uint8_t>(v >> (56 - 8 * i));
    s.push_back(raw);
  }
  return s;
}
}  // namespace uvwt_fuzz
