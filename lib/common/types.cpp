#include <uvwt/types.hpp>

namespace uvwt {

std::string Address::to_string() const {
  if (host.find(':') != std::string::npos) return "[" + host + "]:" + std::to_string(port);
  return host + ":" + std::to_string(port);
}

std::string_view to_string(ConnectionState s) noexcept {
  switch (s) {
    case ConnectionState::idle:
      return "idle";
    case ConnectionState::connecting:
      return "connecting";
    case ConnectionState::connected:
      return "connected";
    case ConnectionState::closing:
      return "closing";
    case ConnectionState::draining:
      return "draining";
    case ConnectionState::closed:
      return "closed";
    case ConnectionState::failed:
      return "failed";
  }
  return "unknown";
}

std::string_view to_string(SessionState s) noexcept {
  switch (s) {
    case SessionState::connecting:
      return "connecting";
    case SessionState::connected:
      return "connected";
    case SessionState::draining:
      return "draining";
    case SessionState::closing:
      return "closing";
    case SessionState::closed:
      return "closed";
  }
  return "unknown";
}

}  // namespace uvwt
