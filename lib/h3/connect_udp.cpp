#include "h3/connect_udp.hpp"

#include <charconv>

#include "h3/varint.hpp"

namespace uvwt::detail {

namespace {
bool unreserved(unsigned char c) {  // RFC 3986 §2.3
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '.' ||
         c == '_' || c == '~';
}

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

std::optional<std::uint16_t> parse_port(std::string_view s) {
  unsigned v = 0;
  if (s.empty() || s.size() > 5) return std::nullopt;
  const auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || p != s.data() + s.size() || v == 0 || v > 65535) return std::nullopt;
  return static_cast<std::uint16_t>(v);
}

// The path and query of a template given as a URL or a path.
std::string_view template_path(std::string_view tmpl) {
  if (const auto scheme = tmpl.find("://"); scheme != std::string_view::npos) {
    const auto slash = tmpl.find('/', scheme + 3);
    return slash == std::string_view::npos ? std::string_view("/") : tmpl.substr(slash);
  }
  return tmpl;
}
}  // namespace

std::string percent_encode(std::string_view value) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(value.size());
  for (const char ch : value) {
    const auto c = static_cast<unsigned char>(ch);
    if (unreserved(c)) {
      out.push_back(ch);
    } else {
      out.push_back('%');
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 15]);
    }
  }
  return out;
}

std::optional<std::string> percent_decode(std::string_view value) {
  std::string out;
  for (std::size_t i = 0; i < value.size(); ++i) {
    if (value[i] != '%') {
      out.push_back(value[i]);
      continue;
    }
    if (i + 2 >= value.size()) return std::nullopt;
    const int hi = hex_value(value[i + 1]), lo = hex_value(value[i + 2]);
    if (hi < 0 || lo < 0) return std::nullopt;
    out.push_back(static_cast<char>(hi * 16 + lo));
    i += 2;
  }
  return out;
}

Error expand_udp_template(std::string_view tmpl, std::string_view host, std::uint16_t port, std::string &path) {
  const std::string_view t = template_path(tmpl);
  std::string out;
  bool saw_host = false, saw_port = false;
  for (std::size_t i = 0; i < t.size(); ++i) {
    if (t[i] != '{') {
      out.push_back(t[i]);
      continue;
    }
    const auto close = t.find('}', i);
    if (close == std::string_view::npos) return {Errc::configuration, "proxy URI template: unterminated '{'"};
    const std::string_view var = t.substr(i + 1, close - i - 1);
    // Only simple string expansion ({var}, RFC 6570 level 1) and form-style
    // query expansion ({?a,b}, level 3) appear in practice; both are supported.
    if (!var.empty() && var[0] == '?') {
      char sep = '?';
      std::string_view rest = var.substr(1);
      while (!rest.empty()) {
        const auto comma = rest.find(',');
        const std::string_view name = rest.substr(0, comma);
        std::string value;
        if (name == "target_host") {
          value = percent_encode(host);
          saw_host = true;
        } else if (name == "target_port") {
          value = std::to_string(port);
          saw_port = true;
        } else {
          return {Errc::configuration, "proxy URI template: unknown variable '" + std::string(name) + "'"};
        }
        out.push_back(sep);
        out.append(name).push_back('=');
        out += value;
        sep = '&';
        rest = comma == std::string_view::npos ? std::string_view() : rest.substr(comma + 1);
      }
    } else if (var == "target_host") {
      out += percent_encode(host);
      saw_host = true;
    } else if (var == "target_port") {
      out += std::to_string(port);
      saw_port = true;
    } else {
      return {Errc::configuration, "proxy URI template: unsupported expression '{" + std::string(var) + "}'"};
    }
    i = close;
  }
  if (!saw_host || !saw_port)
    return {Errc::configuration,
            "proxy URI template must contain {target_host} and {target_port} (RFC 9298 section 2)"};
  if (out.empty() || out[0] != '/') return {Errc::configuration, "proxy URI template must expand to a path"};
  path = std::move(out);
  return {};
}

std::optional<Address> match_udp_template(std::string_view tmpl, std::string_view path) {
  const std::string_view t = template_path(tmpl);
  std::optional<std::string> host;
  std::optional<std::uint16_t> port;
  std::size_t pi = 0;
  for (std::size_t i = 0; i < t.size(); ++i) {
    if (t[i] != '{') {
      if (pi >= path.size() || path[pi] != t[i]) return std::nullopt;
      ++pi;
      continue;
    }
    const auto close = t.find('}', i);
    if (close == std::string_view::npos) return std::nullopt;
    const std::string_view var = t.substr(i + 1, close - i - 1);
    // A value runs to the next literal character of the template (or the end).
    const char stop = close + 1 < t.size() ? t[close + 1] : '\0';
    std::size_t end = stop == '\0' ? path.size() : path.find(stop, pi);
    if (end == std::string_view::npos) return std::nullopt;
    const std::string_view raw = path.substr(pi, end - pi);
    if (raw.empty()) return std::nullopt;
    if (var == "target_host") {
      host = percent_decode(raw);
      if (!host || host->empty()) return std::nullopt;
    } else if (var == "target_port") {
      port = parse_port(raw);
      if (!port) return std::nullopt;
    } else {
      return std::nullopt;
    }
    pi = end;
    i = close;
  }
  if (pi != path.size() || !host || !port) return std::nullopt;
  return Address{*host, *port};
}

std::string ProxyUrl::authority() const {
  const std::string h = host.find(':') != std::string::npos ? "[" + host + "]" : host;
  return port == 443 ? h : h + ":" + std::to_string(port);
}

Error parse_proxy_url(std::string_view url, ProxyUrl &out) {
  constexpr std::string_view kScheme = "https://";
  if (url.substr(0, kScheme.size()) != kScheme)
    return {Errc::configuration, "proxy.url must start with https:// (an HTTP/3 proxy)"};
  std::string_view rest = url.substr(kScheme.size());
  const auto slash = rest.find('/');
  const std::string_view authority = rest.substr(0, slash);
  ProxyUrl p;
  p.tmpl = slash == std::string_view::npos ? std::string(kDefaultUdpTemplate) : std::string(rest.substr(slash));
  std::string_view port_text;
  if (!authority.empty() && authority[0] == '[') {
    const auto rb = authority.find(']');
    if (rb == std::string_view::npos) return {Errc::configuration, "proxy.url: unterminated IPv6 literal"};
    p.host = authority.substr(1, rb - 1);
    if (rb + 1 < authority.size()) {
      if (authority[rb + 1] != ':') return {Errc::configuration, "proxy.url: bad authority"};
      port_text = authority.substr(rb + 2);
    }
  } else {
    const auto colon = authority.find(':');
    p.host = authority.substr(0, colon);
    if (colon != std::string_view::npos) port_text = authority.substr(colon + 1);
  }
  if (p.host.empty()) return {Errc::configuration, "proxy.url has no host"};
  if (authority.find('@') != std::string_view::npos)
    return {Errc::configuration, "proxy.url: user info is not allowed (use proxy.headers)"};
  if (!port_text.empty()) {
    const auto port = parse_port(port_text);
    if (!port) return {Errc::configuration, "proxy.url: port must be 1..65535"};
    p.port = *port;
  }
  std::string probe;
  if (Error e = expand_udp_template(p.tmpl, "h", 1, probe)) return e;
  out = std::move(p);
  return {};
}

std::optional<std::span<const std::uint8_t>> udp_payload_of(std::span<const std::uint8_t> payload) {
  const auto ctx = varint_read(payload);
  if (!ctx || ctx->value != kUdpPayloadContext) return std::nullopt;
  return payload.subspan(ctx->len);
}

bool capsule_protocol_true(std::string_view v) noexcept {
  // A Structured Field Item may carry parameters (";a=b"): ignored here.
  while (!v.empty() && (v.front() == ' ' || v.front() == '\t')) v.remove_prefix(1);
  while (!v.empty() && (v.back() == ' ' || v.back() == '\t')) v.remove_suffix(1);
  return v.substr(0, 2) == "?1" && (v.size() == 2 || v[2] == ';');
}

}  // namespace uvwt::detail
