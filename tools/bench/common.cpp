#include "bench.hpp"

#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <sstream>

namespace uvwt::bench {

std::string Report::serialize() const {
  std::ostringstream o;
  o.precision(17);
  for (const auto &[k, v] : kv) o << "k " << k << ' ' << v << '\n';
  for (const auto &[k, v] : samples) {
    o << "s " << k;
    for (double x : v) o << ' ' << x;
    o << '\n';
  }
  if (!error.empty()) {
    std::string e = error;
    std::replace(e.begin(), e.end(), '\n', ' ');
    o << "e " << e << '\n';
  }
  return o.str();
}

Report Report::parse(std::string_view text) {
  Report r;
  std::istringstream in{std::string(text)};
  std::string line;
  while (std::getline(in, line)) {
    if (line.size() < 2) continue;
    std::istringstream ls(line.substr(2));
    if (line[0] == 'k') {
      std::string k;
      double v = 0;
      if (ls >> k >> v) r.kv[k] = v;
    } else if (line[0] == 's') {
      std::string k;
      ls >> k;
      auto &vec = r.samples[k];
      double v = 0;
      while (ls >> v) vec.push_back(v);
    } else if (line[0] == 'e') {
      r.error = line.substr(2);
    }
  }
  return r;
}

long rss_kib() {
  std::FILE *f = std::fopen("/proc/self/statm", "r");
  if (f == nullptr) return 0;
  long size = 0, resident = 0;
  const int n = std::fscanf(f, "%ld %ld", &size, &resident);
  std::fclose(f);
  if (n != 2) return 0;
  return resident * (sysconf(_SC_PAGESIZE) / 1024);
}

double cpu_seconds() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  auto tv = [](const timeval &t) { return static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_usec) * 1e-6; };
  return tv(ru.ru_utime) + tv(ru.ru_stime);
}

double sys_seconds() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return static_cast<double>(ru.ru_stime.tv_sec) + static_cast<double>(ru.ru_stime.tv_usec) * 1e-6;
}

const Bytes &pattern() {
  static const Bytes p = [] {
    Bytes b(64 * 1024);
    std::uint32_t x = 0x9e3779b9u;
    for (auto &v : b) {
      x ^= x << 13;
      x ^= x >> 17;
      x ^= x << 5;
      v = static_cast<std::uint8_t>(x >> 7);
    }
    return b;
  }();
  return p;
}

std::uint64_t byte_sum(std::span<const std::uint8_t> d) {
  // Eight bytes per step in four 16-bit lanes (SWAR), folded before a lane
  // can overflow: the receiver's check must not be what limits throughput.
  constexpr std::uint64_t kLanes = 0x00ff00ff00ff00ffull;
  const std::uint8_t *p = d.data();
  const std::size_t n = d.size();
  std::uint64_t total = 0;
  std::size_t i = 0;
  while (n - i >= 8) {
    const std::size_t words = std::min<std::size_t>((n - i) / 8, 128);  // 128 * 510 < 65536
    std::uint64_t acc = 0;
    for (std::size_t w = 0; w < words; ++w, i += 8) {
      std::uint64_t x;
      std::memcpy(&x, p + i, sizeof x);
      acc += (x & kLanes) + ((x >> 8) & kLanes);
    }
    total += (acc & 0xffff) + ((acc >> 16) & 0xffff) + ((acc >> 32) & 0xffff) + (acc >> 48);
  }
  for (; i < n; ++i) total += p[i];
  return total;
}

double percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const double rank = p / 100.0 * static_cast<double>(v.size() - 1);
  const auto lo = static_cast<std::size_t>(std::floor(rank));
  const auto hi = std::min(lo + 1, v.size() - 1);
  return v[lo] + (v[hi] - v[lo]) * (rank - static_cast<double>(lo));
}

bool run_until(uv_loop_t *loop, const std::function<bool()> &pred, double timeout_s) {
  const auto deadline =
      Clock::now() + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(timeout_s));
  // The tick keeps UV_RUN_ONCE from blocking past the deadline when nothing happens.
  auto *tick = new uv_timer_t;
  uv_timer_init(loop, tick);
  uv_timer_start(
      tick, [](uv_timer_t *) {}, 10, 10);
  bool ok = true;
  while (!pred()) {
    if (Clock::now() > deadline) {
      ok = false;
      break;
    }
    uv_run(loop, UV_RUN_ONCE);
  }
  uv_close(reinterpret_cast<uv_handle_t *>(tick), [](uv_handle_t *h) { delete reinterpret_cast<uv_timer_t *>(h); });
  return ok;
}

void stop_loop_on_readable(uv_loop_t *loop, int fd) {
  auto *p = new uv_poll_t;
  uv_poll_init(loop, p, fd);
  uv_poll_start(p, UV_READABLE, [](uv_poll_t *h, int, int) {
    uv_poll_stop(h);
    uv_stop(h->loop);
  });
}

}  // namespace uvwt::bench
