#include <uvwt/client.hpp>

#include <arpa/inet.h>

#include <cctype>
#include <optional>

namespace uvwt {

namespace {
Error bad_url(std::string_view url, const std::string &why) {
  return {Errc::invalid_url, "invalid URL '" + std::string(url) + "': " + why};
}

bool is_host_char(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) != 0 || c == '-' || c == '.' || c == '_';
}

std::string lower(std::string_view s) {
  std::string out(s);
  for (auto &c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}
}  // namespace

std::string WebTransportUrl::authority() const {
  std::string a = host.find(':') != std::string::npos ? "[" + host + "]" : host;
  if (port != 443) a += ":" + std::to_string(port);
  return a;
}

namespace {
// "[v6]" or "[v6]:port": the literal must parse as an IPv6 address.
Error parse_bracketed(std::string_view url, std::string_view authority, WebTransportUrl &r,
                      std::optional<std::string_view> &port_text) {
  const auto close = authority.find(']');
  if (close == std::string_view::npos) return bad_url(url, "unterminated IPv6 literal");
  const std::string v6(authority.substr(1, close - 1));
  in6_addr a{};
  if (v6.empty() || inet_pton(AF_INET6, v6.c_str(), &a) != 1) return bad_url(url, "invalid IPv6 literal '" + v6 + "'");
  r.host = lower(v6);
  const auto after = authority.substr(close + 1);
  if (after.empty()) return {};
  if (after.front() != ':') return bad_url(url, "unexpected text after the IPv6 literal");
  port_text = after.substr(1);
  return {};
}

// "name" or "name:port" (a name or an IPv4 literal).
Error parse_named(std::string_view url, std::string_view authority, WebTransportUrl &r,
                  std::optional<std::string_view> &port_text) {
  const auto c = authority.find(':');
  const std::string_view host = authority.substr(0, c);
  if (c != std::string_view::npos) {
    if (authority.find(':', c + 1) != std::string_view::npos)
      return bad_url(url, "IPv6 literals must be in brackets, as in https://[::1]:4433/");
    port_text = authority.substr(c + 1);
  }
  if (host.empty()) return bad_url(url, "no host");
  for (char ch : host)
    if (!is_host_char(ch)) return bad_url(url, std::string("invalid character '") + ch + "' in host");
  r.host = lower(host);
  return {};
}

// Digits only, 1..65535; an empty port (as in "host:") keeps 443.
Error parse_port(std::string_view url, std::string_view text, WebTransportUrl &r) {
  if (text.empty()) return {};
  if (text.size() > 5) return bad_url(url, "port out of range");
  unsigned long p = 0;
  for (char ch : text) {
    if (ch < '0' || ch > '9') return bad_url(url, "port '" + std::string(text) + "' is not a number");
    p = p * 10 + static_cast<unsigned long>(ch - '0');
  }
  if (p == 0 || p > 65535) return bad_url(url, "port out of range (1..65535)");
  r.port = static_cast<std::uint16_t>(p);
  return {};
}

// The https scheme, then what follows "://": no blanks, fragment or user info.
Error split_url(std::string_view url, std::string_view &authority, std::string_view &target) {
  if (url.empty()) return bad_url(url, "empty");
  for (char c : url)
    if (std::isspace(static_cast<unsigned char>(c)) != 0 || std::iscntrl(static_cast<unsigned char>(c)) != 0)
      return bad_url(url, "blanks or control characters are not allowed");
  const auto colon = url.find("://");
  if (colon == std::string_view::npos) return bad_url(url, "no scheme (expected https://host/path)");
  const std::string scheme = lower(url.substr(0, colon));
  if (scheme != "https") return bad_url(url, "scheme '" + scheme + "' is not supported (WebTransport needs https)");
  std::string_view rest = url.substr(colon + 3);
  if (rest.find('#') != std::string_view::npos) return bad_url(url, "fragments are not allowed");
  const auto target_at = rest.find_first_of("/?");
  authority = rest.substr(0, target_at);
  target = target_at == std::string_view::npos ? std::string_view() : rest.substr(target_at);
  if (authority.find('@') != std::string_view::npos) return bad_url(url, "user information is not allowed");
  if (authority.empty()) return bad_url(url, "no host");
  return {};
}
}  // namespace

Error parse_webtransport_url(std::string_view url, WebTransportUrl &out) {
  std::string_view authority, target;
  if (Error e = split_url(url, authority, target)) return e;
  WebTransportUrl r;
  std::optional<std::string_view> port_text;
  Error e = authority.front() == '[' ? parse_bracketed(url, authority, r, port_text)
                                     : parse_named(url, authority, r, port_text);
  if (e) return e;
  if (port_text) {
    if (Error pe = parse_port(url, *port_text, r)) return pe;
  }
  if (target.empty())
    r.path = "/";
  else if (target.front() == '?')
    r.path = "/" + std::string(target);
  else
    r.path = std::string(target);
  out = std::move(r);
  return {};
}

}  // namespace uvwt
