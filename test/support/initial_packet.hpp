#pragma once

// QUIC v1 Initial packet protection (RFC 9001 section 5), for tests that must
// put arbitrary frames into an Initial a server will decrypt: the QUIC packet
// fuzz target and the forged-Initial attacks. Keys come from the client's
// Destination Connection ID alone, so anyone can build these packets; that is
// the point of the attacks.

#include <cstdint>
#include <optional>
#include <span>
#include <vector>

namespace uvwt::test {

struct InitialKeys {
  std::uint8_t key[16], iv[12], hp[16];
};

// Client ("client in") or server ("server in") Initial keys for `dcid`.
InitialKeys initial_keys(std::span<const std::uint8_t> dcid, bool client);

// A protected client Initial: long header (version 1, 4-byte packet number
// `pn`, no token), `frames` padded with PADDING so the datagram is at least
// `min_size` bytes (RFC 9000 section 14.1 wants 1200 from a client).
std::vector<std::uint8_t> seal_client_initial(std::span<const std::uint8_t> dcid, std::span<const std::uint8_t> scid,
                                              std::uint32_t pn, std::span<const std::uint8_t> frames,
                                              std::size_t min_size = 1200);

struct OpenedInitial {
  std::vector<std::uint8_t> dcid, scid, frames;
};

// The first packet of `datagram` if it is a client Initial protected with the
// keys of its own Destination Connection ID: its connection ids and frames.
std::optional<OpenedInitial> open_client_initial(std::span<const std::uint8_t> datagram);

}  // namespace uvwt::test
