#pragma once

#include <cstddef>
#include <deque>
#include <memory>
#include <utility>

namespace uvwt::detail {

// A std::deque that allocates nothing until the first element arrives.
// libstdc++'s deque allocates a 512-byte node and its map on construction,
// even when it stays empty; a connection and its session own a dozen queues
// that are empty for their whole life (early streams, open requests,
// waiters...), which made them the largest share of an idle connection's
// own memory. References stay stable on push_back exactly as with the deque
// underneath; value-initialised iterators make an unallocated queue an empty
// range.
template <class T>
class LazyDeque {
 public:
  using value_type = T;
  using iterator = typename std::deque<T>::iterator;
  using const_iterator = typename std::deque<T>::const_iterator;

  LazyDeque() = default;
  LazyDeque(LazyDeque &&) noexcept = default;
  LazyDeque &operator=(LazyDeque &&) noexcept = default;
  LazyDeque(const LazyDeque &) = delete;
  LazyDeque &operator=(const LazyDeque &) = delete;
  ~LazyDeque() = default;

  [[nodiscard]] bool empty() const noexcept { return !d_ || d_->empty(); }
  [[nodiscard]] std::size_t size() const noexcept { return d_ ? d_->size() : 0; }

  T &front() { return d_->front(); }
  const T &front() const { return d_->front(); }
  T &back() { return d_->back(); }
  const T &back() const { return d_->back(); }
  T &operator[](std::size_t i) { return (*d_)[i]; }
  const T &operator[](std::size_t i) const { return (*d_)[i]; }

  void push_back(const T &v) { get().push_back(v); }
  void push_back(T &&v) { get().push_back(std::move(v)); }
  void push_front(T &&v) { get().push_front(std::move(v)); }
  template <class... A>
  T &emplace_back(A &&...a) {
    return get().emplace_back(std::forward<A>(a)...);
  }
  void pop_front() { d_->pop_front(); }
  void pop_back() { d_->pop_back(); }
  // Gives the memory back too: a queue that drained is usually done for good.
  void clear() noexcept { d_.reset(); }

  iterator begin() noexcept { return d_ ? d_->begin() : iterator{}; }
  iterator end() noexcept { return d_ ? d_->end() : iterator{}; }
  const_iterator begin() const noexcept { return d_ ? d_->cbegin() : const_iterator{}; }
  const_iterator end() const noexcept { return d_ ? d_->cend() : const_iterator{}; }

  iterator erase(iterator it) { return d_->erase(it); }
  iterator erase(iterator first, iterator last) { return first == last ? last : d_->erase(first, last); }

  template <class U>
  friend std::size_t erase(LazyDeque &q, const U &v) {
    return q.d_ ? std::erase(*q.d_, v) : 0;
  }
  template <class Pred>
  friend std::size_t erase_if(LazyDeque &q, Pred pred) {
    return q.d_ ? std::erase_if(*q.d_, pred) : 0;
  }

 private:
  std::deque<T> &get() {
    if (!d_) d_ = std::make_unique<std::deque<T>>();
    return *d_;
  }
  std::unique_ptr<std::deque<T>> d_;
};

}  // namespace uvwt::detail
