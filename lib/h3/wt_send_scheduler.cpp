#include "h3/wt_send_scheduler.hpp"

#include <algorithm>

namespace uvwt::detail {

void WtSendScheduler::push(std::int64_t sid, std::int64_t order, std::uint64_t group) {
  auto g = std::find_if(groups_.begin(), groups_.end(), [group](const Group &x) { return x.id == group; });
  if (g == groups_.end()) {
    if (spare_.empty()) {
      groups_.push_back({group, {}});
    } else {
      groups_.push_back(std::move(spare_.back()));
      spare_.pop_back();
      groups_.back().id = group;
    }
    g = groups_.end() - 1;
  }
  g->entries.push_back({sid, order});
}

std::size_t WtSendScheduler::best(const Group &g) noexcept {
  // The first of the highest order: among equals, the one whose turn it is.
  std::size_t b = 0;
  for (std::size_t i = 1; i < g.entries.size(); ++i)
    if (g.entries[i].order > g.entries[b].order) b = i;
  return b;
}

std::optional<std::int64_t> WtSendScheduler::next() const {
  if (groups_.empty()) return std::nullopt;
  const Group &g = groups_.front();
  return g.entries[best(g)].sid;
}

void WtSendScheduler::served(std::int64_t sid, bool more) {
  if (groups_.empty()) return;
  Group &g = groups_.front();
  auto it = std::find_if(g.entries.begin(), g.entries.end(), [sid](const Entry &x) { return x.sid == sid; });
  if (it == g.entries.end()) {  // not the one next() named: no turn was taken
    if (!more) remove(sid);
    return;
  }
  // The stream goes to the back of its group's turn order, the group to the
  // back of the groups'.
  const Entry e = *it;
  g.entries.erase(it);
  if (more) g.entries.push_back(e);
  if (g.entries.empty()) {
    spare_.push_back(std::move(g));
    groups_.erase(groups_.begin());
  } else if (groups_.size() > 1) {
    std::rotate(groups_.begin(), groups_.begin() + 1, groups_.end());
  }
}

bool WtSendScheduler::erase(std::int64_t sid, Entry *out) {
  for (auto g = groups_.begin(); g != groups_.end(); ++g) {
    auto it = std::find_if(g->entries.begin(), g->entries.end(), [sid](const Entry &x) { return x.sid == sid; });
    if (it == g->entries.end()) continue;
    if (out != nullptr) *out = *it;
    g->entries.erase(it);
    if (g->entries.empty()) {
      spare_.push_back(std::move(*g));
      groups_.erase(g);
    }
    return true;
  }
  return false;
}

void WtSendScheduler::remove(std::int64_t sid) { erase(sid, nullptr); }

bool WtSendScheduler::contains(std::int64_t sid) const noexcept {
  for (const auto &g : groups_)
    for (const auto &e : g.entries)
      if (e.sid == sid) return true;
  return false;
}

}  // namespace uvwt::detail
