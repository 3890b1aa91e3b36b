#pragma once

// The test-only interface of uvwt: network impairment of configs and live
// connections. Compiled into the internal static library that tests, fuzz
// targets and the in-tree tools link; not exported from libuvwt.so and not
// installed (docs/architecture.md, "Public surface").

#include <uvwt/connection.hpp>

#include "common/test_hooks.hpp"

namespace uvwt::testing {

// Changes the impairment of a connection's socket at runtime (loss, delay,
// blackhole). A server-side connection shares the server's socket; a client
// connection not yet bound (state IDLE) takes it when its socket opens.
void set_impairment(Connection &conn, const ImpairmentConfig &cfg);

}  // namespace uvwt::testing
