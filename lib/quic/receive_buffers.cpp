#include "quic/receive_buffers.hpp"

#include <cstring>
#include <map>
#include <mutex>
#include <tuple>

#include "quic/udp_socket.hpp"

namespace uvwt::detail {

namespace {

using Key = std::tuple<uv_loop_t *, std::size_t, std::size_t>;

// Loops may run on different threads; the registry is touched only when a
// socket opens or the last one of its kind on a loop goes.
std::mutex g_mutex;
std::map<Key, std::weak_ptr<ReceiveBuffers>> &registry() {
  static std::map<Key, std::weak_ptr<ReceiveBuffers>> r;
  return r;
}

}  // namespace

std::shared_ptr<ReceiveBuffers> ReceiveBuffers::for_loop(uv_loop_t *loop, std::size_t batch, std::size_t buffer_size) {
  const std::lock_guard<std::mutex> lock(g_mutex);
  auto &slot = registry()[Key{loop, batch, buffer_size}];
  if (auto b = slot.lock()) return b;
  auto b = std::make_shared<ReceiveBuffers>(loop, batch, buffer_size);
  slot = b;
  return b;
}

ReceiveBuffers::ReceiveBuffers(uv_loop_t *loop, std::size_t batch, std::size_t buffer_size)
    : loop_(loop),
      batch_(batch),
      buffer_size_(buffer_size),
      // Large enough to come from the allocator's mmap: untouched pages cost nothing.
      data_(new std::uint8_t[batch * buffer_size]),
      slots_(new RecvSlot[batch]),
      msgs_(new mmsghdr[batch]),
      out_(new RecvPacket[kOutBatch]) {
  for (std::size_t i = 0; i < batch; ++i) {
    auto &s = slots_[i];
    s.iov.iov_base = data_.get() + i * buffer_size;
    s.iov.iov_len = buffer_size;
    auto &m = msgs_[i];
    std::memset(&m, 0, sizeof m);
    m.msg_hdr.msg_name = &s.remote.ss;
    m.msg_hdr.msg_iov = &s.iov;
    m.msg_hdr.msg_iovlen = 1;
    m.msg_hdr.msg_control = s.ctrl;
  }
}

ReceiveBuffers::~ReceiveBuffers() {
  const std::lock_guard<std::mutex> lock(g_mutex);
  auto it = registry().find(Key{loop_, batch_, buffer_size_});
  if (it != registry().end() && it->second.expired()) registry().erase(it);
}

}  // namespace uvwt::detail
