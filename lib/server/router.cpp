#include "server/router.hpp"

namespace uvwt::detail {

namespace {
std::vector<std::string> split_path(const std::string &p) {
  std::vector<std::string> out;
  std::size_t i = 0;
  while (i <= p.size()) {
    const std::size_t j = p.find('/', i);
    const std::size_t end = j == std::string::npos ? p.size() : j;
    if (end > i) out.push_back(p.substr(i, end - i));
    if (j == std::string::npos) break;
    i = j + 1;
  }
  return out;
}
}  // namespace

void Router::add(const std::string &path_or_pattern, Server::SessionHandler h) {
  if (path_or_pattern.find('{') == std::string::npos) {
    exact_[path_or_pattern] = std::move(h);
    return;
  }
  patterns_.push_back({split_path(path_or_pattern), std::move(h)});
}

std::optional<Router::Match> Router::match(const std::string &path) const {
  if (auto it = exact_.find(path); it != exact_.end()) return Match{&it->second, {}};
  const auto segs = split_path(path);
  for (const auto &p : patterns_) {
    if (p.segments.size() != segs.size()) continue;
    Match m{&p.handler, {}};
    bool ok = true;
    for (std::size_t i = 0; i < segs.size() && ok; ++i) {
      const auto &ps = p.segments[i];
      if (ps.size() >= 2 && ps.front() == '{' && ps.back() == '}')
        m.params[ps.substr(1, ps.size() - 2)] = segs[i];
      else
        ok = ps == segs[i];
    }
    if (ok) return m;
  }
  if (default_) return Match{&default_, {}};
  return std::nullopt;
}

}  // namespace uvwt::detail
