#include "connection/connect_headers.hpp"

#include <uvwt/version.hpp>

#include <algorithm>
#include <cctype>

namespace uvwt::detail {

Headers lower_case_names(Headers h) {
  for (auto &[k, v] : h)
    for (auto &c : k) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return h;
}

std::string connect_user_agent(const ClientConfig &config) {
  return config.user_agent.empty() ? "uvwt/" + std::string(version()) : config.user_agent;
}

namespace {
Error check(const Headers &layer) {
  for (const auto &[k, v] : layer) {
    if (k.empty()) return {Errc::configuration, "invalid headers: empty header name"};
    if (k.front() == ':') return {Errc::configuration, "invalid headers: pseudo-header '" + k + "' cannot be set"};
  }
  return {};
}

void apply(Headers &acc, const Headers &layer) {
  std::erase_if(acc, [&](const auto &h) {
    return std::any_of(layer.begin(), layer.end(), [&](const auto &l) { return l.first == h.first; });
  });
  acc.insert(acc.end(), layer.begin(), layer.end());
}
}  // namespace

Error merge_connect_headers(const std::string &user_agent, const Headers &config_headers, const Headers &defaults,
                            const Headers &per_call, Headers &out) {
  Headers acc{{"user-agent", user_agent}};
  for (const Headers *layer : {&config_headers, &defaults, &per_call}) {
    const Headers lowered = lower_case_names(*layer);
    if (Error e = check(lowered)) return e;
    apply(acc, lowered);
  }
  out = std::move(acc);
  return {};
}

}  // namespace uvwt::detail
