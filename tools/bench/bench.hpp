#pragma once

// uvwt-bench: shared pieces. Every measurement runs as a pair of forked
// processes (a server side and a client side) on loopback; each child sends
// the orchestrator one Report through a pipe and leaves with _exit.

#include <uv.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <uvwt/certificate.hpp>
#include <uvwt/config.hpp>
#include <uvwt/server.hpp>
#include <uvwt/types.hpp>

namespace uvwt::bench {

using Clock = std::chrono::steady_clock;

inline double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

// --precise-timers: TransportConfig::precise_timers on every side (inherited through fork).
inline bool precise_timers = false;
// --max-datagrams-in-flight N: TransportConfig::max_datagrams_in_flight on every side (-1: the default).
inline long long max_datagrams_in_flight = -1;
// --max-datagrams-per-packet N: TransportConfig::max_datagrams_per_packet on every side (0: the default).
inline std::size_t max_datagrams_per_packet = 0;
inline void apply_datagram_window(TransportConfig &cfg) {
  if (max_datagrams_in_flight >= 0) cfg.max_datagrams_in_flight = static_cast<std::size_t>(max_datagrams_in_flight);
  if (max_datagrams_per_packet > 0) cfg.max_datagrams_per_packet = max_datagrams_per_packet;
}

// What one run asks of both children (inherited through fork).
struct Job {
  std::string scenario;
  std::map<std::string, std::string> params;
  bool quick = false;
  double time_limit_s = 60;  // the client side gives up (and fails) after this
  CertificatePair cert;

  [[nodiscard]] std::string str(const std::string &key, const std::string &def = {}) const {
    auto it = params.find(key);
    return it == params.end() ? def : it->second;
  }
  [[nodiscard]] std::uint64_t num(const std::string &key, std::uint64_t def = 0) const {
    auto it = params.find(key);
    return it == params.end() ? def : std::stoull(it->second);
  }
};

// Named figures and sample lists one child measured; `error` set means the
// run failed a correctness check (bytes, counts) or did not finish in time.
struct Report {
  std::map<std::string, double> kv;
  std::map<std::string, std::vector<double>> samples;
  std::string error;

  [[nodiscard]] double get(const std::string &k, double def = 0) const {
    auto it = kv.find(k);
    return it == kv.end() ? def : it->second;
  }
  void fail(const std::string &why) {
    if (error.empty()) error = why;
  }
  [[nodiscard]] std::string serialize() const;
  static Report parse(std::string_view text);
};

// Resident set size of this process in KiB (/proc/self/statm).
long rss_kib();
// User + system CPU time of this process, and the system (kernel) part alone.
double cpu_seconds();
double sys_seconds();

// 64 KiB of fixed pseudo-random bytes: every payload is cut from it.
const Bytes &pattern();
// Order-insensitive but cheap integrity figure: the sum of all bytes. With
// the byte count it catches lost, duplicated and corrupted chunks without
// costing the receiver a noticeable share of its core.
std::uint64_t byte_sum(std::span<const std::uint8_t> d);

// Percentile (0..100) of unsorted samples (copied and sorted).
double percentile(std::vector<double> v, double p);

// Runs the loop until pred() holds or timeout; returns pred().
bool run_until(uv_loop_t *loop, const std::function<bool()> &pred, double timeout_s);

// Server side: announce(port) once listening, then serve until the control
// fd becomes readable, then return what the server saw.
using ServerFn = std::function<Report(const Job &, int ctl_fd, const std::function<void(std::uint16_t)> &announce)>;
using ClientFn = std::function<Report(const Job &, std::uint16_t port)>;

// A uv_poll on the control fd that stops the loop: servers run uv_run until then.
void stop_loop_on_readable(uv_loop_t *loop, int fd);

// ---- scenarios
// The bench's server configuration, and its /echo and /sink routes
// (count() runs once per accepted session).
ServerConfig bench_server_config(const Job &job);
void add_bench_routes(Server &server, std::function<void()> count);

Report wt_server(const Job &job, int ctl_fd, const std::function<void(std::uint16_t)> &announce);
Report wt_client_setup(const Job &job, std::uint16_t port);
Report wt_client_bulk(const Job &job, std::uint16_t port);
Report wt_client_datagrams(const Job &job, std::uint16_t port);
Report wt_client_latency(const Job &job, std::uint16_t port);
Report wt_client_sessions(const Job &job, std::uint16_t port);

// workers.cpp: a ServerGroup of job.num("workers") loops, and `clients`
// client processes each running one share of a setup or bulk run.
Report wt_group_server(const Job &job, int ctl_fd, const std::function<void(std::uint16_t)> &announce);
Report wt_clients_setup(const Job &job, std::uint16_t port);
Report wt_clients_bulk(const Job &job, std::uint16_t port);

Report raw_server(const Job &job, int ctl_fd, const std::function<void(std::uint16_t)> &announce);
Report raw_client_bulk(const Job &job, std::uint16_t port);
Report raw_client_latency(const Job &job, std::uint16_t port);

Report udp_sink(const Job &job, int ctl_fd, const std::function<void(std::uint16_t)> &announce);
Report udp_blast(const Job &job, std::uint16_t port);
Report aead_seal(const Job &job, std::uint16_t port);
Report udp_echo(const Job &job, int ctl_fd, const std::function<void(std::uint16_t)> &announce);
Report udp_ping(const Job &job, std::uint16_t port);

}  // namespace uvwt::bench
