#include "client/close_watch.hpp"

#include "session/session_impl.hpp"

namespace uvwt::detail {

void watch_session_close(const std::shared_ptr<Session> &s, Session::ClosedCallback cb) {
  auto impl = std::dynamic_pointer_cast<SessionImpl>(s);
  if (!impl) return s->on_closed(std::move(cb));
  // Weak: the listener lives inside the session it reads.
  std::weak_ptr<SessionImpl> weak = impl;
  impl->add_close_listener([weak, cb = std::move(cb)] {
    auto ended = weak.lock();
    cb(ended && ended->info().close_info ? *ended->info().close_info : SessionCloseInfo{});
  });
}

}  // namespace uvwt::detail
