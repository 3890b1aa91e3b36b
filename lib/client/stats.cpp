#include <uvwt/client.hpp>

#include <algorithm>
#include <cmath>
#include <cstdio>

namespace uvwt {

double ClientStats::avg_connect_time() const noexcept {
  if (connections_successful == 0) return 0.0;
  return total_connect_time / static_cast<double>(connections_successful);
}

double ClientStats::success_rate() const noexcept {
  if (connections_attempted == 0) return 1.0;
  return static_cast<double>(connections_successful) / static_cast<double>(connections_attempted);
}

std::vector<std::string> ClientDiagnostics::issues() const {
  std::vector<std::string> out;
  char buf[96];
  const double rate = stats.success_rate();
  if (stats.connections_attempted > 10 && rate < 0.9) {
    std::snprintf(buf, sizeof buf, "Low connection success rate: %.2f%%", rate * 100.0);
    out.emplace_back(buf);
  }
  const double avg = stats.avg_connect_time();
  if (avg > 5.0) {
    std::snprintf(buf, sizeof buf, "Slow average connection time: %.2fs", avg);
    out.emplace_back(buf);
  }
  return out;
}

Duration reconnect_delay(const ClientConfig &config, int n, double jitter) noexcept {
  const double base = static_cast<double>(config.retry_delay.count());
  const double cap = static_cast<double>(config.max_retry_delay.count());
  // Exponent clamped: past ~1000 doublings every sane cap has long been hit.
  const double grown = base * std::pow(config.retry_backoff, std::clamp(n - 1, 0, 1000));
  double ms = std::min(std::isfinite(grown) ? grown : cap, cap);
  if (config.retry_jitter) ms *= jitter;
  return Duration(static_cast<Duration::rep>(std::llround(std::max(ms, 0.0))));
}

}  // namespace uvwt
