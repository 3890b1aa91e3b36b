#include <atomic>

#include <uvwt/session.hpp>

namespace uvwt {

SendGroup Session::create_send_group() {
  // Unique per process: loops may run on several threads; 0 is the default group.
  static std::atomic<std::uint64_t> next{1};
  return SendGroup{next.fetch_add(1, std::memory_order_relaxed)};
}

}  // namespace uvwt
