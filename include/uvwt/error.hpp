#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace uvwt {

// Error categories. They mirror pywebtransport's exception hierarchy
// (WebTransportError and its subclasses) and split the client-side failures a
// caller needs to tell apart (DNS vs refused vs TLS vs HTTP status).
enum class Errc : std::uint8_t {
  ok = 0,
  configuration,   // ConfigurationError: invalid option or argument
  invalid_url,     // ClientError: URL that cannot be used
  dns,             // ConnectionError: name did not resolve
  refused,         // ConnectionError: ICMP refused / unreachable
  timeout,         // TimeoutError
  certificate,     // CertificateError: peer certificate not trusted / wrong host / pin mismatch
  handshake,       // HandshakeError: TLS/QUIC handshake or WebTransport negotiation failed
  http_status,     // HandshakeError: server answered CONNECT with non-2xx (status carried)
  protocol,        // ProtocolError: peer broke HTTP/3 or WebTransport rules
  connection,      // ConnectionError: QUIC connection closed or lost
  session,         // SessionError: session closed by peer or locally
  stream,          // StreamError: stream reset / stop-sending / misuse
  datagram,        // DatagramError: datagram too large or not negotiated
  flow_control,    // FlowControlError: would exceed a limit or a buffer bound
  server,          // ServerError: listen/bind failure, limits
  authentication,  // AuthenticationError: rejected by the accept hook (403 ...)
  serialization,   // SerializationError
  client,          // ClientError: misuse of a client object (empty fleet ...)
  closed,          // the object was closed before the work could complete
  cancelled,       // the work was cancelled by a close() call
  unsupported,     // feature not available
  // The proxy leg of a proxied connection (MASQUE CONNECT-UDP, docs/proxy.md);
  // failures of the target leg keep the categories above.
  proxy_dns,             // ConnectionError: the proxy's name did not resolve
  proxy_connection,      // ConnectionError: QUIC/TLS to the proxy failed, timed out, or the proxy went away
  proxy_certificate,     // CertificateError: the proxy's certificate was not trusted
  proxy_authentication,  // AuthenticationError: the proxy answered 407 (Proxy Authentication Required)
  proxy_refused,         // HandshakeError: the proxy refused the tunnel (4xx/5xx, status carried) or cannot tunnel
};

// The single error type of uvwt. A default-constructed Error means success.
struct Error {
  Errc errc = Errc::ok;
  // Protocol or application code where one applies: a QUIC transport/application
  // error code, an HTTP/3 error code, a WebTransport session/stream code.
  std::uint64_t code = 0;
  // HTTP status for Errc::http_status / authentication (0 otherwise).
  int http_status = 0;
  std::string message;

  Error() = default;
  Error(Errc e, std::string msg, std::uint64_t c = 0, int status = 0)
      : errc(e), code(c), http_status(status), message(std::move(msg)) {}

  [[nodiscard]] bool ok() const noexcept { return errc == Errc::ok; }
  explicit operator bool() const noexcept { return errc != Errc::ok; }
  // "category: message (code 0x..)"; empty string for success.
  [[nodiscard]] std::string to_string() const;
};

// Stable lower-case name of a category ("timeout", "certificate", ...).
std::string_view errc_name(Errc e) noexcept;
// The pywebtransport exception class a category corresponds to ("TimeoutError").
std::string_view errc_exception_name(Errc e) noexcept;

}  // namespace uvwt
