#include "quic/certificate.hpp"

#include "common/log.hpp"

#include <gnutls/crypto.h>

#include <arpa/inet.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <ctime>

namespace uvwt::detail {

namespace {

constexpr char kBase64Alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

// Browsers refuse hash-pinned certificates valid for longer than this.
constexpr std::chrono::hours kBrowserPinnedMaxValidity{14 * 24};

int hex_value(char c) noexcept {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Both the standard and the URL-safe alphabets, so that hashes copied from
// either kind of tool are accepted.
int base64_value(char c) noexcept {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '+' || c == '-') return 62;
  if (c == '/' || c == '_') return 63;
  return -1;
}

std::optional<std::vector<std::uint8_t>> base64_decode(std::string_view text) {
  std::size_t pad = 0;
  while (!text.empty() && text.back() == '=') {
    text.remove_suffix(1);
    ++pad;
  }
  if (pad > 2 || text.size() % 4 == 1) return std::nullopt;
  if (pad != 0 && (text.size() + pad) % 4 != 0) return std::nullopt;
  std::vector<std::uint8_t> out;
  out.reserve(text.size() * 3 / 4);
  std::uint32_t acc = 0;
  int bits = 0;
  for (char c : text) {
    const int v = base64_value(c);
    if (v < 0) return std::nullopt;
    acc = (acc << 6) | static_cast<std::uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(static_cast<std::uint8_t>((acc >> bits) & 0xff));
    }
  }
  return out;
}

std::optional<std::array<std::uint8_t, 32>> decode_hex_hash(std::string_view text) {
  const bool colons = text.find(':') != std::string_view::npos;
  std::array<std::uint8_t, 32> out{};
  std::size_t pos = 0;
  for (std::size_t i = 0; i < out.size(); ++i) {
    if (colons && i > 0) {
      if (pos >= text.size() || text[pos] != ':') return std::nullopt;
      ++pos;
    }
    if (pos + 2 > text.size()) return std::nullopt;
    const int hi = hex_value(text[pos]);
    const int lo = hex_value(text[pos + 1]);
    if (hi < 0 || lo < 0) return std::nullopt;
    out[i] = static_cast<std::uint8_t>(hi << 4 | lo);
    pos += 2;
  }
  if (pos != text.size()) return std::nullopt;
  return out;
}

Error gnutls_failure(const char *what, int rv) { return Error(Errc::configuration, gnutls_error_text(what, rv)); }

std::time_t to_time_t(std::chrono::system_clock::time_point t) { return std::chrono::system_clock::to_time_t(t); }

// Positive, with a non-zero leading byte so that the DER INTEGER keeps all 16
// bytes: a random 127-bit serial.
Error set_random_serial(gnutls_x509_crt_t crt) {
  std::array<std::uint8_t, 16> serial{};
  if (int rv = gnutls_rnd(GNUTLS_RND_NONCE, serial.data(), serial.size()); rv < 0)
    return gnutls_failure("gnutls_rnd", rv);
  serial[0] = static_cast<std::uint8_t>((serial[0] & 0x7f) | 0x40);
  if (int rv = gnutls_x509_crt_set_serial(crt, serial.data(), serial.size()); rv < 0)
    return gnutls_failure("gnutls_x509_crt_set_serial", rv);
  return {};
}

Error set_names(gnutls_x509_crt_t crt, const std::vector<std::string> &names) {
  const std::string &cn = names.front();
  if (int rv = gnutls_x509_crt_set_dn_by_oid(crt, GNUTLS_OID_X520_COMMON_NAME, 0, cn.data(),
                                             static_cast<unsigned>(cn.size()));
      rv < 0)
    return gnutls_failure("gnutls_x509_crt_set_dn_by_oid", rv);
  for (const auto &name : names) {
    int rv = 0;
    if (auto ip = parse_ip_literal(name)) {
      rv = gnutls_x509_crt_set_subject_alt_name(crt, GNUTLS_SAN_IPADDRESS, ip->bytes.data(),
                                                static_cast<unsigned>(ip->size), GNUTLS_FSAN_APPEND);
    } else {
      rv = gnutls_x509_crt_set_subject_alt_name(crt, GNUTLS_SAN_DNSNAME, name.data(),
                                                static_cast<unsigned>(name.size()), GNUTLS_FSAN_APPEND);
    }
    if (rv < 0) return gnutls_failure("gnutls_x509_crt_set_subject_alt_name", rv);
  }
  return {};
}

Error set_usage(gnutls_x509_crt_t crt, bool is_ca) {
  if (int rv = gnutls_x509_crt_set_basic_constraints(crt, is_ca ? 1 : 0, -1); rv < 0)
    return gnutls_failure("gnutls_x509_crt_set_basic_constraints", rv);
  const unsigned usage = is_ca ? (GNUTLS_KEY_KEY_CERT_SIGN | GNUTLS_KEY_CRL_SIGN | GNUTLS_KEY_DIGITAL_SIGNATURE)
                               : GNUTLS_KEY_DIGITAL_SIGNATURE;
  if (int rv = gnutls_x509_crt_set_key_usage(crt, usage); rv < 0)
    return gnutls_failure("gnutls_x509_crt_set_key_usage", rv);
  if (!is_ca) {
    if (int rv = gnutls_x509_crt_set_key_purpose_oid(crt, GNUTLS_KP_TLS_WWW_SERVER, 0); rv < 0)
      return gnutls_failure("gnutls_x509_crt_set_key_purpose_oid", rv);
  }
  std::array<unsigned char, 64> id{};
  std::size_t id_size = id.size();
  if (gnutls_x509_crt_get_key_id(crt, GNUTLS_KEYID_USE_SHA1, id.data(), &id_size) >= 0)
    gnutls_x509_crt_set_subject_key_id(crt, id.data(), id_size);
  return {};
}

// Adds the issuer's key identifier so that verifiers can pick the right CA
// certificate when several share a subject.
void set_authority_key_id(gnutls_x509_crt_t crt, gnutls_x509_crt_t issuer) {
  std::array<unsigned char, 64> id{};
  std::size_t id_size = id.size();
  unsigned critical = 0;
  if (gnutls_x509_crt_get_subject_key_id(issuer, id.data(), &id_size, &critical) >= 0)
    gnutls_x509_crt_set_authority_key_id(crt, id.data(), id_size);
}

Error export_pair(gnutls_x509_crt_t crt, gnutls_x509_privkey_t key, CertificatePair &out) {
  OwnedDatum pem, der, key_pem;
  if (int rv = gnutls_x509_crt_export2(crt, GNUTLS_X509_FMT_PEM, &pem.d); rv < 0)
    return gnutls_failure("gnutls_x509_crt_export2", rv);
  if (int rv = gnutls_x509_crt_export2(crt, GNUTLS_X509_FMT_DER, &der.d); rv < 0)
    return gnutls_failure("gnutls_x509_crt_export2", rv);
  // PKCS#8 ("BEGIN PRIVATE KEY") is the form every TLS stack loads.
  if (int rv = gnutls_x509_privkey_export2_pkcs8(key, GNUTLS_X509_FMT_PEM, nullptr, GNUTLS_PKCS_PLAIN, &key_pem.d);
      rv < 0)
    return gnutls_failure("gnutls_x509_privkey_export2_pkcs8", rv);
  out.cert_pem = pem.str();
  out.key_pem = key_pem.str();
  out.sha256 = sha256_digest(der.bytes());
  return {};
}

Error write_file(const std::string &path, std::string_view data, mode_t mode, const char *what) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
  if (fd < 0) {
    return Error(Errc::configuration,
                 std::string("cannot write ") + what + " file " + path + ": " + std::strerror(errno));
  }
  // An existing file keeps its old mode through O_CREAT; a key must not stay readable.
  int err = ::fchmod(fd, mode) == 0 ? 0 : errno;
  std::size_t done = 0;
  while (err == 0 && done < data.size()) {
    const ssize_t n = ::write(fd, data.data() + done, data.size() - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      err = errno;
    } else {
      done += static_cast<std::size_t>(n);
    }
  }
  if (::close(fd) != 0 && err == 0) err = errno;
  if (err != 0) {
    return Error(Errc::configuration,
                 std::string("cannot write ") + what + " file " + path + ": " + std::strerror(err));
  }
  return {};
}

}  // namespace

std::string gnutls_error_text(const char *what, int rv) { return std::string(what) + ": " + gnutls_strerror(rv); }

std::optional<IpLiteral> parse_ip_literal(std::string_view text) {
  if (text.size() >= 2 && text.front() == '[' && text.back() == ']') {
    text.remove_prefix(1);
    text.remove_suffix(1);
  }
  if (text.empty() || text.size() >= INET6_ADDRSTRLEN) return std::nullopt;
  std::array<char, INET6_ADDRSTRLEN> buf{};
  std::memcpy(buf.data(), text.data(), text.size());
  IpLiteral ip;
  if (::inet_pton(AF_INET, buf.data(), ip.bytes.data()) == 1) {
    ip.size = 4;
    return ip;
  }
  if (::inet_pton(AF_INET6, buf.data(), ip.bytes.data()) == 1) {
    ip.size = 16;
    return ip;
  }
  return std::nullopt;
}

std::array<std::uint8_t, 32> sha256_digest(std::span<const std::uint8_t> data) {
  std::array<std::uint8_t, 32> out{};
  // Cannot fail for SHA-256 short of a broken library; a zero digest then
  // matches no pin, which fails closed.
  gnutls_hash_fast(GNUTLS_DIG_SHA256, data.data(), data.size(), out.data());
  return out;
}

std::string hex_encode(std::span<const std::uint8_t> data) {
  static constexpr char digits[] = "0123456789abcdef";
  std::string out;
  out.reserve(data.size() * 2);
  for (std::uint8_t b : data) {
    out.push_back(digits[b >> 4]);
    out.push_back(digits[b & 0x0f]);
  }
  return out;
}

std::string base64_encode(std::span<const std::uint8_t> data) {
  std::string out;
  out.reserve((data.size() + 2) / 3 * 4);
  std::size_t i = 0;
  for (; i + 3 <= data.size(); i += 3) {
    const std::uint32_t v = std::uint32_t{data[i]} << 16 | std::uint32_t{data[i + 1]} << 8 | data[i + 2];
    out.push_back(kBase64Alphabet[(v >> 18) & 63]);
    out.push_back(kBase64Alphabet[(v >> 12) & 63]);
    out.push_back(kBase64Alphabet[(v >> 6) & 63]);
    out.push_back(kBase64Alphabet[v & 63]);
  }
  const std::size_t rest = data.size() - i;
  if (rest != 0) {
    std::uint32_t v = std::uint32_t{data[i]} << 16;
    if (rest == 2) v |= std::uint32_t{data[i + 1]} << 8;
    out.push_back(kBase64Alphabet[(v >> 18) & 63]);
    out.push_back(kBase64Alphabet[(v >> 12) & 63]);
    out.push_back(rest == 2 ? kBase64Alphabet[(v >> 6) & 63] : '=');
    out.push_back('=');
  }
  return out;
}

Error make_certificate(const CertificateSpec &spec, const CertificatePair *issuer, CertificatePair &out) {
  if (spec.names.empty()) return Error(Errc::configuration, "certificate needs at least one name");
  for (const auto &n : spec.names) {
    if (n.empty()) return Error(Errc::configuration, "certificate name must not be empty");
  }
  if (spec.not_after <= spec.not_before)
    return Error(Errc::configuration, "certificate validity ends before it starts");

  X509Key key;
  if (int rv = gnutls_x509_privkey_init(key.out()); rv < 0) return gnutls_failure("gnutls_x509_privkey_init", rv);
  if (int rv =
          gnutls_x509_privkey_generate(key.get(), GNUTLS_PK_ECDSA, GNUTLS_CURVE_TO_BITS(GNUTLS_ECC_CURVE_SECP256R1), 0);
      rv < 0)
    return gnutls_failure("gnutls_x509_privkey_generate", rv);

  X509Cert crt;
  if (int rv = gnutls_x509_crt_init(crt.out()); rv < 0) return gnutls_failure("gnutls_x509_crt_init", rv);
  if (int rv = gnutls_x509_crt_set_version(crt.get(), 3); rv < 0)
    return gnutls_failure("gnutls_x509_crt_set_version", rv);
  if (Error e = set_random_serial(crt.get())) return e;
  if (int rv = gnutls_x509_crt_set_activation_time(crt.get(), to_time_t(spec.not_before)); rv < 0)
    return gnutls_failure("gnutls_x509_crt_set_activation_time", rv);
  if (int rv = gnutls_x509_crt_set_expiration_time(crt.get(), to_time_t(spec.not_after)); rv < 0)
    return gnutls_failure("gnutls_x509_crt_set_expiration_time", rv);
  if (Error e = set_names(crt.get(), spec.names)) return e;
  if (int rv = gnutls_x509_crt_set_key(crt.get(), key.get()); rv < 0)
    return gnutls_failure("gnutls_x509_crt_set_key", rv);
  if (Error e = set_usage(crt.get(), spec.is_ca)) return e;

  if (issuer == nullptr) {
    if (int rv = gnutls_x509_crt_sign2(crt.get(), crt.get(), key.get(), GNUTLS_DIG_SHA256, 0); rv < 0)
      return gnutls_failure("gnutls_x509_crt_sign2", rv);
  } else {
    X509Cert issuer_crt;
    if (Error e = import_first_certificate(issuer->cert_pem, issuer_crt)) return e;
    X509Key issuer_key;
    if (int rv = gnutls_x509_privkey_init(issuer_key.out()); rv < 0)
      return gnutls_failure("gnutls_x509_privkey_init", rv);
    const gnutls_datum_t key_pem = as_datum(issuer->key_pem);
    if (int rv = gnutls_x509_privkey_import2(issuer_key.get(), &key_pem, GNUTLS_X509_FMT_PEM, nullptr, 0); rv < 0)
      return gnutls_failure("issuer key", rv);
    set_authority_key_id(crt.get(), issuer_crt.get());
    if (int rv = gnutls_x509_crt_sign2(crt.get(), issuer_crt.get(), issuer_key.get(), GNUTLS_DIG_SHA256, 0); rv < 0)
      return gnutls_failure("gnutls_x509_crt_sign2", rv);
  }
  return export_pair(crt.get(), key.get(), out);
}

Error import_first_certificate(std::string_view pem, X509Cert &out) {
  if (int rv = gnutls_x509_crt_init(out.out()); rv < 0) return gnutls_failure("gnutls_x509_crt_init", rv);
  const gnutls_datum_t data = as_datum(pem);
  if (int rv = gnutls_x509_crt_import(out.get(), &data, GNUTLS_X509_FMT_PEM); rv < 0) {
    out.reset();
    return Error(Errc::configuration, gnutls_error_text("invalid PEM certificate", rv));
  }
  return {};
}

Error read_file(const std::string &path, const char *what, std::string &out) {
  if (path.empty()) return Error(Errc::configuration, std::string(what) + " file name is empty");
  auto failure = [&](int err) {
    return Error(Errc::configuration, std::string("cannot read ") + what + " file " + path + ": " + std::strerror(err));
  };
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return failure(errno);
  out.clear();
  char buf[4096];
  for (;;) {
    const ssize_t n = ::read(fd, buf, sizeof buf);
    if (n > 0) {
      out.append(buf, static_cast<std::size_t>(n));
    } else if (n == 0) {
      break;
    } else if (errno != EINTR) {
      const int err = errno;
      ::close(fd);
      return failure(err);
    }
  }
  ::close(fd);
  return {};
}

}  // namespace uvwt::detail

namespace uvwt {

std::string CertificatePair::sha256_hex() const { return detail::hex_encode(sha256); }

std::string CertificatePair::sha256_base64() const { return detail::base64_encode(sha256); }

Error generate_self_signed_certificate(const std::vector<std::string> &names, std::chrono::hours validity,
                                       CertificatePair &out) {
  if (validity <= std::chrono::hours{1}) {
    return Error(Errc::configuration, "certificate validity must be longer than one hour");
  }
  if (validity > detail::kBrowserPinnedMaxValidity) {
    UVWT_WARN("certificate validity of %lld h exceeds 14 days: browsers will refuse to pin it",
              static_cast<long long>(validity.count()));
  }
  detail::CertificateSpec spec;
  spec.names = names;
  spec.not_before = std::chrono::system_clock::now() - std::chrono::hours{1};
  spec.not_after = spec.not_before + validity;
  return detail::make_certificate(spec, nullptr, out);
}

Error certificate_sha256_from_pem(std::string_view cert_pem, std::array<std::uint8_t, 32> &out) {
  detail::X509Cert crt;
  if (Error e = detail::import_first_certificate(cert_pem, crt)) return e;
  detail::OwnedDatum der;
  if (int rv = gnutls_x509_crt_export2(crt.get(), GNUTLS_X509_FMT_DER, &der.d); rv < 0)
    return Error(Errc::configuration, detail::gnutls_error_text("gnutls_x509_crt_export2", rv));
  out = detail::sha256_digest(der.bytes());
  return {};
}

Error write_certificate_files(const CertificatePair &pair, const std::string &cert_path, const std::string &key_path) {
  if (Error e = detail::write_file(cert_path, pair.cert_pem, 0644, "certificate")) return e;
  return detail::write_file(key_path, pair.key_pem, 0600, "key");
}

std::optional<std::array<std::uint8_t, 32>> parse_certificate_hash(std::string_view text) {
  constexpr std::string_view blanks = " \t\r\n";
  const auto first = text.find_first_not_of(blanks);
  if (first == std::string_view::npos) return std::nullopt;
  text = text.substr(first, text.find_last_not_of(blanks) - first + 1);

  if (text.find(':') != std::string_view::npos || text.size() == 64) {
    if (auto h = detail::decode_hex_hash(text)) return h;
    if (text.find(':') != std::string_view::npos) return std::nullopt;
  }
  auto bytes = detail::base64_decode(text);
  if (!bytes || bytes->size() != 32) return std::nullopt;
  std::array<std::uint8_t, 32> out{};
  std::copy(bytes->begin(), bytes->end(), out.begin());
  return out;
}

}  // namespace uvwt
