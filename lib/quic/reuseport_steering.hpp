#pragma once

#include <linux/filter.h>

#include <cstddef>
#include <cstdint>
#include <vector>

#include <uvwt/error.hpp>

namespace uvwt::detail {

// The classic BPF program of a SO_REUSEPORT group of N workers (docs/scaling.md,
// "One host, N loops"). The kernel runs it on the UDP payload and delivers to
// the socket whose index (bind order) it returns; an index >= N makes it fall
// back to its 4-tuple hash. Short-header packets (RFC 9000 17.3) and Handshake
// packets (17.2.4), which carry a connection id we issued, go to the worker
// the id's steering byte names (byte % N); Initials and 0-RTT, which carry
// the client's own id, go by the 4-tuple hash, so a new connection lands on
// one worker and the rest of its handshake follows it there.
std::vector<sock_filter> steering_program(std::size_t cid_len, std::size_t steering_offset, std::uint8_t workers);

// Attaches the program to the group `fd` belongs to (any member will do).
Error attach_steering(int fd, std::size_t cid_len, std::size_t steering_offset, std::uint8_t workers);

}  // namespace uvwt::detail
