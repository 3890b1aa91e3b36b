#include "client/client_session.hpp"

namespace uvwt::detail {

ClientSession::ClientSession(std::shared_ptr<Session> inner, std::shared_ptr<Deferred> deferred)
    : inner_(std::move(inner)), deferred_(std::move(deferred)), hooks_(std::make_shared<Hooks>()) {
  // The hooks, not this wrapper, are captured: watchers must run even when
  // the user has let go of the wrapper.
  inner_->on_closed([hooks = hooks_](const SessionCloseInfo &ci) { fire(hooks, ci); });
}

void ClientSession::fire(const std::shared_ptr<Hooks> &hooks, const SessionCloseInfo &ci) {
  if (hooks->fired) return;
  hooks->fired = true;
  auto watchers = std::move(hooks->watchers);
  auto user = std::move(hooks->user);
  hooks->watchers.clear();
  hooks->user = nullptr;
  for (auto &w : watchers) w(ci);
  if (user) user(ci);
}

void ClientSession::add_close_watcher(ClosedCallback cb) {
  if (hooks_->fired || inner_->is_closed()) {
    auto ci = inner_->info().close_info.value_or(SessionCloseInfo{});
    deferred_->post([cb = std::move(cb), ci] { cb(ci); });
    return;
  }
  hooks_->watchers.push_back(std::move(cb));
}

void ClientSession::on_closed(ClosedCallback cb) {
  if (hooks_->fired) return;  // like the core: no callback once closed
  hooks_->user = std::move(cb);
}

bool watch_session_close(const std::shared_ptr<Session> &s, Session::ClosedCallback cb) {
  auto *cs = dynamic_cast<ClientSession *>(s.get());
  if (cs == nullptr) return false;
  cs->add_close_watcher(std::move(cb));
  return true;
}

}  // namespace uvwt::detail
