#include "common/test_hooks.hpp"

#include <memory>

namespace uvwt::testing {

ImpairmentConfig &impairment(TransportConfig &cfg) {
  // Configs are copied freely (a Client keeps one, every connection another):
  // a private copy keeps a change from reaching the configs copied earlier.
  auto own =
      cfg.test_hooks ? std::make_shared<detail::TestHooks>(*cfg.test_hooks) : std::make_shared<detail::TestHooks>();
  ImpairmentConfig &im = own->impairment;
  cfg.test_hooks = std::move(own);
  return im;
}

const ImpairmentConfig &impairment_of(const TransportConfig &cfg) noexcept {
  static const ImpairmentConfig kNone;
  return cfg.test_hooks ? cfg.test_hooks->impairment : kNone;
}

}  // namespace uvwt::testing
