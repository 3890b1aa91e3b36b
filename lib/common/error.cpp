#include <uvwt/error.hpp>

#include <cstdio>

namespace uvwt {

namespace {
struct Names {
  std::string_view name;
  std::string_view exception;
};

constexpr Names kNames[] = {
    {"ok", ""},
    {"configuration", "ConfigurationError"},
    {"invalid_url", "ClientError"},
    {"dns", "ConnectionError"},
    {"refused", "ConnectionError"},
    {"timeout", "TimeoutError"},
    {"certificate", "CertificateError"},
    {"handshake", "HandshakeError"},
    {"http_status", "HandshakeError"},
    {"protocol", "ProtocolError"},
    {"connection", "ConnectionError"},
    {"session", "SessionError"},
    {"stream", "StreamError"},
    {"datagram", "DatagramError"},
    {"flow_control", "FlowControlError"},
    {"server", "ServerError"},
    {"authentication", "AuthenticationError"},
    {"serialization", "SerializationError"},
    {"client", "ClientError"},
    {"closed", "WebTransportError"},
    {"cancelled", "WebTransportError"},
    {"unsupported", "ConfigurationError"},
    {"proxy_dns", "ConnectionError"},
    {"proxy_connection", "ConnectionError"},
    {"proxy_certificate", "CertificateError"},
    {"proxy_authentication", "AuthenticationError"},
    {"proxy_refused", "HandshakeError"},
};
}  // namespace

std::string_view errc_name(Errc e) noexcept {
  const auto i = static_cast<std::size_t>(e);
  return i < std::size(kNames) ? kNames[i].name : "unknown";
}

std::string_view errc_exception_name(Errc e) noexcept {
  const auto i = static_cast<std::size_t>(e);
  return i < std::size(kNames) ? kNames[i].exception : "WebTransportError";
}

std::string Error::to_string() const {
  if (ok()) return {};
  std::string s{errc_name(errc)};
  s += ": ";
  s += message;
  if (http_status != 0) s += " (HTTP " + std::to_string(http_status) + ")";
  if (code != 0) {
    char buf[32];
    std::snprintf(buf, sizeof buf, " (code 0x%llx)", static_cast<unsigned long long>(code));
    s += buf;
  }
  return s;
}

}  // namespace uvwt
