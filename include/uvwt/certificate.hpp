#pragma once

#include <uvwt/export.hpp>
#include <uvwt/error.hpp>

#include <array>
#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace uvwt {

// A certificate with its private key, both PEM, and the SHA-256 of the
// certificate's DER: the value browsers take in `serverCertificateHashes`.
struct UVWT_EXPORT CertificatePair {
  std::string cert_pem;
  std::string key_pem;
  std::array<std::uint8_t, 32> sha256{};

  // Lower-case hex without separators (64 characters).
  [[nodiscard]] std::string sha256_hex() const;
  // Standard base64 with padding (44 characters), ready for JavaScript's atob().
  [[nodiscard]] std::string sha256_base64() const;
};

// Default lifetime of generated certificates: 10 days. Browsers accept a
// certificate pinned through serverCertificateHashes only when its whole
// validity period is at most 14 days.
inline constexpr std::chrono::hours default_certificate_validity{240};

// Creates a self-signed ECDSA P-256 server certificate (SHA-256 signature,
// CA=false, digitalSignature, serverAuth). `names` go into the subject
// alternative names (IP literals as IP entries, the rest as DNS names); the
// first one is also the common name. The validity starts one hour in the past
// to absorb clock skew and lasts `validity` in total.
// Errc::configuration for an empty name list or a validity of an hour or less.
UVWT_EXPORT Error generate_self_signed_certificate(const std::vector<std::string> &names, std::chrono::hours validity,
                                                   CertificatePair &out);
inline Error generate_self_signed_certificate(const std::vector<std::string> &names, CertificatePair &out) {
  return generate_self_signed_certificate(names, default_certificate_validity, out);
}

// SHA-256 of the DER of the first (leaf) certificate in `cert_pem`.
UVWT_EXPORT Error certificate_sha256_from_pem(std::string_view cert_pem, std::array<std::uint8_t, 32> &out);

// Writes the certificate (mode 0644) and the key (mode 0600), replacing
// existing files. Errc::configuration naming the file on failure.
UVWT_EXPORT Error write_certificate_files(const CertificatePair &pair, const std::string &cert_path,
                                          const std::string &key_path);

// Reads a pinned SHA-256 given as hex (64 digits, optionally colon separated
// per byte as `openssl x509 -fingerprint` prints it) or as base64 (standard or
// URL-safe alphabet, padding optional). Surrounding blanks are ignored.
// nullopt when the text is neither or does not hold exactly 32 bytes.
UVWT_EXPORT std::optional<std::array<std::uint8_t, 32>> parse_certificate_hash(std::string_view text);

}  // namespace uvwt
