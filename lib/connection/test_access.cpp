#include "connection/connection_impl.hpp"
#include "testing/testing.hpp"

namespace uvwt::testing {

void set_impairment(Connection &conn, const ImpairmentConfig &cfg) {
  // Every Connection the library hands out is a ConnectionImpl.
  static_cast<detail::ConnectionImpl &>(conn).set_impairment(cfg);
}

void set_idle_clock(Connection &conn, std::function<std::uint64_t()> now_ns) {
  static_cast<detail::ConnectionImpl &>(conn).set_idle_clock(std::move(now_ns));
}

void run_idle_check(Connection &conn) { static_cast<detail::ConnectionImpl &>(conn).idle_check(); }

}  // namespace uvwt::testing
