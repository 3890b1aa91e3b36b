#include "common/test_hooks.hpp"

#include <memory>

namespace uvwt::testing {

namespace {
// Configs are copied freely (a Client keeps one, every connection another):
// a private copy keeps a change from reaching the configs copied earlier.
detail::TestHooks &own_hooks(TransportConfig &cfg) {
  auto own =
      cfg.test_hooks ? std::make_shared<detail::TestHooks>(*cfg.test_hooks) : std::make_shared<detail::TestHooks>();
  detail::TestHooks &h = *own;
  cfg.test_hooks = std::move(own);
  return h;
}
}  // namespace

ImpairmentConfig &impairment(TransportConfig &cfg) { return own_hooks(cfg).impairment; }

void resolve_to(TransportConfig &cfg, std::vector<Address> addrs) { own_hooks(cfg).resolved = std::move(addrs); }

const std::vector<Address> &resolved_addresses_of(const TransportConfig &cfg) noexcept {
  static const std::vector<Address> kNone;
  return cfg.test_hooks ? cfg.test_hooks->resolved : kNone;
}

const ImpairmentConfig &impairment_of(const TransportConfig &cfg) noexcept {
  static const ImpairmentConfig kNone;
  return cfg.test_hooks ? cfg.test_hooks->impairment : kNone;
}

}  // namespace uvwt::testing
