#pragma once

#include "quic/quic_app.hpp"

namespace uvwt::detail {

// A QuicApp with no application above QUIC: for peers that only handshake
// (the handshake-limit tests and the loopback attack tool), so neither
// spells out the whole interface again.
class NullQuicApp final : public QuicApp {
 public:
  void on_handshake_completed() override {}
  bool on_stream_data(std::int64_t, bool, const std::uint8_t *, std::size_t) override { return true; }
  void on_stream_close(std::int64_t, bool, std::uint64_t) override {}
  void on_stream_reset(std::int64_t, std::uint64_t, std::uint64_t) override {}
  void on_stop_sending(std::int64_t, std::uint64_t) override {}
  void on_acked_stream_data(std::int64_t, std::uint64_t) override {}
  void on_extend_max_stream_data(std::int64_t) override {}
  void on_extend_max_local_streams(bool) override {}
  void on_datagram(const std::uint8_t *, std::size_t) override {}
  void next_stream_write(StreamWrite &w) override { w.stream_id = -1; }
  void on_stream_written(std::int64_t, std::size_t, bool) override {}
  void on_stream_blocked(std::int64_t, bool) override {}
  const ngtcp2_vec *next_datagram() override { return nullptr; }
  void on_datagram_written(bool) override {}
  void on_quic_closed(const Error &) override {}
};

}  // namespace uvwt::detail
