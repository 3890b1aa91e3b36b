#include <uvwt/certificate.hpp>

#include "catch.hpp"
#include "quic/certificate.hpp"

#include <gnutls/x509.h>
#include <sys/stat.h>

#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

using namespace uvwt;

namespace {

struct TempDir {
  std::filesystem::path path;
  TempDir() {
    std::string tmpl = (std::filesystem::temp_directory_path() / ("uvwt-cert-" + std::string(6, 'X'))).string();
    REQUIRE(::mkdtemp(tmpl.data()) != nullptr);
    path = tmpl;
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
  }
};

std::string slurp(const std::filesystem::path &p) {
  std::ifstream in(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

detail::X509Cert parse(const CertificatePair &pair) {
  detail::X509Cert crt;
  REQUIRE_FALSE(detail::import_first_certificate(pair.cert_pem, crt));
  return crt;
}

struct San {
  unsigned type;
  std::string value;
};

std::vector<San> subject_alt_names(gnutls_x509_crt_t crt) {
  std::vector<San> out;
  for (unsigned i = 0;; ++i) {
    char buf[256];
    size_t size = sizeof buf;
    unsigned critical = 0;
    const int type = gnutls_x509_crt_get_subject_alt_name(crt, i, buf, &size, &critical);
    if (type < 0) break;
    out.push_back({static_cast<unsigned>(type), std::string(buf, size)});
  }
  return out;
}

}  // namespace

TEST_CASE("self-signed certificate has the shape browsers pin", "[quic][certificate]") {
  CertificatePair pair;
  const std::time_t before = std::time(nullptr);
  REQUIRE_FALSE(generate_self_signed_certificate({"localhost", "127.0.0.1", "::1"}, pair));
  REQUIRE(pair.cert_pem.find("-----BEGIN CERTIFICATE-----") == 0);
  REQUIRE(pair.key_pem.find("-----BEGIN PRIVATE KEY-----") == 0);

  auto crt = parse(pair);

  SECTION("ECDSA P-256 key, SHA-256 signature, X.509 v3") {
    unsigned bits = 0;
    CHECK(gnutls_x509_crt_get_pk_algorithm(crt.get(), &bits) == GNUTLS_PK_ECDSA);
    gnutls_ecc_curve_t curve = GNUTLS_ECC_CURVE_INVALID;
    gnutls_datum_t x{}, y{};
    REQUIRE(gnutls_x509_crt_get_pk_ecc_raw(crt.get(), &curve, &x, &y) == 0);
    gnutls_free(x.data);
    gnutls_free(y.data);
    CHECK(curve == GNUTLS_ECC_CURVE_SECP256R1);
    CHECK(gnutls_x509_crt_get_signature_algorithm(crt.get()) == GNUTLS_SIGN_ECDSA_SHA256);
    CHECK(gnutls_x509_crt_get_version(crt.get()) == 3);
  }

  SECTION("validity starts an hour ago and lasts ten days") {
    const std::time_t nb = gnutls_x509_crt_get_activation_time(crt.get());
    const std::time_t na = gnutls_x509_crt_get_expiration_time(crt.get());
    CHECK(std::abs(static_cast<long>(nb - (before - 3600))) <= 120);
    CHECK(na - nb == 240 * 3600);
    CHECK(na - nb <= 14 * 24 * 3600);
  }

  SECTION("names: CN is the first, SANs carry DNS and IP entries") {
    char cn[128];
    size_t cn_size = sizeof cn;
    REQUIRE(gnutls_x509_crt_get_dn_by_oid(crt.get(), GNUTLS_OID_X520_COMMON_NAME, 0, 0, cn, &cn_size) == 0);
    CHECK(std::string(cn, cn_size) == "localhost");
    const auto sans = subject_alt_names(crt.get());
    REQUIRE(sans.size() == 3);
    CHECK(sans[0].type == GNUTLS_SAN_DNSNAME);
    CHECK(sans[0].value == "localhost");
    CHECK(sans[1].type == GNUTLS_SAN_IPADDRESS);
    CHECK(sans[1].value == std::string("\x7f\x00\x00\x01", 4));
    CHECK(sans[2].type == GNUTLS_SAN_IPADDRESS);
    CHECK(sans[2].value.size() == 16);
    CHECK(gnutls_x509_crt_check_hostname(crt.get(), "localhost") != 0);
    const unsigned char v4[4] = {127, 0, 0, 1};
    CHECK(gnutls_x509_crt_check_ip(crt.get(), v4, 4, 0) != 0);
    CHECK(gnutls_x509_crt_check_hostname(crt.get(), "example.com") == 0);
  }

  SECTION("a leaf for TLS servers: CA=false, digitalSignature, serverAuth") {
    unsigned critical = 0, ca = 1;
    int pathlen = 0;
    REQUIRE(gnutls_x509_crt_get_basic_constraints(crt.get(), &critical, &ca, &pathlen) >= 0);
    CHECK(ca == 0);
    unsigned usage = 0;
    REQUIRE(gnutls_x509_crt_get_key_usage(crt.get(), &usage, &critical) >= 0);
    CHECK(usage == GNUTLS_KEY_DIGITAL_SIGNATURE);
    char oid[128];
    size_t oid_size = sizeof oid;
    REQUIRE(gnutls_x509_crt_get_key_purpose_oid(crt.get(), 0, oid, &oid_size, &critical) >= 0);
    CHECK(std::string(oid) == GNUTLS_KP_TLS_WWW_SERVER);
  }

  SECTION("hash is the SHA-256 of the DER") {
    detail::OwnedDatum der;
    REQUIRE(gnutls_x509_crt_export2(crt.get(), GNUTLS_X509_FMT_DER, &der.d) == 0);
    CHECK(detail::sha256_digest(der.bytes()) == pair.sha256);
    std::array<std::uint8_t, 32> again{};
    REQUIRE_FALSE(certificate_sha256_from_pem(pair.cert_pem, again));
    CHECK(again == pair.sha256);
    CHECK(pair.sha256_hex() == detail::hex_encode(pair.sha256));
  }

  SECTION("every generation has a fresh key and serial") {
    CertificatePair other;
    REQUIRE_FALSE(generate_self_signed_certificate({"localhost"}, other));
    CHECK(other.sha256 != pair.sha256);
    CHECK(other.key_pem != pair.key_pem);
  }
}

TEST_CASE("certificate generation rejects bad arguments", "[quic][certificate]") {
  CertificatePair pair;
  CHECK(generate_self_signed_certificate({}, pair).errc == Errc::configuration);
  CHECK(generate_self_signed_certificate({""}, pair).errc == Errc::configuration);
  CHECK(generate_self_signed_certificate({"localhost"}, std::chrono::hours{1}, pair).errc == Errc::configuration);
  REQUIRE_FALSE(generate_self_signed_certificate({"[::1]"}, std::chrono::hours{48}, pair));
  auto crt = parse(pair);
  const auto sans = subject_alt_names(crt.get());
  REQUIRE(sans.size() == 1);
  CHECK(sans[0].type == GNUTLS_SAN_IPADDRESS);
}

TEST_CASE("certificate_sha256_from_pem refuses garbage", "[quic][certificate]") {
  std::array<std::uint8_t, 32> out{};
  CHECK(certificate_sha256_from_pem("not a certificate", out).errc == Errc::configuration);
  CHECK(certificate_sha256_from_pem("", out).errc == Errc::configuration);
}

TEST_CASE("hex and base64 encoders follow RFC 4648", "[quic][certificate]") {
  auto b64 = [](std::string_view s) {
    return detail::base64_encode({reinterpret_cast<const std::uint8_t *>(s.data()), s.size()});
  };
  CHECK(b64("") == "");
  CHECK(b64("f") == "Zg==");
  CHECK(b64("fo") == "Zm8=");
  CHECK(b64("foo") == "Zm9v");
  CHECK(b64("foob") == "Zm9vYg==");
  CHECK(b64("fooba") == "Zm9vYmE=");
  CHECK(b64("foobar") == "Zm9vYmFy");
  const std::uint8_t bytes[] = {0x00, 0xab, 0xff, 0x10};
  CHECK(detail::hex_encode(bytes) == "00abff10");
}

TEST_CASE("pinned hashes parse from hex, colon hex and base64", "[quic][certificate]") {
  CertificatePair pair;
  for (std::size_t i = 0; i < pair.sha256.size(); ++i) pair.sha256[i] = static_cast<std::uint8_t>(i * 7 + 0xf0);
  const std::string hex = pair.sha256_hex();
  const std::string b64 = pair.sha256_base64();
  REQUIRE(hex.size() == 64);
  REQUIRE(b64.size() == 44);
  REQUIRE(b64.back() == '=');

  std::string upper = hex;
  for (char &c : upper) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  std::string colons;
  for (std::size_t i = 0; i < upper.size(); i += 2) {
    if (i != 0) colons += ':';
    colons += upper.substr(i, 2);
  }
  std::string url_safe = b64;
  for (char &c : url_safe) {
    if (c == '+') c = '-';
    if (c == '/') c = '_';
  }

  for (const std::string &text :
       {hex, upper, colons, b64, b64.substr(0, 43), url_safe, "  " + hex + "\n", "\t" + b64 + " "}) {
    INFO(text);
    auto parsed = parse_certificate_hash(text);
    REQUIRE(parsed.has_value());
    CHECK(*parsed == pair.sha256);
  }

  const std::vector<std::string> bad = {
      "",
      "   ",
      hex.substr(0, 63),
      hex + "0",
      hex.substr(0, 62) + "zz",
      colons.substr(0, colons.size() - 3),
      colons + ":00",
      ":" + colons.substr(1) + "0",
      colons.substr(0, 2) + "::" + colons.substr(3),
      b64.substr(0, 40),
      b64 + "==",
      b64.substr(0, 43) + "!",
      "Zm9vYmFy",
      "sha-256 " + hex,
  };
  for (const std::string &text : bad) {
    INFO(text);
    CHECK_FALSE(parse_certificate_hash(text).has_value());
  }
}

TEST_CASE("write_certificate_files writes PEM with a private key mode", "[quic][certificate]") {
  TempDir dir;
  CertificatePair pair;
  REQUIRE_FALSE(generate_self_signed_certificate({"localhost"}, pair));
  const auto cert = dir.path / "cert.pem";
  const auto key = dir.path / "key.pem";
  {
    std::ofstream old(key);
    old << "stale content that is longer than nothing";
  }
  ::chmod(key.c_str(), 0644);
  REQUIRE_FALSE(write_certificate_files(pair, cert.string(), key.string()));
  CHECK(slurp(cert) == pair.cert_pem);
  CHECK(slurp(key) == pair.key_pem);
  struct stat st {};
  REQUIRE(::stat(key.c_str(), &st) == 0);
  CHECK((st.st_mode & 0777) == 0600);

  const std::string missing = (dir.path / "no-such-dir" / "c.pem").string();
  Error e = write_certificate_files(pair, missing, key.string());
  CHECK(e.errc == Errc::configuration);
  CHECK(e.message.find(missing) != std::string::npos);
}

TEST_CASE("IP literals are recognised with or without brackets", "[quic][certificate]") {
  CHECK(detail::parse_ip_literal("127.0.0.1")->size == 4);
  CHECK(detail::parse_ip_literal("::1")->size == 16);
  CHECK(detail::parse_ip_literal("[::1]")->size == 16);
  CHECK(detail::parse_ip_literal("[fe80::1]")->bytes[0] == 0xfe);
  CHECK_FALSE(detail::parse_ip_literal("localhost"));
  CHECK_FALSE(detail::parse_ip_literal(""));
  CHECK_FALSE(detail::parse_ip_literal("[]"));
  CHECK_FALSE(detail::parse_ip_literal("1.2.3"));
  CHECK_FALSE(detail::parse_ip_literal(std::string(100, '1')));
}
