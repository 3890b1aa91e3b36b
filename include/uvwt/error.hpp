#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include <uvwt/export.hpp>

namespace uvwt {

// Error categories: what went wrong, from the application's point of view.
// docs/api/error.md maps them to pywebtransport's exception classes.
enum class Errc : std::uint8_t {
  ok = 0,
  configuration,   // invalid option or argument
  invalid_url,     // URL that cannot be used
  dns,             // name did not resolve
  refused,         // ICMP refused / unreachable
  timeout,         // connect, handshake, idle or a wait ran out of time
  certificate,     // peer certificate not trusted / wrong host / pin mismatch
  handshake,       // TLS/QUIC handshake or WebTransport negotiation failed
  http_status,     // server answered CONNECT with non-2xx (status carried)
  protocol,        // peer broke HTTP/3 or WebTransport rules
  connection,      // QUIC connection closed or lost
  session,         // session closed by peer or locally
  stream,          // stream reset / stop-sending / misuse
  datagram,        // datagram too large or not negotiated
  flow_control,    // would exceed a limit or a buffer bound
  server,          // listen/bind failure, limits
  authentication,  // rejected by the accept hook (403 ...)
  serialization,   // encoding or decoding failed
  client,          // misuse of a client object (empty fleet ...)
  closed,          // the object was closed before the work could complete
  cancelled,       // the work was cancelled by a close() call
  unsupported,     // feature not available
  // The proxy leg of a proxied connection (MASQUE CONNECT-UDP, docs/proxy.md);
  // failures of the target leg keep the categories above.
  proxy_dns,             // the proxy's name did not resolve
  proxy_connection,      // QUIC/TLS to the proxy failed, timed out, or the proxy went away
  proxy_certificate,     // the proxy's certificate was not trusted
  proxy_authentication,  // the proxy answered 407 (Proxy Authentication Required)
  proxy_refused,         // the proxy refused the tunnel (4xx/5xx, status carried) or cannot tunnel
};

// Which numbering Error::code belongs to. The wire code spaces overlap (0x10c
// is an HTTP/3 code and could be a QUIC application code), so an Error made
// from a code received or sent says which one it is.
enum class CodeSpace : std::uint8_t {
  none = 0,      // code is 0 and means nothing
  transport,     // QUIC transport error code (RFC 9000, 20.1), CONNECTION_CLOSE 0x1c
  h3,            // HTTP/3 error code (RFC 9114, 8.1), also H3 datagram / capsule codes
  webtransport,  // WebTransport code (WT_* values of the drafts, e.g. WT_BUFFERED_STREAM_REJECTED)
  application,   // WebTransport application code: session close code, stream reset / STOP_SENDING code
  tls_alert,     // TLS alert number (RFC 8446, 6), from QUIC's CRYPTO_ERROR 0x0100 + alert
  http_status,   // HTTP status code (also in http_status)
  system,        // errno value of a failed system call
};

// The single error type of uvwt. A default-constructed Error means success.
// [[nodiscard]]: every function returning one must have its result looked at.
struct [[nodiscard]] UVWT_EXPORT Error {
  Errc errc = Errc::ok;
  // The code that came with the failure, in the numbering `space` names.
  std::uint64_t code = 0;
  CodeSpace space = CodeSpace::none;
  // HTTP status for Errc::http_status / authentication (0 otherwise).
  int http_status = 0;
  std::string message;

  Error() = default;
  Error(Errc e, std::string msg) : errc(e), message(std::move(msg)) {}
  Error(Errc e, std::string msg, CodeSpace s, std::uint64_t c) : errc(e), code(c), space(s), message(std::move(msg)) {}
  // A refused CONNECT: code and http_status both carry the status.
  static Error from_http_status(Errc e, std::string msg, int status) {
    Error err(e, std::move(msg), CodeSpace::http_status, static_cast<std::uint64_t>(status));
    err.http_status = status;
    return err;
  }

  [[nodiscard]] bool ok() const noexcept { return errc == Errc::ok; }
  explicit operator bool() const noexcept { return errc != Errc::ok; }
  // "category: message (h3 0x10c)": the code with its space; empty for success.
  [[nodiscard]] std::string to_string() const;
};

// Stable lower-case name of a category ("timeout", "certificate", ...).
UVWT_EXPORT std::string_view errc_name(Errc e) noexcept;
// Stable lower-case name of a code space ("transport", "h3", "tls_alert", ...).
UVWT_EXPORT std::string_view code_space_name(CodeSpace s) noexcept;

}  // namespace uvwt
