#pragma once

#include <netinet/in.h>
#include <sys/socket.h>

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include <uvwt/types.hpp>

namespace uvwt::detail {

// An IPv4 or IPv6 socket address in the form the socket calls and ngtcp2's
// ngtcp2_addr take. Equality and hashing look only at family, address, port
// and (IPv6) scope id, never at padding or flow info, so that addresses
// returned by the kernel compare equal to parsed ones.
struct SockAddr {
  sockaddr_storage ss{};
  socklen_t len = 0;

  // Numeric addresses only ("127.0.0.1", "::1", "[::1]", "fe80::1%eth0");
  // nullopt for anything else, host names included.
  static std::optional<SockAddr> parse(std::string_view ip, std::uint16_t port);
  // Copies what the kernel returned; an unknown family gives an empty address.
  static SockAddr from(const sockaddr *sa, socklen_t len) noexcept;
  // The unspecified address of a family (0.0.0.0 or ::) with the given port.
  static SockAddr any(int family, std::uint16_t port) noexcept;

  [[nodiscard]] bool empty() const noexcept { return len == 0; }
  [[nodiscard]] int family() const noexcept { return len == 0 ? AF_UNSPEC : ss.ss_family; }
  [[nodiscard]] bool is_v4() const noexcept { return family() == AF_INET; }
  [[nodiscard]] bool is_v6() const noexcept { return family() == AF_INET6; }
  // 0.0.0.0 or ::
  [[nodiscard]] bool is_unspecified() const noexcept;

  [[nodiscard]] const sockaddr *sa() const noexcept { return reinterpret_cast<const sockaddr *>(&ss); }
  [[nodiscard]] sockaddr *sa() noexcept { return reinterpret_cast<sockaddr *>(&ss); }
  [[nodiscard]] const sockaddr_in &v4() const noexcept { return *reinterpret_cast<const sockaddr_in *>(&ss); }
  [[nodiscard]] const sockaddr_in6 &v6() const noexcept { return *reinterpret_cast<const sockaddr_in6 *>(&ss); }

  [[nodiscard]] std::uint16_t port() const noexcept;
  void set_port(std::uint16_t port) noexcept;
  // Address without port ("127.0.0.1", "::1", "fe80::1%2"); empty when empty().
  [[nodiscard]] std::string host() const;
  // "127.0.0.1:443", "[::1]:443"; "" when empty().
  [[nodiscard]] std::string to_string() const;
  [[nodiscard]] Address to_address() const { return Address{host(), port()}; }

  friend bool operator==(const SockAddr &a, const SockAddr &b) noexcept;
};

struct SockAddrHash {
  std::size_t operator()(const SockAddr &a) const noexcept;
};

}  // namespace uvwt::detail

template <>
struct std::hash<uvwt::detail::SockAddr> : uvwt::detail::SockAddrHash {};
