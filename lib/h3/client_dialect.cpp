#include "h3/client_dialect.hpp"

namespace uvwt::detail {

Dialect client_dialect(const PeerSettings &server, std::uint8_t allowed) noexcept {
  // Hide what the client does not allow from the server's SETTINGS, so the
  // one rule that reads them (best_dialect) decides.
  PeerSettings seen = server;
  auto allows = [allowed](Dialect d) { return (allowed & (1u << static_cast<unsigned>(d))) != 0; };
  if (!allows(Dialect::draft15)) seen.wt_enabled = 0;
  if (!allows(Dialect::draft13)) seen.wt_max_sessions_draft13 = 0;
  if (!allows(Dialect::draft07)) seen.wt_max_sessions_draft07 = 0;
  if (!allows(Dialect::draft02)) seen.enable_webtransport_draft02 = 0;
  return seen.best_dialect();
}

}  // namespace uvwt::detail
