#include "quic/socket_addr.hpp"

#include <arpa/inet.h>
#include <net/if.h>

#include <charconv>
#include <cstring>

namespace uvwt::detail {

namespace {

// Scope ids are either interface names or numbers ("fe80::1%eth0", "%2").
std::optional<std::uint32_t> parse_scope(std::string_view scope) {
  if (scope.empty()) return std::nullopt;
  std::uint32_t id = 0;
  auto [end, ec] = std::from_chars(scope.data(), scope.data() + scope.size(), id);
  if (ec == std::errc() && end == scope.data() + scope.size()) return id;
  std::string name(scope);
  id = if_nametoindex(name.c_str());
  if (id == 0) return std::nullopt;
  return id;
}

std::size_t mix(std::size_t h, std::uint64_t v) noexcept {
  // splitmix64's finaliser: cheap and spreads ports/addresses well.
  v += 0x9e3779b97f4a7c15ULL + h;
  v = (v ^ (v >> 30)) * 0xbf58476d1ce4e5b9ULL;
  v = (v ^ (v >> 27)) * 0x94d049bb133111ebULL;
  return static_cast<std::size_t>(v ^ (v >> 31));
}

}  // namespace

std::optional<SockAddr> SockAddr::parse(std::string_view ip, std::uint16_t port) {
  if (ip.size() >= 2 && ip.front() == '[' && ip.back() == ']') ip = ip.substr(1, ip.size() - 2);
  if (ip.empty() || ip.size() > INET6_ADDRSTRLEN + IF_NAMESIZE) return std::nullopt;

  SockAddr out;
  if (ip.find(':') == std::string_view::npos) {
    std::string text(ip);
    sockaddr_in sin{};
    sin.sin_family = AF_INET;
    sin.sin_port = htons(port);
    if (inet_pton(AF_INET, text.c_str(), &sin.sin_addr) != 1) return std::nullopt;
    std::memcpy(&out.ss, &sin, sizeof sin);
    out.len = sizeof sin;
    return out;
  }

  sockaddr_in6 sin6{};
  sin6.sin6_family = AF_INET6;
  sin6.sin6_port = htons(port);
  std::string_view addr = ip;
  if (auto pct = ip.find('%'); pct != std::string_view::npos) {
    auto scope = parse_scope(ip.substr(pct + 1));
    if (!scope) return std::nullopt;
    sin6.sin6_scope_id = *scope;
    addr = ip.substr(0, pct);
  }
  std::string text(addr);
  if (inet_pton(AF_INET6, text.c_str(), &sin6.sin6_addr) != 1) return std::nullopt;
  std::memcpy(&out.ss, &sin6, sizeof sin6);
  out.len = sizeof sin6;
  return out;
}

SockAddr SockAddr::from(const sockaddr *sa, socklen_t len) noexcept {
  SockAddr out;
  if (sa == nullptr) return out;
  if (sa->sa_family == AF_INET && len >= static_cast<socklen_t>(sizeof(sockaddr_in))) {
    std::memcpy(&out.ss, sa, sizeof(sockaddr_in));
    out.len = sizeof(sockaddr_in);
  } else if (sa->sa_family == AF_INET6 && len >= static_cast<socklen_t>(sizeof(sockaddr_in6))) {
    std::memcpy(&out.ss, sa, sizeof(sockaddr_in6));
    out.len = sizeof(sockaddr_in6);
  }
  return out;
}

SockAddr SockAddr::any(int family, std::uint16_t port) noexcept {
  SockAddr out;
  if (family == AF_INET) {
    auto *sin = reinterpret_cast<sockaddr_in *>(&out.ss);
    sin->sin_family = AF_INET;
    sin->sin_port = htons(port);
    sin->sin_addr.s_addr = htonl(INADDR_ANY);
    out.len = sizeof(sockaddr_in);
  } else if (family == AF_INET6) {
    auto *sin6 = reinterpret_cast<sockaddr_in6 *>(&out.ss);
    sin6->sin6_family = AF_INET6;
    sin6->sin6_port = htons(port);
    sin6->sin6_addr = in6addr_any;
    out.len = sizeof(sockaddr_in6);
  }
  return out;
}

bool SockAddr::is_unspecified() const noexcept {
  if (is_v4()) return v4().sin_addr.s_addr == htonl(INADDR_ANY);
  if (is_v6()) return IN6_IS_ADDR_UNSPECIFIED(&v6().sin6_addr);
  return false;
}

std::uint16_t SockAddr::port() const noexcept {
  if (is_v4()) return ntohs(v4().sin_port);
  if (is_v6()) return ntohs(v6().sin6_port);
  return 0;
}

void SockAddr::set_port(std::uint16_t port) noexcept {
  if (is_v4()) reinterpret_cast<sockaddr_in *>(&ss)->sin_port = htons(port);
  if (is_v6()) reinterpret_cast<sockaddr_in6 *>(&ss)->sin6_port = htons(port);
}

std::string SockAddr::host() const {
  char buf[INET6_ADDRSTRLEN] = {};
  if (is_v4()) {
    inet_ntop(AF_INET, &v4().sin_addr, buf, sizeof buf);
    return buf;
  }
  if (is_v6()) {
    inet_ntop(AF_INET6, &v6().sin6_addr, buf, sizeof buf);
    std::string out = buf;
    if (v6().sin6_scope_id != 0) out += "%" + std::to_string(v6().sin6_scope_id);
    return out;
  }
  return {};
}

std::string SockAddr::to_string() const {
  if (is_v4()) return host() + ":" + std::to_string(port());
  if (is_v6()) return "[" + host() + "]:" + std::to_string(port());
  return {};
}

bool operator==(const SockAddr &a, const SockAddr &b) noexcept {
  if (a.family() != b.family()) return false;
  if (a.is_v4()) return a.v4().sin_port == b.v4().sin_port && a.v4().sin_addr.s_addr == b.v4().sin_addr.s_addr;
  if (a.is_v6())
    return a.v6().sin6_port == b.v6().sin6_port && a.v6().sin6_scope_id == b.v6().sin6_scope_id &&
           std::memcmp(&a.v6().sin6_addr, &b.v6().sin6_addr, sizeof(in6_addr)) == 0;
  return true;  // both empty
}

std::size_t SockAddrHash::operator()(const SockAddr &a) const noexcept {
  std::size_t h = static_cast<std::size_t>(a.family());
  if (a.is_v4()) {
    h = mix(h, (std::uint64_t{a.v4().sin_addr.s_addr} << 16) | a.v4().sin_port);
  } else if (a.is_v6()) {
    std::uint64_t w[2];
    std::memcpy(w, &a.v6().sin6_addr, sizeof w);
    h = mix(h, w[0]);
    h = mix(h, w[1]);
    h = mix(h, (std::uint64_t{a.v6().sin6_scope_id} << 16) | a.v6().sin6_port);
  }
  return h;
}

}  // namespace uvwt::detail
