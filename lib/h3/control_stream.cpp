#include "h3/control_stream.hpp"

#include <algorithm>
#include <iterator>

#include "h3/wt_codes.hpp"

namespace uvwt::detail {

namespace {

// Ids whose repetition in one SETTINGS frame we notice (RFC 9114 7.2.4:
// a repeated id is H3_SETTINGS_ERROR). nghttp3 checks the ones it knows.
constexpr std::uint64_t kTrackedIds[] = {
    kSettingsQpackMaxTableCapacity,
    kSettingsMaxFieldSectionSize,
    kSettingsQpackBlockedStreams,
    kSettingsEnableConnectProtocol,
    kSettingsH3Datagram,
    kSettingsH3DatagramDraft04,
    kSettingsEnableWebtransport,
    kSettingsWebtransportMaxSessionsDraft07,
    kSettingsWtMaxSessions,
    kSettingsWtEnabled,
    kSettingsWtInitialMaxData,
    kSettingsWtInitialMaxStreamsUni,
    kSettingsWtInitialMaxStreamsBidi,
};
static_assert(std::size(kTrackedIds) <= 32);

// HTTP/2 setting ids without an HTTP/3 meaning: receiving one is an error.
constexpr bool is_http2_only_setting(std::uint64_t id) noexcept { return id >= 0x02 && id <= 0x05; }

// Frames that must not appear on a control stream (RFC 9114 7.2), including
// the HTTP/2 frame types reserved in HTTP/3.
constexpr bool is_forbidden_on_control(std::uint64_t type) noexcept {
  switch (type) {
    case kFrameData:
    case kFrameHeaders:
    case kFramePushPromise:
    case 0x02:
    case 0x06:
    case 0x08:
    case 0x09:
      return true;
    default:
      return false;
  }
}

}  // namespace

// ------------------------------------------------------------------ reader

std::uint64_t ControlStreamReader::fail(std::uint64_t code) noexcept {
  if (error_ == 0) error_ = code;
  return error_;
}

std::uint64_t ControlStreamReader::on_fin() noexcept { return fail(kH3ClosedCriticalStream); }

bool ControlStreamReader::frame_type_done() noexcept {
  const bool ok = settings_.received ? frame_type_ != kFrameSettings && !is_forbidden_on_control(frame_type_)
                                     : frame_type_ == kFrameSettings;
  if (!ok) {
    fail(settings_.received ? kH3FrameUnexpected : kH3MissingSettings);
    return false;
  }
  state_ = State::frame_length;
  return true;
}

bool ControlStreamReader::frame_length_done() noexcept {
  if (frame_type_ != kFrameSettings) {
    state_ = remaining_ == 0 ? State::frame_type : State::skip_payload;
    return true;
  }
  if (remaining_ > kMaxSettingsSize) {
    fail(kH3SettingsError);
    return false;
  }
  if (remaining_ == 0) {
    settings_.received = true;
    state_ = State::frame_type;
  } else {
    state_ = State::setting_id;
  }
  return true;
}

bool ControlStreamReader::setting_done(std::uint64_t value) noexcept {
  const std::uint64_t id = setting_id_;
  bool ok = !is_http2_only_setting(id);
  const auto *known = std::find(std::begin(kTrackedIds), std::end(kTrackedIds), id);
  if (known != std::end(kTrackedIds)) {
    const std::uint32_t bit = std::uint32_t{1} << (known - std::begin(kTrackedIds));
    ok = ok && (seen_ids_ & bit) == 0;
    seen_ids_ |= bit;
  }
  // Booleans, any other value is H3_SETTINGS_ERROR: ENABLE_CONNECT_PROTOCOL
  // (RFC 8441 3, RFC 9220 3), H3_DATAGRAM (RFC 9297 2.1.1; the pre-RFC id
  // alike), WT_ENABLED (draft-ietf-webtrans-http3-15/16 section 3.1).
  if (id == kSettingsEnableConnectProtocol || id == kSettingsH3Datagram || id == kSettingsH3DatagramDraft04 ||
      id == kSettingsWtEnabled)
    ok = ok && value <= 1;
  if (!ok) {
    fail(kH3SettingsError);
    return false;
  }
  settings_.apply(id, value);
  return true;
}

std::uint64_t ControlStreamReader::feed(std::span<const std::uint8_t> in) noexcept {
  if (error_ != 0) return error_;
  while (!in.empty()) {
    switch (state_) {
      case State::frame_type:
      case State::frame_length: {
        in = in.subspan(varint_.feed(in));
        if (!varint_.done()) return 0;
        const std::uint64_t v = varint_.value();
        varint_.reset();
        if (state_ == State::frame_type) {
          frame_type_ = v;
          if (!frame_type_done()) return error_;
        } else {
          remaining_ = v;
          if (!frame_length_done()) return error_;
        }
        break;
      }
      case State::setting_id:
      case State::setting_value: {
        const auto avail = static_cast<std::size_t>(std::min<std::uint64_t>(in.size(), remaining_));
        const std::size_t took = varint_.feed(in.first(avail));
        in = in.subspan(took);
        remaining_ -= took;
        if (!varint_.done()) {
          // A pair cut off by the end of the frame.
          if (remaining_ == 0) return fail(kH3FrameError);
          return 0;
        }
        const std::uint64_t v = varint_.value();
        varint_.reset();
        if (state_ == State::setting_id) {
          if (remaining_ == 0) return fail(kH3FrameError);
          setting_id_ = v;
          state_ = State::setting_value;
        } else {
          if (!setting_done(v)) return error_;
          if (remaining_ == 0) {
            settings_.received = true;
            state_ = State::frame_type;
          } else {
            state_ = State::setting_id;
          }
        }
        break;
      }
      case State::skip_payload: {
        const auto take = static_cast<std::size_t>(std::min<std::uint64_t>(in.size(), remaining_));
        in = in.subspan(take);
        remaining_ -= take;
        if (remaining_ == 0) state_ = State::frame_type;
        break;
      }
    }
  }
  return 0;
}

// ---------------------------------------------------------------- rewriter

void ControlStreamRewriter::emit(std::span<const std::uint8_t> bytes) {
  out_.insert(out_.end(), bytes.begin(), bytes.end());
  produced_ += bytes.size();
}

void ControlStreamRewriter::consume(std::size_t n) noexcept {
  out_head_ += std::min(n, out_.size() - out_head_);
  if (out_head_ == out_.size()) {
    out_.clear();
    out_head_ = 0;
  }
}

std::vector<std::uint8_t> ControlStreamRewriter::take() {
  std::vector<std::uint8_t> v;
  if (out_head_ == 0) {
    v.swap(out_);
  } else {
    v.assign(out_.begin() + static_cast<std::ptrdiff_t>(out_head_), out_.end());
    out_.clear();
    out_head_ = 0;
  }
  return v;
}

void ControlStreamRewriter::give_up_rewrite() {
  emit({frame_header_, frame_header_len_});
  emit(payload_);
  payload_ = {};
  h3_frame_len_ = wire_frame_len_ = 0;
  state_ = State::pass_through;
}

void ControlStreamRewriter::finish_settings() {
  // Collect the ids nghttp3 wrote so that none is repeated.
  std::vector<std::uint64_t> ids;
  std::span<const std::uint8_t> rest(payload_);
  while (!rest.empty()) {
    const auto id = varint_read(rest);
    if (!id) return give_up_rewrite();
    rest = rest.subspan(id->len);
    const auto value = varint_read(rest);
    if (!value) return give_up_rewrite();
    rest = rest.subspan(value->len);
    ids.push_back(id->value);
  }
  std::uint8_t extra[kWtSettingsMaxSize];
  const std::size_t extra_len = encode_wt_settings(local_, extra, sizeof extra, ids);
  if (extra_len == 0) return give_up_rewrite();

  const std::uint64_t new_len = payload_len_ + extra_len;
  std::uint8_t len_bytes[kVarintMaxSize];
  const std::size_t len_size = static_cast<std::size_t>(varint_write(len_bytes, new_len) - len_bytes);
  emit({frame_header_, frame_type_len_});
  emit({len_bytes, len_size});
  emit(payload_);
  emit({extra, extra_len});
  h3_frame_len_ = frame_header_len_ + payload_len_;
  wire_frame_len_ = frame_type_len_ + len_size + new_len;
  rewritten_ = true;
  payload_ = {};
  state_ = State::pass_through;
}

void ControlStreamRewriter::feed(std::span<const std::uint8_t> in) {
  fed_ += in.size();
  while (!in.empty()) {
    switch (state_) {
      case State::stream_type: {
        const std::size_t took = varint_.feed(in);
        emit(in.first(took));
        prefix_len_ += took;
        in = in.subspan(took);
        if (!varint_.done()) return;
        // Anything but a control stream is not ours to touch.
        state_ = varint_.value() == kStreamTypeControl ? State::frame_type : State::pass_through;
        varint_.reset();
        break;
      }
      case State::frame_type:
      case State::frame_length: {
        const std::size_t took = varint_.feed(in);
        std::copy_n(in.begin(), took, frame_header_ + frame_header_len_);
        frame_header_len_ += took;
        in = in.subspan(took);
        if (!varint_.done()) return;
        const std::uint64_t v = varint_.value();
        varint_.reset();
        if (state_ == State::frame_type) {
          frame_type_len_ = frame_header_len_;
          if (v != kFrameSettings) {
            give_up_rewrite();
          } else {
            state_ = State::frame_length;
          }
        } else if (v > kMaxRewriteSize) {
          give_up_rewrite();
        } else {
          payload_len_ = v;
          payload_.reserve(static_cast<std::size_t>(v));
          state_ = State::payload;
          if (v == 0) finish_settings();
        }
        break;
      }
      case State::payload: {
        const std::size_t take = std::min(in.size(), static_cast<std::size_t>(payload_len_) - payload_.size());
        payload_.insert(payload_.end(), in.begin(), in.begin() + static_cast<std::ptrdiff_t>(take));
        in = in.subspan(take);
        if (payload_.size() == payload_len_) finish_settings();
        break;
      }
      case State::pass_through:
        emit(in);
        return;
    }
  }
}

std::uint64_t ControlStreamRewriter::nghttp3_offset_for_wire_acked(std::uint64_t wire_acked) const noexcept {
  // Until the SETTINGS frame is out, only prefix bytes have left.
  if (state_ != State::pass_through || wire_acked <= prefix_len_) return wire_acked;
  if (wire_acked < prefix_len_ + wire_frame_len_) return prefix_len_;
  return wire_acked - wire_frame_len_ + h3_frame_len_;
}

}  // namespace uvwt::detail
