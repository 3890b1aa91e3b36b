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

// AES-128-GCM packet protection keys (RFC 9001 section 5.1).
struct InitialKeys {
  std::uint8_t key[16], iv[12], hp[16];
};
using PacketKeys = InitialKeys;

// Client ("client in") or server ("server in") Initial keys for `dcid`.
InitialKeys initial_keys(std::span<const std::uint8_t> dcid, bool client);

// A protected client Initial: long header (version 1, 4-byte packet number
// `pn`, no token), `frames` padded with PADDING so the datagram is at least
// `min_size` bytes (RFC 9000 section 14.1 wants 1200 from a client).
std::vector<std::uint8_t> seal_client_initial(std::span<const std::uint8_t> dcid, std::span<const std::uint8_t> scid,
                                              std::uint32_t pn, std::span<const std::uint8_t> frames,
                                              std::size_t min_size = 1200);

// The keys of a 1-RTT traffic secret of TLS_AES_128_GCM_SHA256 (32 bytes),
// e.g. CLIENT_TRAFFIC_SECRET_0 from an SSLKEYLOGFILE (RFC 9001 section 5.1).
PacketKeys keys_from_traffic_secret(std::span<const std::uint8_t, 32> secret);

// A protected 1-RTT packet (RFC 9000 section 17.3.1): short header, key
// phase 0, 4-byte packet number `pn`, `frames` padded with PADDING to the
// 4 bytes the header-protection sample needs (RFC 9001 section 5.4.2).
std::vector<std::uint8_t> seal_short_packet(std::span<const std::uint8_t> dcid, std::uint32_t pn,
                                            std::span<const std::uint8_t> frames, const PacketKeys &keys);

struct OpenedInitial {
  std::vector<std::uint8_t> dcid, scid, frames;
};

// The first packet of `datagram` if it is a client Initial protected with the
// keys of its own Destination Connection ID: its connection ids and frames.
std::optional<OpenedInitial> open_client_initial(std::span<const std::uint8_t> datagram);

}  // namespace uvwt::test
