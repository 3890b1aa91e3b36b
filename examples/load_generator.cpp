// A small load generator on ClientFleet: N clients connect to one echo URL
// (ClientFleet::connect_all keeps at most 8 handshakes in flight, so the
// server is not hit by a thundering herd), then every session runs
// request/response round trips on bidirectional streams for a fixed time.
// Each session keeps exactly one request in flight (a closed loop): the load
// is bounded by the number of sessions, and the latency measured is the
// server's, not a queue's that we built ourselves.
//
//   load_generator URL CERT_SHA256 [--clients N] [--seconds S] [--size BYTES]
//   e.g. load_generator https://127.0.0.1:4433/echo 3f5a... --clients 16 --seconds 5
// A live progress line (redrawn on a terminal, one line a second otherwise),
// then a summary. Exit status 0 when every session connected and no request failed.
#include <uv.h>

#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include <uvwt/uvwt.hpp>

namespace {

constexpr std::size_t kMaxSamples = 1'000'000;  // latency samples kept (4 MB); later ones are only counted

struct Options {
  std::string url;
  std::array<std::uint8_t, 32> pin{};
  std::size_t clients = 8;
  double seconds = 3;
  std::size_t size = 1024;
};

struct Load {
  uv_loop_t *loop = nullptr;
  Options opt;
  std::shared_ptr<uvwt::ClientFleet> fleet;
  std::vector<std::shared_ptr<uvwt::Session>> sessions;
  std::vector<std::uint32_t> latency_us;
  std::uint64_t requests = 0, errors = 0, bytes = 0, last_requests = 0;
  std::uint64_t connect_ms = 0, started_at = 0;
  std::size_t connected = 0;
  uvwt::Bytes payload;
  uv_timer_t ticker{};
  bool running = false, tty = false;
  int ticks = 0;

  double elapsed() const { return static_cast<double>(uv_now(loop) - started_at) / 1000.0; }

  // One round trip on a fresh stream; the next starts when it completes.
  void request(std::shared_ptr<uvwt::Session> s) {
    if (!running || s->is_closed()) return;
    const std::uint64_t t0 = uv_hrtime();
    s->open_bidi_stream([this, s, t0](const uvwt::Error &err, std::shared_ptr<uvwt::Stream> st) {
      if (err) return failed(err);
      auto got = std::make_shared<std::size_t>(0);
      st->on_data([this, s, t0, got](std::span<const std::uint8_t> d, bool fin) {
        *got += d.size();
        if (!fin) return;
        if (*got != payload.size()) return failed(uvwt::Error(uvwt::Errc::stream, "short echo"));
        ++requests;
        bytes += 2 * *got;
        if (latency_us.size() < kMaxSamples)
          latency_us.push_back(static_cast<std::uint32_t>((uv_hrtime() - t0) / 1000));
        request(s);
      });
      st->on_error([this](const uvwt::Error &e) { failed(e); });
      st->write_and_end(uvwt::Bytes(payload));
    });
  }

  void failed(const uvwt::Error &err) {
    if (!running) return;  // streams cut by our own close at the end are not errors
    if (errors++ < 5) std::fprintf(stderr, "request failed: %s\n", err.to_string().c_str());
  }

  void progress() {
    const std::uint64_t done = requests - last_requests;
    last_requests = requests;
    char line[160];
    std::snprintf(line, sizeof line, "%5.1f s  sessions %zu/%zu  requests %llu (%llu/s)  errors %llu", elapsed(),
                  sessions.size(), opt.clients, static_cast<unsigned long long>(requests),
                  static_cast<unsigned long long>(done * 4), static_cast<unsigned long long>(errors));
    // On a terminal: redraw one line 4 times a second. In a pipe or a log: a
    // line a second, so the output stays readable.
    if (tty) {
      std::printf("\r%s\033[K", line);
      std::fflush(stdout);
    } else if (++ticks % 4 == 0) {
      std::printf("progress: %s\n", line);
    }
    if (elapsed() >= opt.seconds) finish();
  }

  double percentile(double p) const {
    if (latency_us.empty()) return 0;
    const auto i = static_cast<std::size_t>(p * static_cast<double>(latency_us.size() - 1));
    return latency_us[i] / 1000.0;
  }

  void finish() {
    running = false;
    uv_close(reinterpret_cast<uv_handle_t *>(&ticker), nullptr);
    const double secs = elapsed();
    if (tty) std::printf("\n");
    std::sort(latency_us.begin(), latency_us.end());
    std::printf(
        "summary: %zu/%zu sessions connected in %llu ms; %llu requests of %zu bytes in %.2f s (%.0f/s, "
        "%.2f MiB/s both ways); latency ms p50 %.3f p90 %.3f p99 %.3f max %.3f; errors %llu\n",
        sessions.size(), opt.clients, static_cast<unsigned long long>(connect_ms),
        static_cast<unsigned long long>(requests), opt.size, secs, static_cast<double>(requests) / secs,
        static_cast<double>(bytes) / secs / (1 << 20), percentile(0.5), percentile(0.9), percentile(0.99),
        percentile(1.0), static_cast<unsigned long long>(errors));
    for (auto &s : sessions) s->close(0, "load done");
    sessions.clear();
    fleet->close_all();
  }

  void start(std::vector<std::shared_ptr<uvwt::Session>> ready) {
    sessions = std::move(ready);
    connected = sessions.size();
    connect_ms = uv_now(loop) - started_at;
    std::printf("connected %zu of %zu sessions in %llu ms\n", sessions.size(), opt.clients,
                static_cast<unsigned long long>(connect_ms));
    started_at = uv_now(loop);
    running = !sessions.empty();
    if (!running) {
      fleet->close_all();
      return;
    }
    uv_timer_init(loop, &ticker);
    ticker.data = this;
    uv_timer_start(
        &ticker, [](uv_timer_t *t) { static_cast<Load *>(t->data)->progress(); }, 250, 250);
    for (auto &s : sessions) request(s);
  }
};

bool parse(int argc, char **argv, Options &o) {
  if (argc < 3) return false;
  o.url = argv[1];
  const auto pin = uvwt::parse_certificate_hash(argv[2]);
  if (!pin) return false;
  o.pin = *pin;
  for (int i = 3; i + 1 < argc; i += 2) {
    if (std::strcmp(argv[i], "--clients") == 0)
      o.clients = std::strtoul(argv[i + 1], nullptr, 10);
    else if (std::strcmp(argv[i], "--seconds") == 0)
      o.seconds = std::atof(argv[i + 1]);
    else if (std::strcmp(argv[i], "--size") == 0)
      o.size = std::strtoul(argv[i + 1], nullptr, 10);
    else
      return false;
  }
  // Bounded by construction: a load generator must never become a flood.
  return o.clients >= 1 && o.clients <= 1000 && o.seconds > 0 && o.seconds <= 600 && o.size >= 1 &&
         o.size <= (1u << 20);
}

}  // namespace

int main(int argc, char **argv) {
  Load load;
  if (!parse(argc, argv, load.opt)) {
    std::fprintf(stderr, "usage: %s URL CERT_SHA256 [--clients 1..1000] [--seconds 0..600] [--size 1..1048576]\n",
                 argv[0]);
    return 2;
  }
  std::setvbuf(stdout, nullptr, _IOLBF, 0);
  load.tty = isatty(STDOUT_FILENO);
  load.payload.assign(load.opt.size, 'x');

  uv_loop_t loop;
  uv_loop_init(&loop);
  load.loop = &loop;
  uvwt::ClientConfig cfg;
  cfg.server_certificate_hashes = {load.opt.pin};
  std::vector<std::shared_ptr<uvwt::Client>> clients;
  for (std::size_t i = 0; i < load.opt.clients; ++i) {
    uvwt::Error err;
    auto c = uvwt::Client::create(&loop, cfg, err);
    if (!c) {
      std::fprintf(stderr, "%s\n", err.to_string().c_str());
      return 1;
    }
    clients.push_back(std::move(c));
  }
  uvwt::Error err;
  load.fleet = uvwt::ClientFleet::create(&loop, std::move(clients), err, 8);
  if (!load.fleet) {
    std::fprintf(stderr, "%s\n", err.to_string().c_str());
    return 1;
  }
  load.started_at = uv_now(&loop);
  load.fleet->connect_all(load.opt.url,
                          [&load](std::vector<std::shared_ptr<uvwt::Session>> s) { load.start(std::move(s)); });

  uv_run(&loop, UV_RUN_DEFAULT);
  load.fleet.reset();
  uv_run(&loop, UV_RUN_DEFAULT);
  const int rc = uv_loop_close(&loop);
  std::printf("uv_loop_close: %s\n", rc == 0 ? "0 (every handle closed)" : uv_strerror(rc));
  return rc == 0 && load.connected == load.opt.clients && load.errors == 0 && load.requests > 0 ? 0 : 1;
}
