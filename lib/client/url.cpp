#include <uvwt/client.hpp>

#include <arpa/inet.h>

#include <cctype>

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

Error parse_webtransport_url(std::string_view url, WebTransportUrl &out) {
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
  std::string_view authority = rest.substr(0, target_at);
  std::string_view target = target_at == std::string_view::npos ? std::string_view() : rest.substr(target_at);
  if (authority.find('@') != std::string_view::npos) return bad_url(url, "user information is not allowed");
  if (authority.empty()) return bad_url(url, "no host");

  WebTransportUrl r;
  std::string_view port_text;
  bool has_port = false;
  if (authority.front() == '[') {
    const auto close = authority.find(']');
    if (close == std::string_view::npos) return bad_url(url, "unterminated IPv6 literal");
    const std::string v6(authority.substr(1, close - 1));
    in6_addr a{};
    if (v6.empty() || inet_pton(AF_INET6, v6.c_str(), &a) != 1)
      return bad_url(url, "invalid IPv6 literal '" + v6 + "'");
    r.host = lower(v6);
    const auto after = authority.substr(close + 1);
    if (!after.empty()) {
      if (after.front() != ':') return bad_url(url, "unexpected text after the IPv6 literal");
      has_port = true;
      port_text = after.substr(1);
    }
  } else {
    const auto c = authority.find(':');
    const std::string_view host = authority.substr(0, c);
    if (c != std::string_view::npos) {
      if (authority.find(':', c + 1) != std::string_view::npos)
        return bad_url(url, "IPv6 literals must be in brackets, as in https://[::1]:4433/");
      has_port = true;
      port_text = authority.substr(c + 1);
    }
    if (host.empty()) return bad_url(url, "no host");
    for (char ch : host)
      if (!is_host_char(ch)) return bad_url(url, std::string("invalid character '") + ch + "' in host");
    r.host = lower(host);
  }
  if (has_port && !port_text.empty()) {
    if (port_text.size() > 5) return bad_url(url, "port out of range");
    unsigned long p = 0;
    for (char ch : port_text) {
      if (ch < '0' || ch > '9') return bad_url(url, "port '" + std::string(port_text) + "' is not a number");
      p = p * 10 + static_cast<unsigned long>(ch - '0');
    }
    if (p == 0 || p > 65535) return bad_url(url, "port out of range (1..65535)");
    r.port = static_cast<std::uint16_t>(p);
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
