#pragma once

#include <uvwt/certificate.hpp>

#include <gnutls/gnutls.h>
#include <gnutls/x509.h>

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace uvwt::detail {

// Owns one GnuTLS object handle and releases it with its deinit function.
template <typename Handle, void (*Deinit)(Handle)>
class GnutlsHandle {
 public:
  GnutlsHandle() = default;
  explicit GnutlsHandle(Handle h) noexcept : h_(h) {}
  GnutlsHandle(GnutlsHandle &&o) noexcept : h_(std::exchange(o.h_, nullptr)) {}
  GnutlsHandle &operator=(GnutlsHandle &&o) noexcept {
    if (this != &o) {
      reset();
      h_ = std::exchange(o.h_, nullptr);
    }
    return *this;
  }
  GnutlsHandle(const GnutlsHandle &) = delete;
  GnutlsHandle &operator=(const GnutlsHandle &) = delete;
  ~GnutlsHandle() { reset(); }

  void reset() noexcept {
    if (h_ != nullptr) Deinit(std::exchange(h_, nullptr));
  }
  [[nodiscard]] Handle get() const noexcept { return h_; }
  Handle *out() noexcept {
    reset();
    return &h_;
  }
  explicit operator bool() const noexcept { return h_ != nullptr; }

 private:
  Handle h_ = nullptr;
};

using X509Cert = GnutlsHandle<gnutls_x509_crt_t, gnutls_x509_crt_deinit>;
using X509Key = GnutlsHandle<gnutls_x509_privkey_t, gnutls_x509_privkey_deinit>;

// A datum whose buffer GnuTLS allocated (exports, encodings).
struct OwnedDatum {
  gnutls_datum_t d{nullptr, 0};
  OwnedDatum() = default;
  OwnedDatum(const OwnedDatum &) = delete;
  OwnedDatum &operator=(const OwnedDatum &) = delete;
  ~OwnedDatum() {
    if (d.data != nullptr) gnutls_free(d.data);
  }
  [[nodiscard]] std::string str() const { return {reinterpret_cast<const char *>(d.data), d.size}; }
  [[nodiscard]] std::span<const std::uint8_t> bytes() const { return {d.data, d.size}; }
};

// A borrowed view as the datum GnuTLS input parameters take.
inline gnutls_datum_t as_datum(std::string_view s) noexcept {
  return {reinterpret_cast<unsigned char *>(const_cast<char *>(s.data())), static_cast<unsigned int>(s.size())};
}

// "gnutls_x: <GnuTLS message>" style text for an error code.
std::string gnutls_error_text(const char *what, int rv);

// An IPv4 (4 bytes) or IPv6 (16 bytes) address written as a literal; "[::1]"
// is accepted too since URLs bracket IPv6 hosts.
struct IpLiteral {
  std::array<std::uint8_t, 16> bytes{};
  std::size_t size = 0;
};
std::optional<IpLiteral> parse_ip_literal(std::string_view text);

std::array<std::uint8_t, 32> sha256_digest(std::span<const std::uint8_t> data);
std::string hex_encode(std::span<const std::uint8_t> data);
std::string base64_encode(std::span<const std::uint8_t> data);

// What make_certificate builds. Unlike the public helper it can make CA
// certificates and chains, and put the validity anywhere: tests need expired,
// not-yet-valid and CA-issued certificates.
struct CertificateSpec {
  std::vector<std::string> names;  // SAN entries; the first is the CN
  std::chrono::system_clock::time_point not_before;
  std::chrono::system_clock::time_point not_after;
  bool is_ca = false;
};

// Self-signed when `issuer` is null, else signed by the issuer's key.
Error make_certificate(const CertificateSpec &spec, const CertificatePair *issuer, CertificatePair &out);

// The first certificate of a PEM text.
Error import_first_certificate(std::string_view pem, X509Cert &out);

// Whole file into `out`; Errc::configuration naming `what` and the path.
Error read_file(const std::string &path, const char *what, std::string &out);

}  // namespace uvwt::detail
