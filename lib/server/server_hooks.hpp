#pragma once

// Internal hooks into a Server for in-library features built on top of it
// (the UDP proxy), without widening the public Server interface.

#include <functional>
#include <memory>

#include <uvwt/server.hpp>

namespace uvwt::detail {

class ConnectionImpl;

// Runs `hook` for every connection the server accepts (on accept, before
// any request arrives) and at once for those it already has. False when
// `server` is not a uvwt Server.
bool set_connection_hook(Server &server, std::function<void(const std::shared_ptr<ConnectionImpl> &)> hook);

}  // namespace uvwt::detail
