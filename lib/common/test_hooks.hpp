#pragma once

// Test-only settings carried by a TransportConfig without being part of the
// public API: TransportConfig holds an opaque pointer to detail::TestHooks,
// null in every real program. Tests and the in-tree tools (which link the
// internal static library) reach them through lib/testing/testing.hpp.

#include <cstdint>
#include <vector>

#include <uvwt/config.hpp>

namespace uvwt {

// Deterministic network impairment for tests: applied to one endpoint's UDP
// socket on both directions. Off unless `enabled`.
struct ImpairmentConfig {
  bool enabled = false;
  double loss = 0.0;       // probability a packet is dropped
  double duplicate = 0.0;  // probability a packet is duplicated
  double reorder = 0.0;    // probability a packet is held back behind later ones
  double corrupt = 0.0;    // probability one byte of a packet is flipped (QUIC's AEAD must drop it)
  std::uint32_t delay_ms = 0;
  std::uint32_t jitter_ms = 0;
  std::uint64_t seed = 1;
  bool blackhole = false;  // drop everything (can be toggled at runtime)
  // Drop only what arrives, send as usual: a peer that never hears the
  // answers (e.g. an Initial sent from a forged address).
  bool receive_blackhole = false;
};

namespace detail {
struct TestHooks {
  ImpairmentConfig impairment;
  // What every host name resolves to, in this order (port 0: the one asked
  // for): lets a loopback test give one name addresses of both families.
  std::vector<Address> resolved;
};
}  // namespace detail

namespace testing {
// The impairment a config's endpoints start with, for changing. Copies of a
// config share their hooks until one of them is changed here (copy on write),
// so changing one config never changes another.
ImpairmentConfig &impairment(TransportConfig &cfg);
// The impairment a config asks for (disabled when it carries no hooks).
const ImpairmentConfig &impairment_of(const TransportConfig &cfg) noexcept;
// Host names (not IP literals) of clients on this config resolve to `addrs`
// instead of asking the system's resolver.
void resolve_to(TransportConfig &cfg, std::vector<Address> addrs);
const std::vector<Address> &resolved_addresses_of(const TransportConfig &cfg) noexcept;
}  // namespace testing

}  // namespace uvwt
