#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include <uvwt/export.hpp>
#include <uvwt/error.hpp>

namespace uvwt {

// A (host, port) pair as pywebtransport's Address.
struct UVWT_EXPORT Address {
  std::string host;
  std::uint16_t port = 0;
  [[nodiscard]] std::string to_string() const;  // "127.0.0.1:443", "[::1]:443"
  bool operator==(const Address &) const = default;
};

// HTTP header list in order; names are lower-case.
using Headers = std::vector<std::pair<std::string, std::string>>;

// Owned bytes handed to uvwt (moved in, so no copy) for sending.
using Bytes = std::vector<std::uint8_t>;

using SessionId = std::uint64_t;
using StreamId = std::int64_t;

// Completion without a value.
using DoneCallback = std::function<void(const Error &)>;
using CloseCallback = std::function<void()>;

// Connection states (pywebtransport's ConnectionState).
enum class ConnectionState : std::uint8_t { idle, connecting, connected, closing, draining, closed, failed };
UVWT_EXPORT std::string_view to_string(ConnectionState s) noexcept;

// Session states (pywebtransport's SessionState).
enum class SessionState : std::uint8_t { connecting, connected, draining, closing, closed };
UVWT_EXPORT std::string_view to_string(SessionState s) noexcept;

enum class CongestionControl : std::uint8_t { cubic, reno, bbr };

}  // namespace uvwt
