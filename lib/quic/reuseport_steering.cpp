#include "quic/reuseport_steering.hpp"

#include <sys/socket.h>

#include <cerrno>
#include <cstring>
#include <string>

namespace uvwt::detail {

namespace {
sock_filter stmt(std::uint16_t code, std::uint32_t k) { return sock_filter{code, 0, 0, k}; }
sock_filter jump(std::uint16_t code, std::uint32_t k, std::uint8_t jt, std::uint8_t jf) {
  return sock_filter{code, jt, jf, k};
}
constexpr std::uint32_t kFallback = 0xffffffffu;  // >= N: the kernel's hash decides
}  // namespace

std::vector<sock_filter> steering_program(std::size_t cid_len, std::size_t steering_offset, std::uint8_t workers) {
  const auto off = static_cast<std::uint32_t>(steering_offset);
  // Long header: 1 flags + 4 version + 1 DCID length, then the DCID.
  // cBPF jumps only forward, so the "A % N, return A" tail appears twice.
  return {
      stmt(BPF_LD | BPF_B | BPF_ABS, 0),                                           // 0: A = first byte
      jump(BPF_JMP | BPF_JSET | BPF_K, 0x80, 3, 0),                                // 1: long header -> 5
      stmt(BPF_LD | BPF_B | BPF_ABS, 1 + off),                                     // 2: A = DCID[off]
      stmt(BPF_ALU | BPF_MOD | BPF_K, workers),                                    // 3: A %= N
      stmt(BPF_RET | BPF_A, 0),                                                    // 4
      stmt(BPF_ALU | BPF_AND | BPF_K, 0x30),                                       // 5: long packet type
      jump(BPF_JMP | BPF_JEQ | BPF_K, 0x20, 0, 5),                                 // 6: Handshake? else -> 12
      stmt(BPF_LD | BPF_B | BPF_ABS, 5),                                           // 7: A = DCID length
      jump(BPF_JMP | BPF_JEQ | BPF_K, static_cast<std::uint32_t>(cid_len), 0, 3),  // 8: ours? else -> 12
      stmt(BPF_LD | BPF_B | BPF_ABS, 6 + off),                                     // 9: A = DCID[off]
      stmt(BPF_ALU | BPF_MOD | BPF_K, workers),                                    // 10: A %= N
      stmt(BPF_RET | BPF_A, 0),                                                    // 11
      stmt(BPF_RET | BPF_K, kFallback),                                            // 12: Initial, 0-RTT
  };
}

Error attach_steering(int fd, std::size_t cid_len, std::size_t steering_offset, std::uint8_t workers) {
  auto prog = steering_program(cid_len, steering_offset, workers);
  sock_fprog fprog{static_cast<unsigned short>(prog.size()), prog.data()};
  if (::setsockopt(fd, SOL_SOCKET, SO_ATTACH_REUSEPORT_CBPF, &fprog, sizeof fprog) != 0)
    return Error(Errc::server, std::string("SO_ATTACH_REUSEPORT_CBPF: ") + std::strerror(errno), CodeSpace::system,
                 static_cast<std::uint64_t>(errno));
  return {};
}

}  // namespace uvwt::detail
