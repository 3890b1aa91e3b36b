// A telemetry client that survives server restarts: readings are taken every
// 200 ms whatever the network does, queued (bounded), and shipped in batches
// over a bidirectional stream to an echo endpoint; a batch counts as delivered
// once its echo is back. ReconnectingClient keeps one session alive and retries
// with exponential backoff while the server is away; its log lines show each
// delay. Delivery is at least once: a batch whose echo did not come back is
// sent again on the next session.
//
//   telemetry_client URL CERT_SHA256 [--samples N]
//   e.g. telemetry_client https://127.0.0.1:4433/echo 3f5a...   (examples/echo_server)
// Exits 0 after N readings (default 50) are delivered, or on SIGINT/SIGTERM,
// once every handle is closed.
#include <uv.h>

#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <memory>
#include <string>

#include <uvwt/uvwt.hpp>

namespace {

constexpr std::size_t kMaxQueued = 256;  // readings kept while disconnected; the oldest go first
constexpr std::size_t kMaxBatch = 32;    // readings per stream
constexpr std::uint64_t kSampleMs = 200;

struct Reading {
  std::uint64_t seq;
  double value;
};

struct Telemetry {
  uv_loop_t *loop = nullptr;
  std::shared_ptr<uvwt::Client> client;
  std::shared_ptr<uvwt::ReconnectingClient> link;
  std::shared_ptr<uvwt::Session> session;  // the live one, if any
  std::deque<Reading> queue;
  std::uint64_t next_seq = 1, delivered = 0, dropped = 0, target = 50;
  std::uint64_t batch = 0;  // id of the batch in flight: late callbacks of older ones are ignored
  bool batch_in_flight = false, stopping = false, failed = false;
  uv_timer_t sampler{};
  uv_signal_t sigint{}, sigterm{};

  void sample() {
    if (queue.size() == kMaxQueued) {  // bounded memory during a long outage
      queue.pop_front();
      ++dropped;
    }
    const double t = static_cast<double>(uv_now(loop) % 60000) / 1000.0;
    queue.push_back({next_seq++, 20.0 + t / 10.0});
    ship();
  }

  // One batch at a time: simple ordering, and a slow server slows us down
  // instead of piling up streams.
  void ship() {
    if (!session || batch_in_flight || queue.empty() || stopping) return;
    std::string text;
    std::uint64_t last = 0;
    for (std::size_t i = 0; i < queue.size() && i < kMaxBatch; ++i) {
      text += std::to_string(queue[i].seq) + " " + std::to_string(queue[i].value) + "\n";
      last = queue[i].seq;
    }
    batch_in_flight = true;
    const std::uint64_t id = ++batch;
    session->open_bidi_stream([this, id, text, last](const uvwt::Error &err, std::shared_ptr<uvwt::Stream> st) {
      if (err) return batch_failed(id, err);
      auto echoed = std::make_shared<std::string>();
      st->on_data([this, id, text, last, echoed](std::span<const std::uint8_t> d, bool fin) {
        echoed->append(d.begin(), d.end());
        if (fin) batch_echoed(id, *echoed == text, last);
      });
      st->on_error([this, id](const uvwt::Error &e) { batch_failed(id, e); });
      st->write_and_end(uvwt::Bytes(text.begin(), text.end()));
    });
  }

  void batch_echoed(std::uint64_t id, bool intact, std::uint64_t last) {
    if (!intact) return batch_failed(id, uvwt::Error(uvwt::Errc::stream, "echo differs"));
    if (id != batch || !batch_in_flight) return;
    batch_in_flight = false;
    std::size_t n = 0;
    while (!queue.empty() && queue.front().seq <= last) {
      queue.pop_front();
      ++n;
    }
    delivered += n;
    std::printf("telemetry: delivered %zu readings up to #%llu (%llu/%llu, %llu dropped)\n", n,
                static_cast<unsigned long long>(last), static_cast<unsigned long long>(delivered),
                static_cast<unsigned long long>(target), static_cast<unsigned long long>(dropped));
    if (delivered >= target) return stop("all readings delivered");
    ship();
  }

  void batch_failed(std::uint64_t id, const uvwt::Error &err) {
    if (id != batch || !batch_in_flight) return;  // settled already, or a batch of a lost session
    batch_in_flight = false;
    std::printf("telemetry: batch not delivered (%s), kept for the next session\n", err.to_string().c_str());
  }

  void start(const std::string &url) {
    link = uvwt::ReconnectingClient::create(client, url);
    link->on_connected([this](const std::shared_ptr<uvwt::Session> &s, int attempt) {
      std::printf("telemetry: connected (attempt %d), %zu readings queued\n", attempt, queue.size());
      session = s;
      ship();
    });
    link->on_lost([this](const uvwt::SessionCloseInfo &info) {
      std::printf("telemetry: session lost (%s), reconnecting\n",
                  info.error ? info.error.to_string().c_str() : info.reason.c_str());
      session.reset();
      batch_in_flight = false;  // its stream died with the session
    });
    link->on_failed([this](const uvwt::Error &err, int attempts) {
      std::printf("telemetry: gave up after %d attempts: %s\n", attempts, err.to_string().c_str());
      failed = true;
      stop("failed");
    });
  }

  void stop(const char *why) {
    if (stopping) return;
    stopping = true;
    std::printf("telemetry: stopping (%s)\n", why);
    uv_close(reinterpret_cast<uv_handle_t *>(&sampler), nullptr);
    uv_close(reinterpret_cast<uv_handle_t *>(&sigint), nullptr);
    uv_close(reinterpret_cast<uv_handle_t *>(&sigterm), nullptr);
    session.reset();
    // The reconnecting client does not own the client: close both, in order.
    link->close([this] { client->close(); });
  }
};

uvwt::ClientConfig telemetry_config(const std::array<std::uint8_t, 32> &pin) {
  uvwt::ClientConfig cfg;
  cfg.server_certificate_hashes = {pin};
  // Notice a dead server within seconds, not after the default 60 s idle
  // timeout: PING every second, give up after 3 s of silence.
  cfg.idle_timeout = uvwt::Duration{3000};
  cfg.keep_alive_interval = uvwt::Duration{1000};
  cfg.connect_timeout = uvwt::Duration{2000};
  // Retry forever: 250 ms, 500 ms, 1 s, 2 s, then every 4 s. Jitter (x0.5 to
  // x1.5) keeps a fleet of sensors from reconnecting in lockstep.
  cfg.max_retries = -1;
  cfg.retry_delay = uvwt::Duration{250};
  cfg.retry_backoff = 2.0;
  cfg.max_retry_delay = uvwt::Duration{4000};
  cfg.retry_jitter = true;
  return cfg;
}

}  // namespace

int main(int argc, char **argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: %s URL CERT_SHA256 [--samples N]\n", argv[0]);
    return 2;
  }
  const auto pin = uvwt::parse_certificate_hash(argv[2]);
  if (!pin) {
    std::fprintf(stderr, "bad certificate hash\n");
    return 2;
  }
  std::setvbuf(stdout, nullptr, _IOLBF, 0);
  // uvwt's retry lines ("retrying in 500 ms") are warnings: show them with ours.
  uvwt::set_log_level(uvwt::LogLevel::warning);
  uvwt::set_log_hook([](uvwt::LogLevel, std::string_view msg) {
    std::printf("uvwt: %.*s\n", static_cast<int>(msg.size()), msg.data());
  });

  uv_loop_t loop;
  uv_loop_init(&loop);
  Telemetry app;
  app.loop = &loop;
  if (argc == 5 && std::strcmp(argv[3], "--samples") == 0) app.target = std::strtoull(argv[4], nullptr, 10);
  uvwt::Error err;
  app.client = uvwt::Client::create(&loop, telemetry_config(*pin), err);
  if (!app.client) {
    std::fprintf(stderr, "%s\n", err.to_string().c_str());
    return 1;
  }
  app.start(argv[1]);

  uv_timer_init(&loop, &app.sampler);
  app.sampler.data = &app;
  uv_timer_start(
      &app.sampler, [](uv_timer_t *t) { static_cast<Telemetry *>(t->data)->sample(); }, kSampleMs, kSampleMs);
  uv_signal_init(&loop, &app.sigint);
  uv_signal_init(&loop, &app.sigterm);
  app.sigint.data = app.sigterm.data = &app;
  uv_signal_start(
      &app.sigint, [](uv_signal_t *h, int) { static_cast<Telemetry *>(h->data)->stop("SIGINT"); }, SIGINT);
  uv_signal_start(
      &app.sigterm, [](uv_signal_t *h, int) { static_cast<Telemetry *>(h->data)->stop("SIGTERM"); }, SIGTERM);

  uv_run(&loop, UV_RUN_DEFAULT);
  app.link.reset();
  app.client.reset();
  uv_run(&loop, UV_RUN_DEFAULT);  // close callbacks queued by the last releases
  const int rc = uv_loop_close(&loop);
  std::printf("uv_loop_close: %s\n", rc == 0 ? "0 (every handle closed)" : uv_strerror(rc));
  return rc == 0 && !app.failed ? 0 : 1;
}
