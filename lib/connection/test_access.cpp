#include "connection/connection_impl.hpp"
#include "testing/testing.hpp"

namespace uvwt::testing {

void set_impairment(Connection &conn, const ImpairmentConfig &cfg) {
  // Every Connection the library hands out is a ConnectionImpl.
  static_cast<detail::ConnectionImpl &>(conn).set_impairment(cfg);
}

}  // namespace uvwt::testing
