// uvwt-bench: loopback benchmarks of uvwt with reference ceilings measured in
// the same invocation. Each run forks a server process and a client process
// (optionally pinned to cores 0 and 1), collects both sides' reports, checks
// correctness (bytes, counts) and prints one JSON line per figure plus a
// table. See docs/performance.md.

#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iostream>
#include <set>
#include <sstream>

#include <uvwt/certificate.hpp>
#include <uvwt/version.hpp>

#include "bench/bench.hpp"

namespace uvwt::bench {
namespace {

struct Options {
  int reps = 5;
  bool quick = false, json_only = false, pin = false, rt = false;
  std::set<std::string> scenarios;  // empty: all
  std::string plot_dir;
  std::uint64_t sessions = 10'000;
  std::uint64_t bytes = 0;                      // bulk bytes per run; 0: the mode's default
  std::uint64_t per_conn = 16;                  // sessions per connection in 'sessions'
  std::vector<std::uint64_t> workers = {1, 2};  // server loops in 'workers'
};

struct Metric {
  std::string key;   // in the merged report
  std::string name;  // in the output
  std::string unit;
};

struct RunSpec {
  std::string scenario;
  std::vector<std::pair<std::string, std::string>> params;
  ServerFn server;
  ClientFn client;
  std::vector<Metric> metrics;
  // Adds derived figures and cross-checks both sides' counts.
  std::function<void(const Job &, Report &)> derive;
  double time_limit_s = 60;
  std::string id;  // for plots: which run this is
};

struct Result {
  const RunSpec *spec;
  std::vector<Report> reps;  // merged client+server reports
  bool ok = true;
  std::string error;
};

// ---- child processes

void place(int core, bool pin, bool rt) {
  if (pin) {
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(core, &set);
    sched_setaffinity(0, sizeof set, &set);
  }
  if (rt) {
    // Lowest real-time priority: on a loaded shared machine the children are
    // not left waiting behind other tasks' time slices (the kernel's RT
    // throttling still leaves those 5% of each core).
    sched_param p{};
    p.sched_priority = 1;
    if (sched_setscheduler(0, SCHED_FIFO, &p) != 0) std::perror("uvwt-bench: SCHED_FIFO");
  }
}

void write_all(int fd, const std::string &s) {
  std::size_t off = 0;
  while (off < s.size()) {
    const ssize_t n = write(fd, s.data() + off, s.size() - off);
    if (n < 0) {
      if (errno == EINTR) continue;
      return;
    }
    off += static_cast<std::size_t>(n);
  }
}

// Reads until EOF, or until `stop_at_newline` and a newline arrived; false on timeout.
bool read_until(int fd, std::string &out, double timeout_s, bool stop_at_newline) {
  const auto deadline =
      Clock::now() + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(timeout_s));
  char buf[65536];
  for (;;) {
    if (stop_at_newline && out.find('\n') != std::string::npos) return true;
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
    if (left <= 0) return false;
    pollfd p{fd, POLLIN, 0};
    const int rv = poll(&p, 1, static_cast<int>(std::min<long long>(left, 1000)));
    if (rv < 0 && errno != EINTR) return false;
    if (rv <= 0) continue;
    const ssize_t n = read(fd, buf, stop_at_newline ? 1 : sizeof buf);
    if (n < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    if (n == 0) return !stop_at_newline;
    out.append(buf, static_cast<std::size_t>(n));
  }
}

std::string exit_problem(const char *who, int status) {
  if (WIFSIGNALED(status)) return std::string(who) + " died with signal " + std::to_string(WTERMSIG(status));
  if (WIFEXITED(status) && WEXITSTATUS(status) != 0)
    return std::string(who) + " exited with " + std::to_string(WEXITSTATUS(status));
  return {};
}

// Runs one server/client pair; returns the merged report.
Report run_pair(const Job &job, const RunSpec &spec, bool pin, bool rt) {
  Report merged;
  int s_out[2] = {-1, -1}, s_ctl[2] = {-1, -1}, c_out[2] = {-1, -1};
  if (pipe(s_out) != 0 || pipe(s_ctl) != 0 || pipe(c_out) != 0) {
    merged.fail("pipe failed");
    return merged;
  }
  std::cout.flush();
  std::cerr.flush();
  pid_t sp = -1;
  std::uint16_t port = 0;
  if (spec.server) {
    sp = fork();
    if (sp == 0) {
      close(s_out[0]);
      close(s_ctl[1]);
      close(c_out[0]);
      close(c_out[1]);
      place(0, pin, rt);
      const int out = s_out[1];
      Report r =
          spec.server(job, s_ctl[0], [out](std::uint16_t p) { write_all(out, "port " + std::to_string(p) + "\n"); });
      write_all(out, r.serialize());
      _exit(0);
    }
  }
  close(s_out[1]);
  close(s_ctl[0]);
  if (spec.server) {
    std::string line;
    if (!read_until(s_out[0], line, 15, true) || std::sscanf(line.c_str(), "port %hu", &port) != 1 || port == 0)
      merged.fail("server did not start");
  }
  pid_t cp = -1;
  std::string client_text;
  if (merged.error.empty()) {
    cp = fork();
    if (cp == 0) {
      close(s_out[0]);
      close(s_ctl[1]);
      close(c_out[0]);
      place(1, pin, rt);
      Report r = spec.client(job, port);
      write_all(c_out[1], r.serialize());
      _exit(0);
    }
    close(c_out[1]);
    c_out[1] = -1;
    if (!read_until(c_out[0], client_text, job.time_limit_s + 30, false)) {
      kill(cp, SIGKILL);
      merged.fail("client process hung");
    }
  }
  if (c_out[1] >= 0) close(c_out[1]);
  close(c_out[0]);
  // Ask the server for its side, then collect both processes.
  write_all(s_ctl[1], "r");
  std::string server_text;
  if (sp > 0 && !read_until(s_out[0], server_text, 15, false)) {
    kill(sp, SIGKILL);
    merged.fail("server process hung");
  }
  close(s_ctl[1]);
  close(s_out[0]);
  int status = 0;
  if (cp > 0 && waitpid(cp, &status, 0) == cp) {
    const auto p = exit_problem("client", status);
    if (!p.empty()) merged.fail(p);
  }
  if (sp > 0 && waitpid(sp, &status, 0) == sp) {
    const auto p = exit_problem("server", status);
    if (!p.empty()) merged.fail(p);
  }
  if (auto nl = server_text.find('\n'); nl != std::string::npos && server_text.rfind("port ", 0) == 0)
    server_text.erase(0, nl + 1);
  Report c = Report::parse(client_text), s = Report::parse(server_text);
  for (auto &[k, v] : s.kv) merged.kv[k] = v;
  for (auto &[k, v] : c.kv) merged.kv[k] = v;
  for (auto &[k, v] : s.samples) merged.samples[k] = std::move(v);
  for (auto &[k, v] : c.samples) merged.samples[k] = std::move(v);
  if (!c.error.empty()) merged.fail("client: " + c.error);
  if (!s.error.empty()) merged.fail("server: " + s.error);
  if (merged.error.empty() && spec.client && client_text.empty()) merged.fail("client reported nothing");
  return merged;
}

// ---- the scenario table

// workers: the same clients against a ServerGroup of N loops, for each N;
// print_worker_ratios() relates every N to N = 1 (docs/scaling.md).
void add_worker_specs(const Options &o, std::vector<RunSpec> &v) {
  const bool q = o.quick;
  for (const std::uint64_t n : o.workers) {
    const std::string w = std::to_string(n);
    RunSpec setup{
        "workers",
        {{"workers", w},
         {"what", "setup"},
         {"clients", "4"},
         {"n", q ? "16" : "2000"},
         {"par", q ? "2" : "8"},
         {"mode", "parallel"}},
        wt_group_server,
        wt_clients_setup,
        {{"rate", "sessions", "sessions/s"}, {"p50_us", "p50", "us"}, {"server_cpu_us", "server_cpu_per_setup", "us"}},
        {},
        q ? 30.0 : 120.0,
        "workers-setup-" + w};
    setup.derive = [](const Job &job, Report &r) {
      const double want = static_cast<double>(job.num("n"));
      if (r.get("server_sessions") != want || r.get("sessions") != want)
        r.fail("server accepted " + std::to_string(r.get("server_sessions")) + " sessions, clients saw " +
               std::to_string(r.get("sessions")) + ", expected " + std::to_string(want));
      // All workers' threads: whether N loops cost more CPU per setup than one.
      r.kv["server_cpu_us"] = r.get("server_cpu_s") / std::max(1.0, r.get("sessions")) * 1e6;
    };
    v.push_back(std::move(setup));
    RunSpec bulk{"workers",
                 {{"workers", w},
                  {"what", "bulk"},
                  {"clients", "8"},
                  {"mode", "discard"},
                  {"streams", "1"},
                  {"bytes", std::to_string(o.bytes > 0 ? o.bytes
                                           : q         ? (1u << 20)
                                                       : (64u << 20))}},
                 wt_group_server,
                 wt_clients_bulk,
                 {{"mib_s", "throughput", "MiB/s"}, {"server_mib_per_cpu_s", "server_cpu_bound", "MiB/cpu-s"}},
                 {},
                 q ? 30.0 : 120.0,
                 "workers-bulk-" + w};
    bulk.derive = [](const Job &job, Report &r) {
      if (r.get("server_cpu_s") > 0)
        r.kv["server_mib_per_cpu_s"] = static_cast<double>(job.num("bytes")) / (1 << 20) / r.get("server_cpu_s");
      if (r.get("bytes_checked") != static_cast<double>(job.num("bytes")))
        r.fail("only " + std::to_string(r.get("bytes_checked")) + " bytes checked");
    };
    v.push_back(std::move(bulk));
  }
}

std::vector<RunSpec> build_specs(const Options &o) {
  const bool q = o.quick;
  std::vector<RunSpec> v;
  const std::string bulk_bytes = std::to_string(o.bytes > 0 ? o.bytes : q ? (1u << 20) : (128u << 20));
  // What the busier side would move with a whole core to itself: load on a
  // shared machine stretches wall time, not the CPU time each byte costs.
  auto cpu_bound = [](Report &r, double bytes) {
    const double mib = bytes / (1 << 20);
    if (r.get("server_cpu_s") > 0) r.kv["server_mib_per_cpu_s"] = mib / r.get("server_cpu_s");
    if (r.get("client_cpu_s") > 0) r.kv["client_mib_per_cpu_s"] = mib / r.get("client_cpu_s");
    // Share of each side's CPU spent in the kernel (UDP send/receive paths).
    if (r.get("server_cpu_s") > 0) r.kv["server_kernel_pct"] = 100 * r.get("server_sys_s") / r.get("server_cpu_s");
    if (r.get("client_cpu_s") > 0) r.kv["client_kernel_pct"] = 100 * r.get("client_sys_s") / r.get("client_cpu_s");
  };
  const std::string dgram_ms = q ? "300" : "2000";
  const std::string lat_n = q ? "200" : "10000";
  const std::string ref_ms = q ? "200" : "1000";

  auto check_sessions = [](const std::string &param) {
    return [param](const Job &job, Report &r) {
      const double want = static_cast<double>(job.num(param));
      if (r.get("server_sessions") != want)
        r.fail("server accepted " + std::to_string(r.get("server_sessions")) + " sessions, expected " +
               std::to_string(want));
    };
  };

  // setup with resumption: full vs resumed vs 0-RTT handshakes, sequential
  for (const auto &[resume, name] : {std::pair{"0", "full"}, std::pair{"1", "resumed"}, std::pair{"2", "0rtt"}}) {
    RunSpec s{
        "resumption",
        {{"mode", "sequential"}, {"n", q ? "5" : "500"}, {"par", "1"}, {"resume", resume}},
        wt_server,
        wt_client_setup,
        {{"rate", "sessions", "sessions/s"}, {"p50_us", "p50", "us"}, {"server_cpu_us", "server_cpu_per_setup", "us"}},
        {},
        q ? 30.0 : 120.0,
        std::string("resumption-") + name};
    auto chk = check_sessions("n");
    s.derive = [chk](const Job &job, Report &r) {
      chk(job, r);
      r.kv["server_cpu_us"] = r.get("server_cpu_s") / std::max(1.0, r.get("sessions")) * 1e6;
      // Every setup but the first has a ticket to resume with.
      if (job.num("resume", 0) > 0 && r.get("resumed") + 1 < r.get("sessions"))
        r.fail(std::to_string(r.get("resumed")) + " of " + std::to_string(r.get("sessions")) + " setups resumed");
    };
    v.push_back(std::move(s));
  }

  // setup
  for (const auto &[mode, n, par] :
       {std::tuple{"sequential", q ? "5" : "500", "1"}, std::tuple{"parallel", q ? "16" : "2000", q ? "4" : "16"}}) {
    RunSpec s{"setup",
              {{"mode", mode}, {"n", n}, {"par", par}},
              wt_server,
              wt_client_setup,
              {{"rate", "sessions", "sessions/s"},
               {"p50_us", "p50", "us"},
               {"p99_us", "p99", "us"},
               {"server_cpu_us", "server_cpu_per_setup", "us"}},
              {},
              q ? 30.0 : 120.0,
              std::string("setup-") + mode};
    auto chk = check_sessions("n");
    s.derive = [chk](const Job &job, Report &r) {
      chk(job, r);
      r.kv["server_cpu_us"] = r.get("server_cpu_s") / std::max(1.0, r.get("sessions")) * 1e6;
    };
    v.push_back(std::move(s));
  }
  // bulk
  for (const char *mode : {"discard", "echo"})
    for (const char *streams : {"1", "8", "64"}) {
      RunSpec s{"bulk",
                {{"mode", mode}, {"streams", streams}, {"bytes", bulk_bytes}},
                wt_server,
                wt_client_bulk,
                {{"mib_s", "throughput", "MiB/s"},
                 {"server_mib_per_cpu_s", "server_cpu_bound", "MiB/cpu-s"},
                 {"client_mib_per_cpu_s", "client_cpu_bound", "MiB/cpu-s"},
                 {"server_kernel_pct", "server_kernel_share", "%"},
                 {"client_kernel_pct", "client_kernel_share", "%"}},
                {},
                q ? 30.0 : 120.0,
                std::string("bulk-") + mode + "-" + streams};
      s.derive = [cpu_bound](const Job &job, Report &r) {
        cpu_bound(r, static_cast<double>(job.num("bytes")));
        if (r.get("bytes_checked") != static_cast<double>(job.num("bytes")))
          r.fail("only " + std::to_string(r.get("bytes_checked")) + " bytes checked");
      };
      v.push_back(std::move(s));
    }
  // datagrams
  for (const auto &[mode, window] : {std::pair{"echo", "1"}, std::pair{"echo", "64"}, std::pair{"oneway", "0"}}) {
    RunSpec s{"datagrams",
              {{"mode", mode}, {"window", window}, {"size", "256"}, {"ms", dgram_ms}},
              wt_server,
              wt_client_datagrams,
              {{"rate", "datagrams", "datagrams/s"},
               {"loss_pct", "loss", "%"},
               {"server_dgrams_per_cpu_s", "server_cpu_bound", "datagrams/cpu-s"}},
              {},
              30,
              std::string("datagrams-") + mode + "-" + window};
    s.derive = [](const Job &, Report &r) {
      if (r.get("server_cpu_s") > 0) r.kv["server_dgrams_per_cpu_s"] = r.get("received") / r.get("server_cpu_s");
    };
    v.push_back(std::move(s));
  }
  // proxy: the same work direct and through a uvwt CONNECT-UDP proxy (on
  // the client's loop), run by run, so the ratios compare like with like.
  for (const char *via : {"direct", "proxy"}) {
    RunSpec setup{"proxy",
                  {{"via", via}, {"what", "setup"}, {"mode", "sequential"}, {"n", q ? "5" : "100"}, {"par", "1"}},
                  wt_server,
                  wt_client_setup,
                  {{"rate", "setup_rate", "sessions/s"}},
                  {},
                  q ? 30.0 : 120.0,
                  std::string("proxy-setup-") + via};
    setup.derive = check_sessions("n");
    v.push_back(std::move(setup));
    RunSpec bulk{"proxy",
                 {{"via", via},
                  {"what", "bulk"},
                  {"mode", "echo"},
                  {"streams", "1"},
                  {"bytes", std::to_string(q ? (1u << 20) : (32u << 20))}},
                 wt_server,
                 wt_client_bulk,
                 {{"mib_s", "bulk_throughput", "MiB/s"}},
                 {},
                 q ? 30.0 : 120.0,
                 std::string("proxy-bulk-") + via};
    bulk.derive = [](const Job &job, Report &r) {
      if (r.get("bytes_checked") != static_cast<double>(job.num("bytes")))
        r.fail("only " + std::to_string(r.get("bytes_checked")) + " bytes checked");
    };
    v.push_back(std::move(bulk));
    v.push_back(RunSpec{
        "proxy",
        {{"via", via}, {"what", "datagrams"}, {"mode", "echo"}, {"window", "64"}, {"size", "256"}, {"ms", dgram_ms}},
        wt_server,
        wt_client_datagrams,
        {{"rate", "datagram_rate", "datagrams/s"}, {"loss_pct", "loss", "%"}},
        {},
        30,
        std::string("proxy-datagrams-") + via});
  }
  // latency
  for (const char *transport : {"stream", "datagram"}) {
    RunSpec s{"latency",
              {{"transport", transport}, {"size", "64"}, {"n", lat_n}},
              wt_server,
              wt_client_latency,
              {{"p50_us", "p50", "us"}, {"p99_us", "p99", "us"}, {"p999_us", "p99.9", "us"}},
              {},
              60,
              std::string("latency-") + transport};
    v.push_back(std::move(s));
  }
  // sessions
  {
    const std::uint64_t n = q ? 48 : o.sessions;
    RunSpec s{"sessions",
              {{"n", std::to_string(n)},
               {"per_conn", std::to_string(o.per_conn)},
               {"mem_step", std::to_string(std::max<std::uint64_t>(1, n / 10))}},
              wt_server,
              wt_client_sessions,
              {{"server_kib_per_session", "server_memory", "KiB/session"},
               {"client_kib_per_session", "client_memory", "KiB/session"},
               {"setup_s", "setup_time", "s"},
               {"rate", "setup_rate", "sessions/s"}},
              {},
              q ? 60.0 : 600.0,
              "sessions"};
    auto chk = check_sessions("n");
    s.derive = [chk](const Job &job, Report &r) {
      chk(job, r);
      r.kv["server_kib_per_session"] =
          (r.get("server_rss_kib") - r.get("server_rss_base_kib")) / std::max(1.0, static_cast<double>(job.num("n")));
    };
    v.push_back(std::move(s));
  }
  add_worker_specs(o, v);
  // raw-quic
  for (const char *streams : {"1", "8", "64"}) {
    RunSpec s{"raw-quic",
              {{"test", "bulk"}, {"mode", "discard"}, {"streams", streams}, {"bytes", bulk_bytes}},
              raw_server,
              raw_client_bulk,
              {{"mib_s", "throughput", "MiB/s"},
               {"server_mib_per_cpu_s", "server_cpu_bound", "MiB/cpu-s"},
               {"client_mib_per_cpu_s", "client_cpu_bound", "MiB/cpu-s"},
               {"server_kernel_pct", "server_kernel_share", "%"},
               {"client_kernel_pct", "client_kernel_share", "%"}},
              {},
              q ? 30.0 : 120.0,
              std::string("raw-bulk-") + streams};
    s.derive = [cpu_bound](const Job &job, Report &r) {
      cpu_bound(r, static_cast<double>(job.num("bytes")));
      if (r.get("bytes_checked") != static_cast<double>(job.num("bytes"))) r.fail("raw bytes not all checked");
    };
    v.push_back(std::move(s));
  }
  v.push_back(RunSpec{"raw-quic",
                      {{"test", "latency"}, {"transport", "stream"}, {"size", "64"}, {"n", lat_n}},
                      raw_server,
                      raw_client_latency,
                      {{"p50_us", "p50", "us"}, {"p99_us", "p99", "us"}, {"p999_us", "p99.9", "us"}},
                      {},
                      60,
                      "raw-latency"});
  // reference ceilings
  for (const char *mode : {"gso", "sendmmsg"}) {
    RunSpec s{"reference",
              {{"test", "udp"}, {"mode", mode}, {"payload", "1200"}, {"ms", ref_ms}},
              udp_sink,
              udp_blast,
              {{"pps", "udp_packets", "packets/s"}, {"gbit_s", "udp_goodput", "Gbit/s"}},
              {},
              30,
              std::string("udp-") + mode};
    s.derive = [](const Job &, Report &r) {
      const double t = std::max(1e-9, r.get("elapsed_s"));
      r.kv["pps"] = r.get("server_packets_received") / t;
      r.kv["gbit_s"] = r.get("server_bytes_received") * 8 / t / 1e9;
      if (r.get("server_packets_received") <= 0) r.fail("the sink received nothing");
    };
    v.push_back(std::move(s));
  }
  {
    // The latency runs' physical floor: same payload, same processes and pinning.
    RunSpec s{"reference",
              {{"test", "udp-pingpong"}, {"size", "64"}, {"n", lat_n}},
              udp_echo,
              udp_ping,
              {{"p50_us", "p50", "us"}, {"p99_us", "p99", "us"}, {"p999_us", "p99.9", "us"}},
              {},
              60,
              "udp-pingpong"};
    s.derive = [](const Job &job, Report &r) {
      if (r.get("round_trips") != static_cast<double>(job.num("n"))) r.fail("udp ping-pong incomplete");
    };
    v.push_back(std::move(s));
  }
  v.push_back(RunSpec{"reference",
                      {{"test", "aead"}, {"cipher", "AES-128-GCM"}, {"size", "1200"}, {"ms", ref_ms}},
                      nullptr,
                      aead_seal,
                      {{"packets_s", "seal_packets", "packets/s"}, {"mib_s", "seal_bytes", "MiB/s"}},
                      {},
                      30,
                      "aead"});
  return v;
}

// ---- output

std::string json_escape(const std::string &s) {
  std::string o;
  for (char c : s) {
    if (c == '"' || c == '\\') {
      o += '\\';
      o += c;
    } else if (static_cast<unsigned char>(c) < 0x20) {
      char b[8];
      std::snprintf(b, sizeof b, "\\u%04x", c);
      o += b;
    } else {
      o += c;
    }
  }
  return o;
}

std::string json_number(double v) {
  if (!std::isfinite(v)) return "null";
  char b[64];
  std::snprintf(b, sizeof b, "%.6g", v);
  return b;
}

bool is_number(const std::string &s) {
  return !s.empty() &&
         std::all_of(s.begin(), s.end(), [](char c) { return std::isdigit(static_cast<unsigned char>(c)); });
}

std::string params_json(const RunSpec &s) {
  std::string o = "{";
  for (std::size_t i = 0; i < s.params.size(); ++i) {
    if (i > 0) o += ',';
    o += '"' + json_escape(s.params[i].first) + "\":";
    o += is_number(s.params[i].second) ? s.params[i].second : '"' + json_escape(s.params[i].second) + '"';
  }
  return o + "}";
}

std::string params_text(const RunSpec &s) {
  std::string o;
  for (const auto &[k, v] : s.params) {
    if (k == "ms" || k == "mem_step" || k == "size" || k == "payload") continue;
    if (!o.empty()) o += ' ';
    o += k + '=' + v;
  }
  return o;
}

struct Stat {
  double median = 0, min = 0, max = 0;
  std::vector<double> values;
};

Stat stat_of(const Result &res, const std::string &key) {
  Stat s;
  for (const auto &r : res.reps)
    if (r.error.empty() && r.kv.count(key) != 0) s.values.push_back(r.kv.at(key));
  if (s.values.empty()) return s;
  s.median = percentile(s.values, 50);
  s.min = *std::min_element(s.values.begin(), s.values.end());
  s.max = *std::max_element(s.values.begin(), s.values.end());
  return s;
}

struct Env {
  bool gso = false, gro = false;
  std::string versions_json, kernel;
};

// Which batching path a run took, from the last good repetition's counters.
std::string path_json(const Result &res) {
  const Report *r = nullptr;
  for (const auto &x : res.reps)
    if (x.error.empty()) r = &x;
  if (r == nullptr) return "{}";
  std::string o = "{";
  bool first = true;
  auto add = [&](const std::string &k, double v) {
    if (!first) o += ',';
    first = false;
    o += '"' + k + "\":" + json_number(v);
  };
  for (const char *side : {"client", "server"}) {
    const std::string p = side;
    if (r->kv.count(p + "_gso")) add(p + "_gso", r->get(p + "_gso"));
    if (r->kv.count(p + "_gro")) add(p + "_gro", r->get(p + "_gro"));
    if (r->get(p + "_send_syscalls") > 0)
      add(p + "_packets_per_send", r->get(p + "_packets_sent") / r->get(p + "_send_syscalls"));
    if (r->get(p + "_recv_syscalls") > 0)
      add(p + "_packets_per_recv", r->get(p + "_packets_received") / r->get(p + "_recv_syscalls"));
  }
  return o + "}";
}

void print_json(const Result &res, const Env &env, const Options &o, std::ostream &out) {
  for (const auto &m : res.spec->metrics) {
    const Stat s = stat_of(res, m.key);
    std::string vals = "[";
    for (std::size_t i = 0; i < s.values.size(); ++i) vals += (i ? "," : "") + json_number(s.values[i]);
    vals += "]";
    out << "{\"scenario\":\"" << res.spec->scenario << "\",\"params\":" << params_json(*res.spec) << ",\"metric\":\""
        << m.name << "\",\"value\":" << json_number(s.median) << ",\"unit\":\"" << m.unit << "\",\"reps\":" << o.reps
        << ",\"median\":" << json_number(s.median) << ",\"min\":" << json_number(s.min)
        << ",\"max\":" << json_number(s.max) << ",\"values\":" << vals << ",\"ok\":" << (res.ok ? "true" : "false");
    if (!res.ok) out << ",\"error\":\"" << json_escape(res.error) << '"';
    out << ",\"versions\":" << env.versions_json << ",\"kernel\":{\"release\":\"" << json_escape(env.kernel)
        << "\",\"gso\":" << (env.gso ? "true" : "false") << ",\"gro\":" << (env.gro ? "true" : "false")
        << "},\"path\":" << path_json(res) << "}\n";
  }
  out.flush();
}

const Result *find_id(const std::vector<Result> &rs, const std::string &id) {
  for (const auto &r : rs)
    if (r.spec->id == id) return &r;
  return nullptr;
}

void print_table(const std::vector<Result> &results, std::ostream &out) {
  char line[512];
  std::snprintf(line, sizeof line, "%-10s %-44s %-22s %12s %12s %12s  %-12s %s\n", "scenario", "params", "metric",
                "median", "min", "max", "unit", "status");
  out << line;
  for (const auto &res : results)
    for (const auto &m : res.spec->metrics) {
      const Stat s = stat_of(res, m.key);
      std::snprintf(line, sizeof line, "%-10s %-44s %-22s %12.5g %12.5g %12.5g  %-12s %s\n", res.spec->scenario.c_str(),
                    params_text(*res.spec).c_str(), m.name.c_str(), s.median, s.min, s.max, m.unit.c_str(),
                    res.ok ? "ok" : ("FAILED: " + res.error).c_str());
      out << line;
    }
}

// Through-proxy / direct for each figure of the proxy scenario (medians).
void print_proxy_ratios(const std::vector<Result> &results, std::ostream &out) {
  for (const char *what : {"setup", "bulk", "datagrams"}) {
    const Result *d = find_id(results, std::string("proxy-") + what + "-direct");
    const Result *p = find_id(results, std::string("proxy-") + what + "-proxy");
    if (d == nullptr || p == nullptr || !d->ok || !p->ok) continue;
    const auto &m = d->spec->metrics.front();
    const double dv = stat_of(*d, m.key).median, pv = stat_of(*p, m.key).median;
    char line[256];
    std::snprintf(line, sizeof line, "proxy ratio %-10s %-18s %10.4g / %-10.4g = %.3f (through proxy / direct)\n", what,
                  m.name.c_str(), pv, dv, dv > 0 ? pv / dv : 0.0);
    out << line;
  }
}

// Each N's figure over N = 1's (medians), with how the kernel's hash spread
// the connections over the workers in the last good repetition.
void print_worker_ratios(const std::vector<Result> &results, const Options &o, std::ostream &out) {
  for (const char *what : {"setup", "bulk"}) {
    const Result *one = find_id(results, std::string("workers-") + what + "-1");
    for (const std::uint64_t n : o.workers) {
      const Result *r = find_id(results, std::string("workers-") + what + "-" + std::to_string(n));
      if (r == nullptr || !r->ok) continue;
      const auto &m = r->spec->metrics.front();
      const double v = stat_of(*r, m.key).median;
      const double base = one != nullptr && one->ok ? stat_of(*one, m.key).median : 0;
      std::string spread;
      for (auto it = r->reps.rbegin(); it != r->reps.rend() && spread.empty(); ++it)
        for (std::uint64_t i = 0; it->error.empty() && i < n; ++i)
          spread += (i ? "/" : "") +
                    std::to_string(static_cast<long>(it->get("server_worker" + std::to_string(i) + "_sessions")));
      char line[256];
      std::snprintf(line, sizeof line,
                    "workers ratio %-6s N=%-3llu %-10s %10.4g %-11s = %.3f x N=1 (sessions per worker %s)\n", what,
                    static_cast<unsigned long long>(n), m.name.c_str(), v, m.unit.c_str(), base > 0 ? v / base : 0.0,
                    spread.c_str());
      out << line;
    }
  }
}

// Each latency run's p50 over the UDP ping-pong's (medians): how many
// physical round trips one WebTransport (or raw QUIC) round trip costs.
void print_floor_ratios(const std::vector<Result> &results, std::ostream &out) {
  const Result *floor = find_id(results, "udp-pingpong");
  if (floor == nullptr || !floor->ok) return;
  const double fv = stat_of(*floor, "p50_us").median;
  for (const char *id : {"latency-stream", "latency-datagram", "raw-latency"}) {
    const Result *r = find_id(results, id);
    if (r == nullptr || !r->ok || fv <= 0) continue;
    const double v = stat_of(*r, "p50_us").median;
    char line[256];
    std::snprintf(line, sizeof line, "floor ratio %-18s p50 %10.4g / %-10.4g = %.2f (over UDP ping-pong)\n", id, v, fv,
                  v / fv);
    out << line;
  }
}

// ---- plots

const Result *find(const std::vector<Result> &rs, const std::string &id) {
  for (const auto &r : rs)
    if (r.spec->id == id) return &r;
  return nullptr;
}

const Report *last_good(const Result *r) {
  if (r == nullptr) return nullptr;
  for (auto it = r->reps.rbegin(); it != r->reps.rend(); ++it)
    if (it->error.empty()) return &*it;
  return nullptr;
}

bool run_gnuplot(const std::string &script) {
  std::cout.flush();
  const pid_t p = fork();
  if (p == 0) {
    execlp("gnuplot", "gnuplot", script.c_str(), static_cast<char *>(nullptr));
    _exit(127);
  }
  int status = 0;
  return p > 0 && waitpid(p, &status, 0) == p && WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

void write_cdf(const std::string &path, std::vector<double> v, double scale) {
  std::sort(v.begin(), v.end());
  std::ofstream f(path);
  for (std::size_t i = 0; i < v.size(); ++i)
    f << v[i] * scale << ' ' << static_cast<double>(i + 1) / static_cast<double>(v.size()) << '\n';
}

int make_plots(const std::vector<Result> &rs, const std::string &dir) {
  int made = 0;
  const std::string head = "set terminal pngcairo size 900,540 noenhanced\nset grid\nset key left top\n";
  {
    std::ofstream d(dir + "/throughput.dat");
    d << "# streams wt-discard wt-echo raw-quic-discard (MiB/s, median)\n";
    for (const char *n : {"1", "8", "64"}) {
      auto med = [&](const std::string &id) {
        const Result *r = find(rs, id);
        return r ? stat_of(*r, "mib_s").median : 0.0;
      };
      d << n << ' ' << med(std::string("bulk-discard-") + n) << ' ' << med(std::string("bulk-echo-") + n) << ' '
        << med(std::string("raw-bulk-") + n) << '\n';
    }
    std::ofstream g(dir + "/throughput.gp");
    g << head << "set output '" << dir << "/throughput_vs_streams.png'\n"
      << "set title 'Bulk throughput vs parallel streams (loopback, median)'\nset logscale x 2\nset xlabel 'streams'\n"
      << "set ylabel 'MiB/s'\nset yrange [0:*]\nset xrange [0.8:80]\nset xtics (1,8,64)\nset key left bottom\n"
      << "plot '" << dir
      << "/throughput.dat' u 1:2 w lp lw 2 t 'WebTransport, client->server (discard)', '' u 1:3 w lp lw 2 "
      << "t 'WebTransport, echo (each direction)', '' u 1:4 w lp lw 2 t 'raw QUIC stream, discard'\n";
    g.close();
    d.close();
    made += run_gnuplot(dir + "/throughput.gp") ? 1 : 0;
  }
  {
    const Report *seq = last_good(find(rs, "setup-sequential"));
    const Report *par = last_good(find(rs, "setup-parallel"));
    if (seq && par && seq->samples.count("setup_us") && par->samples.count("setup_us")) {
      write_cdf(dir + "/setup_seq.dat", seq->samples.at("setup_us"), 1e-3);
      write_cdf(dir + "/setup_par.dat", par->samples.at("setup_us"), 1e-3);
      std::ofstream g(dir + "/setup.gp");
      g << head << "set output '" << dir << "/setup_latency.png'\nset key right bottom\n"
        << "set title 'Session setup latency (connect + TLS + SETTINGS + CONNECT + 2xx), CDF'\n"
        << "set xlabel 'ms'\nset ylabel 'fraction of setups'\nset logscale x\n"
        << "plot '" << dir << "/setup_seq.dat' u 1:2 w l lw 2 t 'sequential', '" << dir
        << "/setup_par.dat' u 1:2 w l lw 2 t 'parallel (" << par->samples.at("setup_us").size() << " setups)'\n";
      g.close();
      made += run_gnuplot(dir + "/setup.gp") ? 1 : 0;
    }
  }
  {
    const Report *s = last_good(find(rs, "sessions"));
    if (s && s->samples.count("mem_sessions") && s->samples.count("mem_sessions_client")) {
      const double srv_base = s->get("server_rss_base_kib"), cli_base = s->get("client_rss_base_kib");
      std::ofstream d(dir + "/memory.dat");
      const auto &ns = s->samples.at("mem_sessions"), &rs_ = s->samples.at("mem_rss_server");
      const auto &nc = s->samples.at("mem_sessions_client"), &rc = s->samples.at("mem_rss_client");
      d << "0 0 0\n";
      for (std::size_t i = 0; i < std::min({ns.size(), rs_.size(), nc.size(), rc.size()}); ++i)
        d << ns[i] << ' ' << (rs_[i] - srv_base) / 1024 << ' ' << (rc[i] - cli_base) / 1024 << '\n';
      std::ofstream g(dir + "/memory.gp");
      g << head << "set output '" << dir << "/memory_vs_sessions.png'\n"
        << "set title 'Resident memory growth vs idle sessions (16 sessions per connection)'\n"
        << "set xlabel 'sessions'\nset ylabel 'RSS growth, MiB'\n"
        << "plot '" << dir
        << "/memory.dat' u 1:2 w lp lw 2 t 'server', '' u 1:3 w lp lw 2 t 'client (all connections)'\n";
      g.close();
      d.close();
      made += run_gnuplot(dir + "/memory.gp") ? 1 : 0;
    }
  }
  // The PNGs are the output; the data and scripts behind them are scratch.
  for (const char *f :
       {"throughput.dat", "throughput.gp", "setup_seq.dat", "setup_par.dat", "setup.gp", "memory.dat", "memory.gp"})
    std::remove((dir + "/" + f).c_str());
  return made;
}

void usage() {
  std::cout << "usage: uvwt-bench [--quick] [--reps N] [--scenario NAME[,NAME...]] [--json] [--pin] [--rt]\n"
               "                  [--precise-timers] [--max-datagrams-in-flight N] [--max-datagrams-per-packet N]\n"
               "                  [--sessions N] [--per-conn N] [--bytes N] [--workers N,N...] [--plot DIR]\n"
               "scenarios: setup resumption bulk datagrams latency sessions raw-quic reference proxy workers\n"
               "           (or one run's id, e.g. bulk-discard-1, raw-bulk-1, setup-parallel: see the progress lines)\n"
               "  --quick     small sizes, 1 repetition: proves every scenario works (exit 1 on any failure)\n"
               "  --reps N    repetitions per run (default 5); figures are median/min/max over them\n"
               "  --json      only JSON lines on stdout (the table goes to stderr)\n"
               "  --pin       pin the server process to core 0 and the client to core 1\n"
               "  --precise-timers  TransportConfig::precise_timers on both sides (timerfd expiry/pacing)\n"
               "  --max-datagrams-in-flight N  TransportConfig::max_datagrams_in_flight on both sides (0: no bound)\n"
               "  --max-datagrams-per-packet N TransportConfig::max_datagrams_per_packet on both sides\n"
               "  --rt        SCHED_FIFO priority 1 for both children (root): shields latency\n"
               "              figures from other load on a shared machine\n"
               "  --sessions  idle sessions for the 'sessions' scenario (default 10000)\n"
               "  --per-conn  sessions per connection in 'sessions' (default 16, the server's limit)\n"
               "  --bytes N   bytes per bulk run (default 128 MiB, 1 MiB with --quick)\n"
               "  --workers N,N...  server loops (ServerGroup) for the 'workers' scenario (default 1,2);\n"
               "              its figures are also given as ratios to N = 1 (list 1 first)\n"
               "  --plot DIR  write PNG plots with gnuplot into DIR\n";
}

}  // namespace
}  // namespace uvwt::bench

int main(int argc, char **argv) {
  using namespace uvwt::bench;
  Options o;
  bool reps_given = false;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) {
        usage();
        std::exit(2);
      }
      return argv[++i];
    };
    if (a == "--quick")
      o.quick = true;
    else if (a == "--json")
      o.json_only = true;
    else if (a == "--pin")
      o.pin = true;
    else if (a == "--rt")
      o.rt = true;
    else if (a == "--precise-timers")
      uvwt::bench::precise_timers = true;
    else if (a == "--max-datagrams-in-flight")
      uvwt::bench::max_datagrams_in_flight = std::max(0LL, std::atoll(next().c_str()));
    else if (a == "--max-datagrams-per-packet")
      uvwt::bench::max_datagrams_per_packet =
          std::clamp<std::size_t>(std::strtoull(next().c_str(), nullptr, 10), 1, 1024);
    else if (a == "--reps") {
      o.reps = std::max(1, std::atoi(next().c_str()));
      reps_given = true;
    } else if (a == "--bytes")
      o.bytes = std::max<std::uint64_t>(1, std::strtoull(next().c_str(), nullptr, 10));
    else if (a == "--per-conn")
      o.per_conn = std::max<std::uint64_t>(1, std::strtoull(next().c_str(), nullptr, 10));
    else if (a == "--sessions")
      o.sessions = std::max<std::uint64_t>(1, std::strtoull(next().c_str(), nullptr, 10));
    else if (a == "--workers") {
      o.workers.clear();
      std::istringstream in(next());
      for (std::string s; std::getline(in, s, ',');)
        if (const auto n = std::strtoull(s.c_str(), nullptr, 10); n >= 1 && n <= 64) o.workers.push_back(n);
      if (o.workers.empty()) {
        usage();
        return 2;
      }
    } else if (a == "--plot")
      o.plot_dir = next();
    else if (a == "--scenario") {
      std::istringstream in(next());
      std::string s;
      while (std::getline(in, s, ',')) o.scenarios.insert(s);
    } else if (a == "-h" || a == "--help") {
      usage();
      return 0;
    } else {
      std::cerr << "unknown option " << a << "\n";
      usage();
      return 2;
    }
  }
  if (o.quick && !reps_given) o.reps = 1;
  signal(SIGPIPE, SIG_IGN);
  if (o.pin && sysconf(_SC_NPROCESSORS_ONLN) < 2) {
    std::cerr << "--pin needs two cores; running unpinned\n";
    o.pin = false;
  }

  uvwt::CertificatePair cert;
  if (auto e = uvwt::generate_self_signed_certificate({"localhost", "127.0.0.1"}, cert)) {
    std::cerr << "certificate: " << e.to_string() << "\n";
    return 1;
  }
  const auto specs = build_specs(o);
  static const std::set<std::string> known = {"setup",    "resumption", "bulk",      "datagrams", "latency",
                                              "sessions", "raw-quic",   "reference", "proxy",     "workers"};
  for (const auto &s : o.scenarios)
    if (known.count(s) == 0 && std::none_of(specs.begin(), specs.end(), [&](const RunSpec &r) { return r.id == s; })) {
      std::cerr << "unknown scenario " << s << "\n";
      usage();
      return 2;
    }

  Env env;
  utsname u{};
  uname(&u);
  env.kernel = u.release;
  env.versions_json = "{\"uvwt\":\"" + std::string(uvwt::version()) + "\",\"ngtcp2\":\"" +
                      std::string(uvwt::ngtcp2_version()) + "\",\"nghttp3\":\"" + std::string(uvwt::nghttp3_version()) +
                      "\"}";
  std::ostream &table_out = o.json_only ? std::cerr : std::cout;
  table_out << "uvwt-bench: uvwt " << uvwt::version() << ", ngtcp2 " << uvwt::ngtcp2_version() << ", nghttp3 "
            << uvwt::nghttp3_version() << ", kernel " << env.kernel << ", " << sysconf(_SC_NPROCESSORS_ONLN)
            << " cores, " << (o.quick ? "quick" : "full") << ", " << o.reps << " rep(s)"
            << (o.pin ? ", pinned (server core 0, client core 1)" : "") << (o.rt ? ", SCHED_FIFO" : "")
            << (uvwt::bench::precise_timers ? ", precise timers" : "")
            << (uvwt::bench::max_datagrams_in_flight >= 0
                    ? ", max_datagrams_in_flight " + std::to_string(uvwt::bench::max_datagrams_in_flight)
                    : "")
            << "\n";

  // Rounds: each repetition runs every selected scenario once, in order, so a
  // drift in the machine's speed (other tenants, frequency) during the
  // invocation falls on WebTransport and its raw-QUIC reference alike instead
  // of on whichever ran later; the ratios stay fair.
  std::vector<Result> results;
  std::vector<uvwt::bench::Job> jobs;
  for (const auto &spec : specs) {
    if (!o.scenarios.empty() && o.scenarios.count(spec.scenario) == 0 && o.scenarios.count(spec.id) == 0) continue;
    results.push_back(Result{&spec, {}, true, {}});
    uvwt::bench::Job job;
    job.scenario = spec.scenario;
    for (const auto &[k, v] : spec.params) job.params[k] = v;
    job.quick = o.quick;
    job.time_limit_s = spec.time_limit_s;
    job.cert = cert;
    jobs.push_back(std::move(job));
  }
  for (int rep = 0; rep < o.reps; ++rep) {
    for (std::size_t i = 0; i < results.size(); ++i) {
      const RunSpec &spec = *results[i].spec;
      const auto &job = jobs[i];
      std::cerr << "[" << spec.id << " " << rep + 1 << "/" << o.reps << "] " << std::flush;
      Report r = run_pair(job, spec, o.pin, o.rt);
      if (r.error.empty() && spec.derive) spec.derive(job, r);
      for (const auto &m : spec.metrics)
        if (r.error.empty() && (r.kv.count(m.key) == 0 || !std::isfinite(r.kv.at(m.key))))
          r.fail("no valid figure for " + m.name);
      if (!r.error.empty()) {
        results[i].ok = false;
        if (results[i].error.empty()) results[i].error = r.error;
        std::cerr << "FAILED: " << r.error;
      }
      std::cerr << "\n";
      if (r.get("server_gso") > 0 || r.get("client_gso") > 0) env.gso = true;
      if (r.get("server_gro") > 0 || r.get("client_gro") > 0) env.gro = true;
      results[i].reps.push_back(std::move(r));
    }
  }
  bool all_ok = true;
  for (const auto &res : results) {
    all_ok = all_ok && res.ok;
    print_json(res, env, o, std::cout);
  }
  table_out << "\n";
  print_table(results, table_out);
  print_proxy_ratios(results, table_out);
  print_worker_ratios(results, o, table_out);
  print_floor_ratios(results, table_out);
  table_out << "batching: GSO " << (env.gso ? "used" : "not available") << ", GRO "
            << (env.gro ? "used" : "not available") << "\n";
  if (!o.plot_dir.empty()) {
    const int n = make_plots(results, o.plot_dir);
    table_out << "plots: " << n << " PNG file(s) in " << o.plot_dir << "\n";
  }
  if (!all_ok) {
    std::cerr << "uvwt-bench: some runs FAILED\n";
    return 1;
  }
  return 0;
}
