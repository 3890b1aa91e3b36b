#pragma once

// Bytes uvwt writes on a request stream itself, bypassing nghttp3: the
// answer to a request nghttp3 never saw (a header section refused before it
// was decoded, docs/protocol.md "What uvwt does"). Rare and tiny: a short
// queue, each entry kept until its stream closes (ngtcp2 does not copy
// stream data and may retransmit it until acknowledged).

#include <algorithm>
#include <cstdint>
#include <vector>

#include "quic/quic_app.hpp"

namespace uvwt::detail {

class RawStreamWrites {
 public:
  void queue(std::int64_t sid, std::vector<std::uint8_t> bytes, bool fin) {
    entries_.push_back({sid, std::move(bytes), 0, fin, false, false, false});
  }
  [[nodiscard]] bool empty() const noexcept { return entries_.empty(); }
  [[nodiscard]] bool owns(std::int64_t sid) const noexcept { return find(sid) != nullptr; }

  // Offers the first entry with something left to send.
  bool fill(StreamWrite &w) {
    for (auto &e : entries_) {
      if (e.blocked || e.shut || (e.sent == e.bytes.size() && (!e.fin || e.fin_sent))) continue;
      w.stream_id = e.sid;
      w.fin = e.fin;
      w.vec_count = 0;
      if (e.sent < e.bytes.size()) {
        w.vec[0].base = e.bytes.data() + e.sent;
        w.vec[0].len = e.bytes.size() - e.sent;
        w.vec_count = 1;
      }
      return true;
    }
    return false;
  }
  void written(std::int64_t sid, std::size_t n, bool fin_sent) {
    if (auto *e = find(sid)) {
      e->sent += n;
      e->fin_sent = e->fin_sent || fin_sent;
    }
  }
  void blocked(std::int64_t sid, bool shut) {
    if (auto *e = find(sid)) (shut ? e->shut : e->blocked) = true;
  }
  void unblocked(std::int64_t sid) {
    if (auto *e = find(sid)) e->blocked = false;
  }
  void closed(std::int64_t sid) {
    std::erase_if(entries_, [sid](const Entry &e) { return e.sid == sid; });
  }

 private:
  struct Entry {
    std::int64_t sid;
    std::vector<std::uint8_t> bytes;
    std::size_t sent;
    bool fin, fin_sent, blocked, shut;
  };
  Entry *find(std::int64_t sid) noexcept {
    auto it = std::find_if(entries_.begin(), entries_.end(), [sid](const Entry &e) { return e.sid == sid; });
    return it == entries_.end() ? nullptr : &*it;
  }
  [[nodiscard]] const Entry *find(std::int64_t sid) const noexcept {
    return const_cast<RawStreamWrites *>(this)->find(sid);
  }
  std::vector<Entry> entries_;
};

}  // namespace uvwt::detail
