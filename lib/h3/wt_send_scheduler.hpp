#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <vector>

namespace uvwt::detail {

// Which WebTransport stream sends next, following the W3C WebTransport API's
// sendOrder and sendGroup (https://w3c.github.io/webtransport/, "sendOrder",
// "sendGroup"): within a send group, bytes of a stream with a higher send
// order go before any of a lower one; groups are treated as equals. Here
// groups take turns (round robin, one write each), and streams of a group
// with equal send order take turns too. Group 0 is the default group.
//
// Holds stream ids only; the caller asks for next(), writes that stream once
// and reports served(). Vectors grow to the number of sending streams and
// stay: no allocation per packet once warm.
class WtSendScheduler {
 public:
  // A stream with data to send. Must not already be queued.
  void push(std::int64_t sid, std::int64_t order, std::uint64_t group);
  // The stream to write next; nullopt when none waits.
  [[nodiscard]] std::optional<std::int64_t> next() const;
  // `sid` (the one next() named) wrote once; `more`: it still has data.
  void served(std::int64_t sid, bool more);
  void remove(std::int64_t sid);
  [[nodiscard]] bool contains(std::int64_t sid) const noexcept;
  [[nodiscard]] bool empty() const noexcept { return groups_.empty(); }

 private:
  struct Entry {
    std::int64_t sid;
    std::int64_t order;
  };
  struct Group {
    std::uint64_t id;
    std::vector<Entry> entries;  // turn order among equal send orders
  };
  [[nodiscard]] static std::size_t best(const Group &g) noexcept;
  bool erase(std::int64_t sid, Entry *out);

  std::vector<Group> groups_;  // turn order among groups; none empty
  std::vector<Group> spare_;   // emptied groups, their vectors kept for reuse
};

}  // namespace uvwt::detail
