#include <uvwt/uvwt.hpp>

#include <string>
#include <vector>

#include "catch.hpp"
#include "common/log.hpp"

TEST_CASE("the log hook receives enabled levels only", "[common]") {
  std::vector<std::pair<uvwt::LogLevel, std::string>> seen;
  const auto old = uvwt::log_level();
  uvwt::set_log_hook([&](uvwt::LogLevel l, std::string_view m) { seen.emplace_back(l, std::string(m)); });
  uvwt::set_log_level(uvwt::LogLevel::info);
  UVWT_DEBUG("hidden %d", 1);
  UVWT_INFO("shown %d", 2);
  UVWT_ERROR("also %s", "shown");
  uvwt::set_log_level(old);
  uvwt::set_log_hook(nullptr);
  REQUIRE(seen.size() == 2);
  CHECK(seen[0].first == uvwt::LogLevel::info);
  CHECK(seen[0].second == "shown 2");
  CHECK(seen[1].second == "also shown");
}

TEST_CASE("errors print their category, status and code", "[common]") {
  const uvwt::Error ok;
  CHECK(ok.ok());
  CHECK(ok.to_string().empty());
  const uvwt::Error e = uvwt::Error::from_http_status(uvwt::Errc::http_status, "server said no", 404);
  CHECK_FALSE(e.ok());
  CHECK(static_cast<bool>(e));
  CHECK(e.http_status == 404);
  CHECK(e.space == uvwt::CodeSpace::http_status);
  CHECK(e.to_string() == "http_status: server said no (HTTP 404)");
  const uvwt::Error c(uvwt::Errc::stream, "reset", uvwt::CodeSpace::application, 0x1e);
  CHECK(c.to_string() == "stream: reset (application 0x1e)");
  // The same number in two code spaces reads differently: no range decoding.
  const uvwt::Error h3(uvwt::Errc::protocol, "bad", uvwt::CodeSpace::h3, 0x10c);
  const uvwt::Error tr(uvwt::Errc::protocol, "bad", uvwt::CodeSpace::transport, 0x0a);
  const uvwt::Error alert(uvwt::Errc::certificate, "refused", uvwt::CodeSpace::tls_alert, 42);
  CHECK(h3.to_string() == "protocol: bad (h3 0x10c)");
  CHECK(tr.to_string() == "protocol: bad (transport 0xa)");
  CHECK(alert.to_string() == "certificate: refused (TLS alert 42)");
  CHECK(uvwt::Error(uvwt::Errc::timeout, "slow").space == uvwt::CodeSpace::none);
  CHECK(uvwt::code_space_name(uvwt::CodeSpace::webtransport) == "webtransport");
  CHECK(uvwt::code_space_name(uvwt::CodeSpace::system) == "system");
  CHECK(uvwt::errc_name(uvwt::Errc::dns) == "dns");
}

TEST_CASE("configurations are validated field by field", "[common]") {
  uvwt::ClientConfig c;
  CHECK(c.validate().ok());
  c.retry_backoff = 0.5;
  auto e = c.validate();
  CHECK(e.errc == uvwt::Errc::configuration);
  CHECK(e.message.find("retry_backoff") != std::string::npos);
  c = uvwt::ClientConfig{};
  c.headers = {{"X-Upper", "v"}};
  CHECK(c.validate().message.find("lower-case") != std::string::npos);
  c = uvwt::ClientConfig{};
  c.max_retry_delay = std::chrono::milliseconds(1);
  CHECK(c.validate().message.find("max_retry_delay") != std::string::npos);
  uvwt::ServerConfig s;
  CHECK(s.validate().message.find("certificate") != std::string::npos);
  s.cert_pem = "x";
  CHECK(s.validate().message.find("cert_pem/key_pem") != std::string::npos);
  s.key_pem = "y";
  CHECK(s.validate().ok());
  s.stateless_reset_secret = uvwt::Bytes(15, 1);
  CHECK(s.validate().message.find("stateless_reset_secret") != std::string::npos);
  s.stateless_reset_secret = uvwt::Bytes(16, 1);
  CHECK(s.validate().ok());
  // Ticket settings (docs/security.md, "Session tickets and 0-RTT").
  s.session_ticket_key = uvwt::Bytes(32, 1);
  CHECK(s.validate().message.find("session_ticket_key") != std::string::npos);
  s.session_ticket_key = uvwt::Bytes(64, 1);
  CHECK(s.validate().ok());
  s.session_ticket_lifetime = uvwt::Duration(999);
  CHECK(s.validate().message.find("session_ticket_lifetime") != std::string::npos);
  s.session_ticket_lifetime = uvwt::Duration(8LL * 24 * 3600 * 1000);
  CHECK(s.validate().message.find("session_ticket_lifetime") != std::string::npos);
  s.session_ticket_lifetime = uvwt::Duration(1'000);
  s.session_tickets = false;
  s.early_data = true;
  CHECK(s.validate().message.find("early_data") != std::string::npos);
  s.session_tickets = true;
  CHECK(s.validate().ok());
  CHECK_FALSE(uvwt::ClientConfig::development().verify_peer);
  CHECK(uvwt::ClientConfig::production().verify_peer);
}
