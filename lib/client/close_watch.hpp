#pragma once

#include <memory>

#include <uvwt/session.hpp>

namespace uvwt::detail {

// Runs `cb` once when `s` has ended (deferred when it already has), through
// the session's own close listeners: the user's single on_closed slot stays
// the user's, and the user keeps the very session object the client handed
// out. A Session of a foreign implementation only offers on_closed, which
// is used then.
void watch_session_close(const std::shared_ptr<Session> &s, Session::ClosedCallback cb);

}  // namespace uvwt::detail
