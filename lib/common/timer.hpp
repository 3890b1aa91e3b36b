#pragma once

#include <uv.h>

#include <cstdint>
#include <functional>

namespace uvwt::detail {

// A one-shot/repeating uv_timer_t owned by a C++ object. The handle lives on
// the heap and is released through uv_close when the owner goes away, so the
// owner's lifetime is never tied to the close callback.
class Timer {
 public:
  explicit Timer(uv_loop_t *loop) : h_(new uv_timer_t) {
    uv_timer_init(loop, h_);
    h_->data = this;
  }
  ~Timer() {
    h_->data = nullptr;
    uv_timer_stop(h_);
    uv_close(reinterpret_cast<uv_handle_t *>(h_), [](uv_handle_t *h) { delete reinterpret_cast<uv_timer_t *>(h); });
  }
  Timer(const Timer &) = delete;
  Timer &operator=(const Timer &) = delete;

  void start(std::uint64_t ms, std::function<void()> fn, std::uint64_t repeat_ms = 0) {
    fn_ = std::move(fn);
    uv_timer_start(
        h_,
        [](uv_timer_t *t) {
          if (auto *self = static_cast<Timer *>(t->data)) {
            // The callback may destroy this Timer: run a copy.
            auto fn = self->fn_;
            fn();
          }
        },
        ms, repeat_ms);
  }
  void stop() { uv_timer_stop(h_); }
  [[nodiscard]] bool active() const noexcept { return uv_is_active(reinterpret_cast<uv_handle_t *>(h_)) != 0; }

 private:
  uv_timer_t *h_;
  std::function<void()> fn_;
};

}  // namespace uvwt::detail
