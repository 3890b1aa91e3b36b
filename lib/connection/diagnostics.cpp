#include <uvwt/connection.hpp>

#include <cstdio>

#include "common/clock.hpp"

namespace uvwt {

double ConnectionInfo::uptime() const {
  if (!established_at) return 0.0;
  const double end = closed_at ? *closed_at : detail::wall_seconds();
  return end > *established_at ? end - *established_at : 0.0;
}

// The rules of pywebtransport's ConnectionDiagnostics.issues, in its order.
std::vector<std::string> ConnectionDiagnostics::issues() const {
  std::vector<std::string> out;
  if (stats.state != ConnectionState::connected) out.emplace_back("Connection not established");
  if (stats.error_count > 10) out.push_back("High error count: " + std::to_string(stats.error_count));
  if (stats.last_activity && detail::wall_seconds() - *stats.last_activity > 300.0)
    out.emplace_back("Connection appears stale (no activity in 5+ minutes)");
  if (stats.packets_sent > 1000 && stats.packets_received == 0)
    out.emplace_back("Data is being sent, but no packets are being received");
  if (rtt > 1.0) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "High latency (RTT): %.1fms", rtt * 1000.0);
    out.emplace_back(buf);
  }
  return out;
}

}  // namespace uvwt
