// Our HTTP/3 control stream passes through H3Connection on its way from
// nghttp3 to QUIC: the SETTINGS frame is extended with the WebTransport
// settings of every dialect (docs/protocol.md), so wire offsets and nghttp3's
// offsets differ, and acknowledgements are translated back for nghttp3.
#include "h3/h3_connection.hpp"
#include "quic/quic_connection.hpp"

namespace uvwt::detail {

void H3Connection::take_control_bytes(std::span<const nghttp3_vec> vec) {
  std::size_t total = 0;
  for (const auto &v : vec) {
    ctrl_out_.feed(std::span<const std::uint8_t>(v.base, v.len));
    total += v.len;
  }
  nghttp3_conn_add_write_offset(h3w(), ctrl_sid_, total);
  auto out = ctrl_out_.take();
  if (!out.empty()) {
    ctrl_total_ += out.size();
    ctrl_chunks_.push_back({std::move(out), ctrl_total_});
  }
}

bool H3Connection::control_write(StreamWrite &w) {
  if (ctrl_sent_ >= ctrl_total_) return false;
  w.stream_id = ctrl_sid_;
  w.fin = false;
  w.vec_count = 0;
  for (const auto &c : ctrl_chunks_) {
    const std::uint64_t begin = c.end - c.data.size();
    if (c.end <= ctrl_sent_) continue;
    const std::uint64_t skip = ctrl_sent_ > begin ? ctrl_sent_ - begin : 0;
    w.vec[w.vec_count].base = const_cast<std::uint8_t *>(c.data.data() + skip);
    w.vec[w.vec_count].len = c.data.size() - skip;
    if (++w.vec_count == StreamWrite::kMaxVecs) break;
  }
  return true;
}

void H3Connection::control_acked(std::uint64_t len) {
  ctrl_acked_ += len;
  while (!ctrl_chunks_.empty() && ctrl_chunks_.front().end <= ctrl_acked_) ctrl_chunks_.pop_front();
  const std::uint64_t h3_acked = ctrl_out_.nghttp3_offset_for_wire_acked(ctrl_acked_);
  if (h3_acked > ctrl_h3_acked_) {
    nghttp3_conn_add_ack_offset(h3w(), ctrl_sid_, h3_acked - ctrl_h3_acked_);
    ctrl_h3_acked_ = h3_acked;
  }
}

}  // namespace uvwt::detail
