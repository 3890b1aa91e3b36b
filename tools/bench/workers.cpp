// Throughput against the number of server loops (docs/scaling.md): a
// ServerGroup of N workers serves several client processes at once, so the
// figures for N = 1, 2, ... come from the same clients and the same load.

#include <poll.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <memory>
#include <string>
#include <vector>

#include <uvwt/server.hpp>
#include <uvwt/server_group.hpp>

#include "bench.hpp"

namespace uvwt::bench {
namespace {

constexpr std::size_t kMaxWorkers = 64;

// Runs `fn` in `clients` forked processes, client i with its share of the
// job's `share_key` (n or bytes), and merges their reports: figures summed,
// samples joined, the slowest client's elapsed time kept as "elapsed_s".
Report run_clients(const Job &job, std::uint16_t port, const std::string &share_key, const ClientFn &fn,
                   const std::function<double(const Report &)> &elapsed_of) {
  const std::uint64_t clients = std::max<std::uint64_t>(1, job.num("clients", 1));
  const std::uint64_t total = job.num(share_key);
  std::vector<std::pair<pid_t, int>> kids;
  for (std::uint64_t i = 0; i < clients; ++i) {
    Job mine = job;
    mine.params[share_key] = std::to_string(total / clients + (i == 0 ? total % clients : 0));
    int fds[2];
    if (pipe(fds) != 0) break;
    const pid_t p = fork();
    if (p == 0) {
      close(fds[0]);
      const std::string out = fn(mine, port).serialize();
      for (std::size_t off = 0; off < out.size();) {
        const ssize_t n = write(fds[1], out.data() + off, out.size() - off);
        if (n <= 0) break;
        off += static_cast<std::size_t>(n);
      }
      _exit(0);
    }
    close(fds[1]);
    kids.emplace_back(p, fds[0]);
  }
  Report merged;
  if (kids.size() != clients) merged.fail("could not start the client processes");
  double slowest = 0;
  for (auto &[pid, fd] : kids) {
    std::string text;
    char buf[65536];
    for (ssize_t n; (n = read(fd, buf, sizeof buf)) != 0;) {
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) break;
      text.append(buf, static_cast<std::size_t>(n));
    }
    close(fd);
    int status = 0;
    waitpid(pid, &status, 0);
    const Report r = Report::parse(text);
    if (!r.error.empty()) merged.fail(r.error);
    if (text.empty()) merged.fail("a client process reported nothing");
    for (const auto &[k, v] : r.kv) merged.kv[k] += v;
    for (const auto &[k, v] : r.samples) merged.samples[k].insert(merged.samples[k].end(), v.begin(), v.end());
    slowest = std::max(slowest, elapsed_of(r));
  }
  merged.kv["elapsed_s"] = slowest;
  return merged;
}

}  // namespace

Report wt_group_server(const Job &job, int ctl_fd, const std::function<void(std::uint16_t)> &announce) {
  Report r;
  const std::size_t n = std::clamp<std::size_t>(job.num("workers", 1), 1, kMaxWorkers);
  auto sessions = std::make_shared<std::array<std::atomic<std::uint64_t>, kMaxWorkers>>();
  Error err;
  const double cpu0 = cpu_seconds(), sys0 = sys_seconds();
  auto group = ServerGroup::start(
      bench_server_config(job), "127.0.0.1", 0, n,
      [sessions](std::size_t i, uv_loop_t *, Server &server) {
        add_bench_routes(server, [sessions, i] { ++(*sessions)[i]; });
      },
      err);
  if (!group) {
    r.fail("server group: " + err.to_string());
    announce(0);
    return r;
  }
  announce(group->port());
  // This thread only waits for the orchestrator; the workers serve.
  pollfd p{ctl_fd, POLLIN, 0};
  while (poll(&p, 1, -1) < 0 && errno == EINTR) {
  }
  group->stop();
  r.kv["server_cpu_s"] = cpu_seconds() - cpu0;  // all worker threads
  r.kv["server_sys_s"] = sys_seconds() - sys0;
  std::uint64_t total = 0;
  for (std::size_t i = 0; i < n; ++i) {
    r.kv["server_worker" + std::to_string(i) + "_sessions"] = static_cast<double>((*sessions)[i]);
    total += (*sessions)[i];
  }
  r.kv["server_sessions"] = static_cast<double>(total);
  return r;
}

Report wt_clients_setup(const Job &job, std::uint16_t port) {
  Report r = run_clients(job, port, "n", wt_client_setup,
                         [](const Report &c) { return c.get("rate") > 0 ? c.get("sessions") / c.get("rate") : 0.0; });
  const double t = r.get("elapsed_s");
  r.kv["rate"] = t > 0 ? r.get("sessions") / t : 0;
  if (r.samples.count("setup_us")) {
    r.kv["p50_us"] = percentile(r.samples["setup_us"], 50);
    r.kv["p99_us"] = percentile(r.samples["setup_us"], 99);
  }
  return r;
}

Report wt_clients_bulk(const Job &job, std::uint16_t port) {
  Report r = run_clients(job, port, "bytes", wt_client_bulk, [](const Report &c) { return c.get("elapsed_s"); });
  const double t = r.get("elapsed_s");
  r.kv["mib_s"] = t > 0 ? static_cast<double>(job.num("bytes")) / t / (1 << 20) : 0;
  return r;
}

}  // namespace uvwt::bench
