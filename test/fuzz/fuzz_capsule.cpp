// Capsule parser: the same capsules and verdict whatever the split; known
// capsules decode and re-encode; close reasons are always valid UTF-8.

#include <string>
#include <string_view>

#include "fuzz_support.hpp"
#include "h3/capsule.hpp"

using namespace uvwt::detail;

namespace {

struct Run {
  std::vector<std::pair<std::uint64_t, std::vector<std::uint8_t>>> capsules;
  bool failed = false;
  bool at_boundary = false;
};

Run parse(std::span<const std::uint8_t> in, const std::vector<std::size_t> &cuts) {
  CapsuleParser p;
  Run run;
  uvwt_fuzz::for_pieces(in, cuts, [&](std::span<const std::uint8_t> piece) {
    if (run.failed) return;
    const uvwt::Error err = p.feed(piece, [&](std::uint64_t type, std::span<const std::uint8_t> value) {
      FUZZ_CHECK(is_known_capsule(type));
      FUZZ_CHECK(value.size() <= kCapsuleKnownValueMax);
      run.capsules.emplace_back(type, std::vector<std::uint8_t>(value.begin(), value.end()));
    });
    if (err) {
      FUZZ_CHECK(err.errc == uvwt::Errc::protocol && err.code == kH3MessageError);
      run.failed = true;
    }
  });
  run.at_boundary = p.at_boundary();
  const uvwt::Error fin = p.finish();
  FUZZ_CHECK(fin.ok() == (!run.failed && run.at_boundary));
  return run;
}

void check_capsule(std::uint64_t type, const std::vector<std::uint8_t> &value) {
  std::uint8_t buf[capsule_max_size];
  if (type == kCapsuleCloseSession) {
    CloseSession cs;
    FUZZ_CHECK(decode_close_session(value, cs));
    FUZZ_CHECK(utf8_valid(cs.reason));
    const std::size_t n = encode_close_session(cs.code, cs.reason, buf, sizeof buf);
    FUZZ_CHECK(n > 0);
    CapsuleParser p;
    std::span<const std::uint8_t> in(buf, n);
    Capsule c{};
    FUZZ_CHECK(p.next(in, c) == CapsuleParser::Step::capsule);
    FUZZ_CHECK(c.type == type && std::vector<std::uint8_t>(c.value.begin(), c.value.end()) == value);
  } else if (type == kCapsuleDrainSession) {
    FUZZ_CHECK(value.empty());
  } else {
    const auto v = decode_capsule_varint(value);
    FUZZ_CHECK(v.has_value());
    std::size_t n = 0;
    switch (type) {
      case kCapsuleMaxData:
        n = encode_max_data(*v, buf, sizeof buf);
        break;
      case kCapsuleDataBlocked:
        n = encode_data_blocked(*v, buf, sizeof buf);
        break;
      case kCapsuleMaxStreamsBidi:
        n = encode_max_streams(true, *v, buf, sizeof buf);
        break;
      case kCapsuleMaxStreamsUni:
        n = encode_max_streams(false, *v, buf, sizeof buf);
        break;
      case kCapsuleStreamsBlockedBidi:
        n = encode_streams_blocked(true, *v, buf, sizeof buf);
        break;
      case kCapsuleStreamsBlockedUni:
        n = encode_streams_blocked(false, *v, buf, sizeof buf);
        break;
      default:
        FUZZ_CHECK(false);
    }
    FUZZ_CHECK(n > 0);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t *data, std::size_t size) {
  const std::span<const std::uint8_t> in(data, size);
  const Run whole = parse(in, {});
  const Run split = parse(in, uvwt_fuzz::cuts_for(in, 1));
  std::vector<std::size_t> bytewise;
  for (std::size_t i = 1; i < size && size <= 512; ++i) bytewise.push_back(i);
  const Run bytes = parse(in, bytewise);
  for (const Run *r : {&split, &bytes}) {
    FUZZ_CHECK(r->capsules == whole.capsules);
    FUZZ_CHECK(r->failed == whole.failed);
    FUZZ_CHECK(r->at_boundary == whole.at_boundary);
  }
  for (const auto &[type, value] : whole.capsules) check_capsule(type, value);

  // Any bytes as a close reason: cut to valid UTF-8, at most 1024 bytes.
  const std::string_view reason(reinterpret_cast<const char *>(data), size);
  std::uint8_t buf[capsule_max_size];
  const std::size_t n = encode_close_session(7, reason, buf, sizeof buf);
  FUZZ_CHECK(n > 0);
  const std::size_t keep = utf8_valid_prefix(reason, kCloseReasonMax);
  FUZZ_CHECK(keep <= kCloseReasonMax && utf8_valid(reason.substr(0, keep)));
  CapsuleParser p;
  std::span<const std::uint8_t> enc(buf, n);
  Capsule c{};
  FUZZ_CHECK(p.next(enc, c) == CapsuleParser::Step::capsule);
  CloseSession cs;
  FUZZ_CHECK(decode_close_session(c.value, cs) && cs.code == 7 && cs.reason == reason.substr(0, keep));
  return 0;
}

namespace uvwt_fuzz {
std::vector<std::vector<std::uint8_t>> seeds() {
  std::vector<std::vector<std::uint8_t>> s;
  std::uint8_t buf[capsule_max_size];
  auto add = [&](std::size_t n) { s.emplace_back(buf, buf + n); };
  add(encode_close_session(0x10, "closing \xe2\x82\xac", buf, sizeof buf));
  add(encode_close_session(0, "", buf, sizeof buf));
  add(encode_drain_session(buf, sizeof buf));
  add(encode_max_data(1 << 20, buf, sizeof buf));
  add(encode_max_streams(true, 100, buf, sizeof buf));
  add(encode_max_streams(false, kMaxStreamsLimit, buf, sizeof buf));
  add(encode_data_blocked(12345, buf, sizeof buf));
  add(encode_streams_blocked(true, 3, buf, sizeof buf));
  add(encode_streams_blocked(false, 4, buf, sizeof buf));
  // An unknown capsule followed by a known one.
  std::vector<std::uint8_t> mixed = {0x80, 0xab, 0xcd, 0xef, 0x05, 1, 2, 3, 4, 5};
  mixed.insert(mixed.end(), buf, buf + encode_drain_session(buf, sizeof buf));
  s.push_back(mixed);
  // Everything in one stream.
  std::vector<std::uint8_t> all;
  for (const auto &x : s) all.insert(all.end(), x.begin(), x.end());
  s.push_back(all);
  return s;
}
}  // namespace uvwt_fuzz
