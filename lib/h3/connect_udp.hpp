#pragma once

// MASQUE CONNECT-UDP (RFC 9298) wire rules: the URI template that names a
// target, the request and response header checks, and the HTTP Datagram
// payload of a UDP tunnel (context id 0 + one UDP payload). Pure codec: no
// sockets, no loop.

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include <uvwt/error.hpp>
#include <uvwt/types.hpp>

namespace uvwt::detail {

// RFC 9298 §3 (and the well-known URI registered in §12.2).
inline constexpr std::string_view kDefaultUdpTemplate = "/.well-known/masque/udp/{target_host}/{target_port}/";
inline constexpr std::string_view kConnectUdpProtocol = "connect-udp";  // §3.4, §12.1 (upgrade token)

// Percent-encodes a template variable value the way RFC 6570 simple string
// expansion does ({var}): everything but unreserved characters, so an IPv6
// literal's colons become %3A (RFC 9298 §2: "2001:db8::42" is sent as
// "2001%3Adb8%3A%3A42").
std::string percent_encode(std::string_view value);
// The inverse for the proxy; nullopt for a malformed escape.
std::optional<std::string> percent_decode(std::string_view value);

// Expands {target_host} and {target_port} (RFC 9298 §2). The template may be
// a full URL ("https://proxy:4433/masque?h={target_host}&p={target_port}")
// or a path; `path` gets the expanded path and query (":path"). Errc::
// configuration when a variable is missing (§2: both are required) or an
// unknown variable or operator appears.
Error expand_udp_template(std::string_view tmpl, std::string_view host, std::uint16_t port, std::string &path);

// Proxy side: matches a request's ":path" against a template's path part
// and extracts the decoded target. nullopt when it does not match or the
// port is not 1..65535.
std::optional<Address> match_udp_template(std::string_view tmpl, std::string_view path);

// A proxy URL taken apart: https://host[:port]/template.
struct ProxyUrl {
  std::string host;  // without brackets
  std::uint16_t port = 443;
  std::string tmpl;  // path template, kDefaultUdpTemplate when the URL has no path
  [[nodiscard]] std::string authority() const;
};
Error parse_proxy_url(std::string_view url, ProxyUrl &out);

// HTTP Datagram payload of a UDP tunnel, after the quarter stream id
// (RFC 9297 §2.1): Context ID (varint) then, for context 0, the UDP payload
// (RFC 9298 §5). Only context 0 is used here; no other context is
// registered, so datagrams naming one are dropped (§4: "unknown context").
inline constexpr std::uint8_t kUdpPayloadContext = 0x00;
// The UDP payload of a tunnel datagram, or nullopt (other context, or empty).
std::optional<std::span<const std::uint8_t>> udp_payload_of(std::span<const std::uint8_t> http_datagram_payload);

// True when `v` is the Structured Field boolean true ("?1"), the only value
// of capsule-protocol that turns the Capsule Protocol on (RFC 9297 §3.4).
bool capsule_protocol_true(std::string_view v) noexcept;

}  // namespace uvwt::detail
