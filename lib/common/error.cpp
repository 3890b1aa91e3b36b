#include <uvwt/error.hpp>

#include <cstdio>

namespace uvwt {

namespace {
constexpr std::string_view kErrcNames[] = {
    "ok",
    "configuration",
    "invalid_url",
    "dns",
    "refused",
    "timeout",
    "certificate",
    "handshake",
    "http_status",
    "protocol",
    "connection",
    "session",
    "stream",
    "datagram",
    "flow_control",
    "server",
    "authentication",
    "serialization",
    "client",
    "closed",
    "cancelled",
    "unsupported",
    "proxy_dns",
    "proxy_connection",
    "proxy_certificate",
    "proxy_authentication",
    "proxy_refused",
};
static_assert(std::size(kErrcNames) == static_cast<std::size_t>(Errc::proxy_refused) + 1);

constexpr std::string_view kSpaceNames[] = {
    "none", "transport", "h3", "webtransport", "application", "tls_alert", "http_status", "system",
};
static_assert(std::size(kSpaceNames) == static_cast<std::size_t>(CodeSpace::system) + 1);

// " (h3 0x10c)", " (HTTP 404)", " (TLS alert 42)": how the code reads in its space.
std::string code_suffix(const Error &e) {
  char buf[64];
  const auto c = static_cast<unsigned long long>(e.code);
  switch (e.space) {
    case CodeSpace::none:
      return e.http_status != 0 ? " (HTTP " + std::to_string(e.http_status) + ")" : std::string{};
    case CodeSpace::http_status:
      return " (HTTP " + std::to_string(e.code) + ")";
    case CodeSpace::tls_alert:
      return " (TLS alert " + std::to_string(e.code) + ")";
    case CodeSpace::system:
      return " (errno " + std::to_string(e.code) + ")";
    default:
      std::snprintf(buf, sizeof buf, " (%s 0x%llx)", code_space_name(e.space).data(), c);
      return buf;
  }
}
}  // namespace

std::string_view errc_name(Errc e) noexcept {
  const auto i = static_cast<std::size_t>(e);
  return i < std::size(kErrcNames) ? kErrcNames[i] : "unknown";
}

std::string_view code_space_name(CodeSpace s) noexcept {
  const auto i = static_cast<std::size_t>(s);
  return i < std::size(kSpaceNames) ? kSpaceNames[i] : "unknown";
}

std::string Error::to_string() const {
  if (ok()) return {};
  std::string s{errc_name(errc)};
  s += ": ";
  s += message;
  s += code_suffix(*this);
  return s;
}

}  // namespace uvwt
