#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

#include <uvwt/server.hpp>

namespace uvwt::detail {

// Exact paths first, then patterns like "/room/{id}/chat" in the order added.
class Router {
 public:
  struct Match {
    const Server::SessionHandler *handler;
    std::map<std::string, std::string> params;
  };
  void add(const std::string &path_or_pattern, Server::SessionHandler h);
  void set_default(Server::SessionHandler h) { default_ = std::move(h); }
  [[nodiscard]] std::optional<Match> match(const std::string &path) const;

 private:
  struct Pattern {
    std::vector<std::string> segments;  // "{name}" captures one segment
    Server::SessionHandler handler;
  };
  std::map<std::string, Server::SessionHandler> exact_;
  std::vector<Pattern> patterns_;
  Server::SessionHandler default_;
};

}  // namespace uvwt::detail
