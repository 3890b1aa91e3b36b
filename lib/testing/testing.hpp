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

// The idle policy (set_idle_timeout) of a connection reads `now_ns`
// (monotonic nanoseconds) instead of the system's clock; run_idle_check()
// makes the check its timer would make, so that a test moves time itself.
void set_idle_clock(Connection &conn, std::function<std::uint64_t()> now_ns);
void run_idle_check(Connection &conn);

}  // namespace uvwt::testing
