#pragma once

// Fuzzing seam, never part of the library: the fuzz-h3_connection target
// compiles lib/h3 and lib/session against this header instead of the real
// lib/quic/quic_connection.hpp (its include directory comes first), so
// H3Connection talks to a scripted QUIC side. It keeps only the calls the HTTP/3
// layer makes and checks, on every call, the rules ngtcp2 would enforce or
// that the layer above must keep (credit never beyond what was received,
// stream opens within the peer's limit, a close code from the HTTP/3 range).

#include <cstdint>
#include <map>
#include <set>
#include <string>

#include <uvwt/error.hpp>

namespace uvwt::detail {

class TlsSession;

class QuicConnection {
 public:
  struct StreamState {
    std::uint64_t received = 0;  // bytes delivered to the app
    std::uint64_t credited = 0;  // bytes the app handed back (extend_stream_offset)
    std::uint64_t written = 0;   // bytes the app wrote (taken by the fake)
    std::uint64_t acked = 0;
    bool fin_received = false, fin_written = false;
    bool read_shut = false, write_shut = false;
    bool reset_received = false, closed = false;
  };

  explicit QuicConnection(bool server) : server_(server) {}

  // The calls H3Connection makes.
  int open_bidi_stream(std::int64_t &sid);
  int open_uni_stream(std::int64_t &sid);
  void shutdown_stream_read(std::int64_t sid, std::uint64_t code);
  void shutdown_stream_write(std::int64_t sid, std::uint64_t code);
  void extend_stream_offset(std::int64_t sid, std::uint64_t n);
  void extend_max_streams(bool bidi, std::uint64_t n);
  void schedule_write() noexcept { ++writes_scheduled; }
  void close(std::uint64_t app_code, const std::string &reason);
  void set_close_error(Error e) { close_err_ = std::move(e); }
  [[nodiscard]] std::size_t max_datagram_payload() const noexcept { return max_datagram; }
  [[nodiscard]] TlsSession *tls() noexcept { return nullptr; }

  // The harness's side.
  [[nodiscard]] bool server() const noexcept { return server_; }
  [[nodiscard]] bool is_local(std::int64_t sid) const noexcept { return ((sid & 1) != 0) == server_; }
  StreamState &stream(std::int64_t sid) { return streams_[sid]; }
  [[nodiscard]] bool known(std::int64_t sid) const { return streams_.count(sid) != 0; }
  [[nodiscard]] const std::map<std::int64_t, StreamState> &streams() const noexcept { return streams_; }
  [[nodiscard]] bool close_requested() const noexcept { return close_requested_; }
  [[nodiscard]] std::uint64_t close_code() const noexcept { return close_code_; }
  [[nodiscard]] const Error &close_error() const noexcept { return close_err_; }

  std::size_t max_datagram = 1200;
  std::uint64_t local_bidi_limit = 16, local_uni_limit = 16;
  std::uint64_t peer_streams_closed[2] = {0, 0};  // [uni]
  std::uint64_t max_streams_extended[2] = {0, 0};
  std::uint64_t writes_scheduled = 0;

 private:
  bool server_;
  std::map<std::int64_t, StreamState> streams_;
  std::uint64_t opened_bidi_ = 0, opened_uni_ = 0;
  bool close_requested_ = false;
  std::uint64_t close_code_ = 0;
  Error close_err_;
};

}  // namespace uvwt::detail
