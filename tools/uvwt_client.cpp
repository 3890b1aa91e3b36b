// uvwt-client: connects to a WebTransport server and runs checks against it.
//
//   uvwt-client https://localhost:4433/echo --cert-hash HEX --send hello --datagrams 10
//
// Steps run in this order on one session: --expect-push, --send/--file,
// --bulk, --datagrams, --expect-close (else a clean local close); --sessions
// then opens N more sessions one after another. The connection's transport
// diagnostics (RTT, cwnd, packets, loss, GSO/GRO) close the report. Exit
// status 0 only if every step passed.
#include <uv.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cinttypes>
#include <cstdarg>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include <memory>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include <uvwt/uvwt.hpp>

namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

// ---------------------------------------------------------------- options

struct Options {
  std::string url;
  std::string host;
  std::uint16_t port = 443;
  std::string path = "/";
  std::string ca_file;
  std::vector<std::string> cert_hashes;
  bool insecure = false;
  std::string send_text;
  bool have_send = false;
  std::string file;
  long datagrams = 0;
  std::size_t datagram_size = 64;
  double datagram_min_ratio = 0.5;
  double bulk_mib = 0;
  std::vector<std::int64_t> send_orders;  // --send-order: one bulk stream per entry
  long sessions = 0;
  double timeout = 30;
  bool json = false;
  bool expect_push = false;
  bool expect_close = false;
  std::uint32_t expect_close_code = 0;
  std::string expect_close_reason;
  bool have_expect_reason = false;
  // Our own close: code 0 and no reason by default, which goes out as a bare
  // FIN (docs/protocol.md), the clean close every peer understands.
  std::uint32_t close_code = 0;
  std::string close_reason;
  std::string dialect;  // empty: the newest the server announces
  std::string qlog_dir;
};

void usage(FILE *out) {
  std::fprintf(out,
               "usage: uvwt-client URL [options]\n"
               "  --ca FILE            trust this CA (PEM) in addition to the system\n"
               "  --cert-hash HEX      accept a server certificate with this SHA-256 (repeatable)\n"
               "  --insecure           do not verify the server certificate\n"
               "  --send TEXT          echo TEXT over one bidi stream and compare\n"
               "  --file PATH          echo the file's bytes over one bidi stream and compare\n"
               "  --bulk MIB           echo MIB mebibytes of generated data, checksum, throughput\n"
               "  --send-order LIST    with --bulk: one stream per comma-separated send order\n"
               "                       (e.g. 0,0,10), all at once; reports which finished first\n"
               "  --datagrams N        send N datagrams, count echoes, report RTT\n"
               "  --size BYTES         datagram size (default 64)\n"
               "  --min-ratio R        datagram echoes needed to pass, 0..1 (default 0.5)\n"
               "  --expect-push        read the server-opened bidi and uni streams (/push)\n"
               "  --expect-close CODE [REASON]\n"
               "                       wait for the server to close the session (/close)\n"
               "  --close CODE [REASON]\n"
               "                       close the session with CODE and REASON (default 0, none: a bare FIN)\n"
               "  --dialect NAME       speak only this dialect: draft02, draft07, draft13, draft15\n"
               "  --sessions N         open N sessions sequentially, report setup rate\n"
               "  --timeout SECS       give up after SECS (default 30)\n"
               "  --qlog-dir DIR       write qlog files\n"
               "  --log-level LEVEL    trace, debug, info, warning, error, off\n"
               "  --json               print one JSON object instead of text\n");
}

// The library's parser: the tool accepts exactly the URLs Client::connect does.
bool parse_url(const std::string &url, Options &o) {
  uvwt::WebTransportUrl u;
  if (uvwt::Error e = uvwt::parse_webtransport_url(url, u)) {
    std::fprintf(stderr, "uvwt-client: %s\n", e.message.c_str());
    return false;
  }
  o.host = u.host;
  o.port = u.port;
  o.path = u.path;
  return true;
}

bool parse_log_level(const std::string &s) {
  static constexpr std::pair<const char *, uvwt::LogLevel> kLevels[] = {
      {"trace", uvwt::LogLevel::trace},     {"debug", uvwt::LogLevel::debug},  {"info", uvwt::LogLevel::info},
      {"warning", uvwt::LogLevel::warning}, {"warn", uvwt::LogLevel::warning}, {"error", uvwt::LogLevel::error},
      {"off", uvwt::LogLevel::off}};
  for (const auto &[name, lvl] : kLevels) {
    if (s == name) {
      uvwt::set_log_level(lvl);
      return true;
    }
  }
  return false;
}

template <typename T>
bool parse_number(const char *text, T &out, T min, T max) {
  char *end = nullptr;
  const double v = std::strtod(text, &end);
  if (end == text || *end != '\0' || v < static_cast<double>(min) || v > static_cast<double>(max)) return false;
  out = static_cast<T>(v);
  return true;
}

// Options without a value; false when `a` is none of them.
bool take_flag(const std::string &a, Options &o) {
  if (a == "--insecure") {
    o.insecure = true;
  } else if (a == "--json") {
    o.json = true;
  } else if (a == "--expect-push") {
    o.expect_push = true;
  } else {
    return false;
  }
  return true;
}

enum class Taken { ok, bad_value, unknown };

// Options whose value is `v`: text values first, then numbers.
Taken take_text(const std::string &a, const char *v, Options &o) {
  if (a == "--ca") {
    o.ca_file = v;
  } else if (a == "--cert-hash") {
    o.cert_hashes.emplace_back(v);
  } else if (a == "--send") {
    o.send_text = v;
    o.have_send = true;
  } else if (a == "--file") {
    o.file = v;
  } else if (a == "--dialect") {
    o.dialect = v;
  } else if (a == "--qlog-dir") {
    o.qlog_dir = v;
  } else if (a == "--log-level") {
    return parse_log_level(v) ? Taken::ok : Taken::bad_value;
  } else {
    return Taken::unknown;
  }
  return Taken::ok;
}

// --send-order: a comma-separated list of send orders, one per bulk stream.
bool parse_send_orders(const std::string &list, std::vector<std::int64_t> &out) {
  out.clear();
  for (std::size_t at = 0; at <= list.size();) {
    const std::size_t comma = std::min(list.find(',', at), list.size());
    std::int64_t n = 0;
    const std::string item = list.substr(at, comma - at);
    if (!parse_number<std::int64_t>(item.c_str(), n, -1'000'000'000'000LL, 1'000'000'000'000LL) || out.size() >= 64)
      return false;
    out.push_back(n);
    at = comma + 1;
  }
  return true;
}

Taken take_value(const std::string &a, const char *v, Options &o) {
  bool ok = true;
  if (a == "--send-order")
    ok = parse_send_orders(v, o.send_orders);
  else if (a == "--bulk")
    ok = parse_number(v, o.bulk_mib, 0.0, 1e6);
  else if (a == "--datagrams")
    ok = parse_number(v, o.datagrams, 0L, 10'000'000L);
  else if (a == "--size")
    ok = parse_number<std::size_t>(v, o.datagram_size, 8, 65535);
  else if (a == "--min-ratio")
    ok = parse_number(v, o.datagram_min_ratio, 0.0, 1.0);
  else if (a == "--sessions")
    ok = parse_number(v, o.sessions, 0L, 1'000'000L);
  else if (a == "--timeout")
    ok = parse_number(v, o.timeout, 0.001, 1e6);
  else if (a == "--expect-close")
    ok = o.expect_close = parse_number<std::uint32_t>(v, o.expect_close_code, 0, 0xffffffffu);
  else if (a == "--close")
    ok = parse_number<std::uint32_t>(v, o.close_code, 0, 0xffffffffu);
  else
    return take_text(a, v, o);
  return ok ? Taken::ok : Taken::bad_value;
}

// --expect-close and --close take an optional reason after the code.
void take_reason(const std::string &a, int argc, char **argv, int &i, Options &o) {
  if (i + 1 >= argc || argv[i + 1][0] == '-') return;
  if (a == "--expect-close") {
    o.expect_close_reason = argv[++i];
    o.have_expect_reason = true;
  } else if (a == "--close") {
    o.close_reason = argv[++i];
  }
}

// Whatever holds across options, once all are read.
int check_options(Options &o) {
  if (o.url.empty()) {
    usage(stderr);
    return 2;
  }
  if (!parse_url(o.url, o)) return 2;
  if (o.have_send && !o.file.empty()) {
    std::fprintf(stderr, "uvwt-client: --send and --file exclude each other\n");
    return 2;
  }
  return 0;
}

// Returns 0 to run, 2 on a bad command line, -1 after --help.
int parse_options(int argc, char **argv, Options &o) {
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "-h" || a == "--help") {
      usage(stdout);
      return -1;
    }
    if (take_flag(a, o)) continue;
    if (a.empty() || a[0] != '-') {
      if (!o.url.empty()) {
        std::fprintf(stderr, "uvwt-client: unexpected argument %s\n", a.c_str());
        return 2;
      }
      o.url = a;
      continue;
    }
    const char *v = i + 1 < argc ? argv[i + 1] : nullptr;
    const Taken t = v != nullptr ? take_value(a, v, o) : take_value(a, "", o);
    if (t == Taken::unknown) {
      std::fprintf(stderr, "uvwt-client: unknown option %s\n", a.c_str());
      usage(stderr);
      return 2;
    }
    if (v == nullptr) {
      std::fprintf(stderr, "uvwt-client: %s needs a value\n", a.c_str());
      return 2;
    }
    ++i;
    if (t == Taken::bad_value) {
      std::fprintf(stderr, "uvwt-client: bad value for %s: %s\n", a.c_str(), v);
      return 2;
    }
    take_reason(a, argc, argv, i, o);
  }
  return check_options(o);
}

// ---------------------------------------------------------------- reporting

std::string json_string(std::string_view s) {
  std::string out = "\"";
  for (const char c : s) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04x", c);
          out += buf;
        } else {
          out += c;
        }
    }
  }
  return out + "\"";
}

std::string json_number(double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.6g", v);
  return buf;
}

// One finished step: a name, a verdict, a human line, and JSON fields.
struct StepResult {
  std::string name;
  bool ok = false;
  std::string text;
  std::vector<std::pair<std::string, std::string>> fields;  // key, raw JSON value
  bool info = false;                                        // a measurement, not a check: printed as "info"
};

class Report {
 public:
  explicit Report(bool json) : json_(json) {}
  void add(StepResult r) {
    if (!json_) {
      std::printf("%-10s %s  %s\n", r.name.c_str(), r.info ? "info" : r.ok ? "ok  " : "FAIL", r.text.c_str());
      std::fflush(stdout);
    }
    failed_ = failed_ || !r.ok;
    steps_.push_back(std::move(r));
  }
  [[nodiscard]] bool failed() const { return failed_ || steps_.empty(); }
  void finish(const std::string &url) const {
    if (!json_) {
      std::printf("%s\n", failed() ? "result: FAILED" : "result: all steps passed");
      return;
    }
    std::string out = "{\"url\":" + json_string(url) + ",\"ok\":" + (failed() ? "false" : "true") + ",\"steps\":[";
    for (std::size_t i = 0; i < steps_.size(); ++i) {
      const auto &s = steps_[i];
      out += (i ? "," : "");
      out += "{\"step\":" + json_string(s.name) + ",\"ok\":" + (s.ok ? "true" : "false") +
             ",\"detail\":" + json_string(s.text);
      for (const auto &[k, v] : s.fields) out += "," + json_string(k) + ":" + v;
      out += "}";
    }
    out += "]}";
    std::printf("%s\n", out.c_str());
  }

 private:
  bool json_;
  bool failed_ = false;
  std::vector<StepResult> steps_;
};

std::string format(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
std::string format(const char *fmt, ...) {
  char buf[512];
  va_list ap;
  va_start(ap, fmt);
  std::vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  return buf;
}

std::string human_bytes(std::uint64_t n) {
  if (n >= (1u << 20)) return format("%.1f MiB", static_cast<double>(n) / (1u << 20));
  if (n >= 1024) return format("%.1f KiB", static_cast<double>(n) / 1024);
  return format("%" PRIu64 " B", n);
}

// ---------------------------------------------------------------- test data

// Byte i of the generated payload: random looking, yet computable at any
// offset, so the echo can be checked without keeping what was sent.
std::uint64_t mix(std::uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}
void generate(std::uint64_t offset, std::span<std::uint8_t> out) {
  std::size_t i = 0;
  auto one = [&](std::size_t k) {
    const std::uint64_t at = offset + k;
    out[k] = static_cast<std::uint8_t>(mix(at >> 3) >> ((at & 7) * 8));
  };
  // Byte k of word w is byte k of mix(w), little-endian: whole words at once.
  for (; i < out.size() && ((offset + i) & 7) != 0; ++i) one(i);
  for (; i + 8 <= out.size(); i += 8) {
    std::uint64_t w = mix((offset + i) >> 3);
    for (int k = 0; k < 8; ++k, w >>= 8) out[i + static_cast<std::size_t>(k)] = static_cast<std::uint8_t>(w);
  }
  for (; i < out.size(); ++i) one(i);
}

struct Fnv1a {
  std::uint64_t h = 0xcbf29ce484222325ull;
  void add(std::span<const std::uint8_t> d) {
    for (const auto b : d) h = (h ^ b) * 0x100000001b3ull;
  }
};

// Draws a progress bar on stderr (a TTY only), at most ten times a second.
class Progress {
 public:
  Progress(std::uint64_t total, bool enabled) : total_(total), enabled_(enabled && isatty(2) == 1) {}
  void update(std::uint64_t done) {
    if (!enabled_) return;
    const auto now = Clock::now();
    if (done < total_ && now - last_ < std::chrono::milliseconds(100)) return;
    last_ = now;
    const double f = total_ ? static_cast<double>(done) / static_cast<double>(total_) : 1.0;
    const int width = 40;
    const int fill = static_cast<int>(f * width);
    std::fprintf(stderr, "\r[%.*s%*s] %5.1f%%", fill, "########################################", width - fill, "",
                 f * 100);
    if (done >= total_) std::fprintf(stderr, "\n");
  }

 private:
  std::uint64_t total_;
  bool enabled_;
  Clock::time_point last_{};
};

// ---------------------------------------------------------------- steps

using Next = std::function<void(StepResult)>;

// Sends `total` bytes over a new bidi stream, reads the echo and compares it
// to what was sent, byte by byte.
class EchoTransfer : public std::enable_shared_from_this<EchoTransfer> {
 public:
  // `data` empty: generated payload of `total` bytes.
  EchoTransfer(std::string name, uvwt::Bytes data, std::uint64_t total, Next done)
      : name_(std::move(name)),
        data_(std::move(data)),
        total_(total),
        done_(std::move(done)),
        progress_(total, total > (1u << 20)) {}

  void set_send_order(std::int64_t n) noexcept { send_order_ = n; }

  void start(const std::shared_ptr<uvwt::Session> &session) {
    started_ = Clock::now();
    auto self = shared_from_this();
    session->open_bidi_stream([self](const uvwt::Error &err, std::shared_ptr<uvwt::Stream> st) {
      if (err) return self->finish(false, "open stream: " + err.to_string());
      self->stream_ = st;
      st->set_send_order(self->send_order_);
      st->on_data([self](std::span<const std::uint8_t> d, bool fin) { self->on_data(d, fin); });
      st->on_error([self](const uvwt::Error &e) { self->finish(false, "stream error: " + e.to_string()); });
      st->on_writable([self] { self->pump(); });
      self->pump();
    });
  }

 private:
  static constexpr std::size_t kChunk = 64 * 1024;

  void fill(std::uint64_t offset, std::span<std::uint8_t> out) const {
    if (data_.empty())
      generate(offset, out);
    else
      std::memcpy(out.data(), data_.data() + offset, out.size());
  }

  void pump() {
    auto st = stream_;
    if (!st || finished_) return;
    while (sent_ < total_ && st->writable()) {
      const auto n = static_cast<std::size_t>(std::min<std::uint64_t>(kChunk, total_ - sent_));
      uvwt::Bytes chunk(n);
      fill(sent_, chunk);
      sent_sum_.add(chunk);
      sent_ += n;
      st->write(std::move(chunk), [self = shared_from_this()](const uvwt::Error &e) {
        if (e) self->finish(false, "write: " + e.to_string());
      });
    }
    if (sent_ == total_ && !ended_) {
      ended_ = true;
      st->end();
    }
  }

  void on_data(std::span<const std::uint8_t> d, bool fin) {
    if (finished_) return;
    if (received_ + d.size() > total_) return finish(false, "echo longer than what was sent");
    expect_.resize(d.size());
    if (!d.empty()) fill(received_, expect_);
    if (!mismatch_ && !d.empty() && std::memcmp(expect_.data(), d.data(), d.size()) != 0) {
      mismatch_ = true;
      for (std::size_t i = 0; i < d.size(); ++i) {
        if (expect_[i] != d[i]) {
          first_mismatch_ = received_ + i;
          break;
        }
      }
    }
    recv_sum_.add(d);
    received_ += d.size();
    progress_.update(received_);
    if (!fin) return;
    if (mismatch_) return finish(false, format("echo differs at byte %" PRIu64, first_mismatch_));
    if (received_ != total_)
      return finish(false, format("echo ended after %" PRIu64 " of %" PRIu64 " bytes", received_, total_));
    finish(true, {});
  }

  void finish(bool ok, const std::string &why) {
    if (finished_) return;
    finished_ = true;
    const double secs = std::max(seconds_since(started_), 1e-9);
    const double mibps = static_cast<double>(total_) / (1024.0 * 1024.0) / secs;
    StepResult r;
    r.name = name_;
    r.ok = ok && sent_sum_.h == recv_sum_.h;
    r.text = ok ? format("%" PRIu64 " bytes echoed in %.3f s, %.2f MiB/s, fnv1a %016" PRIx64, total_, secs, mibps,
                         recv_sum_.h)
                : why;
    r.fields = {{"bytes", std::to_string(total_)},
                {"received", std::to_string(received_)},
                {"seconds", json_number(secs)},
                {"mib_per_s", json_number(mibps)},
                {"checksum", json_string(format("%016" PRIx64, recv_sum_.h))}};
    if (stream_ && !ok) stream_->reset(1);
    stream_.reset();  // breaks the stream -> callback -> this cycle
    auto done = std::move(done_);
    done(std::move(r));
  }

  std::string name_;
  uvwt::Bytes data_;
  std::uint64_t total_;
  std::int64_t send_order_ = 0;
  Next done_;
  Progress progress_;
  std::shared_ptr<uvwt::Stream> stream_;
  Clock::time_point started_;
  std::uint64_t sent_ = 0, received_ = 0, first_mismatch_ = 0;
  Fnv1a sent_sum_, recv_sum_;
  std::vector<std::uint8_t> expect_;
  bool ended_ = false, mismatch_ = false, finished_ = false;
};

// Sends N numbered datagrams, paced by a 1 ms timer so the send queue never
// overflows, and matches echoes by number to measure round trips.
class DatagramProbe : public std::enable_shared_from_this<DatagramProbe> {
 public:
  DatagramProbe(uv_loop_t *loop, std::uint32_t count, std::size_t size, double min_ratio, Next done)
      : loop_(loop),
        count_(count),
        size_(size),
        min_ratio_(min_ratio),
        done_(std::move(done)),
        sent_at_(count),
        seen_(count, false) {}

  void start(const std::shared_ptr<uvwt::Session> &session) {
    session_ = session;
    if (session->max_datagram_size() < size_) {
      StepResult r{"datagrams",
                   false,
                   format("datagram size %zu exceeds the session's maximum %zu", size_, session->max_datagram_size()),
                   {}};
      auto done = std::move(done_);
      return done(std::move(r));
    }
    std::weak_ptr<DatagramProbe> weak = shared_from_this();
    session->on_datagram([weak](std::span<const std::uint8_t> d) {
      if (auto self = weak.lock()) self->on_echo(d);
    });
    uv_timer_init(loop_, &timer_);
    timer_.data = this;
    keep_ = shared_from_this();  // until the timer handle is closed
    uv_timer_start(
        &timer_, [](uv_timer_t *t) { static_cast<DatagramProbe *>(t->data)->tick(); }, 0, 1);
  }

 private:
  void tick() {
    if (finished_) return;
    auto s = session_.lock();
    if (!s || s->is_closed()) return finish("session closed");
    for (int burst = 0; burst < 16 && sent_ < count_; ++burst) {
      uvwt::Bytes d(size_);
      for (int i = 0; i < 4; ++i) d[static_cast<std::size_t>(i)] = static_cast<std::uint8_t>(sent_ >> (8 * i));
      generate(sent_, std::span(d).subspan(4));
      if (auto err = s->send_datagram(d)) {
        if (err.errc == uvwt::Errc::flow_control) break;  // queue full: try on the next tick
        return finish("send: " + err.to_string());
      }
      sent_at_[sent_++] = Clock::now();
      if (sent_ == count_) last_sent_ = Clock::now();
    }
    const bool all = received_ == count_;
    // Echoes still on their way get a generous grace period after the last send.
    if (all || (sent_ == count_ && seconds_since(last_sent_) > 1.0)) finish({});
  }

  void on_echo(std::span<const std::uint8_t> d) {
    if (finished_ || d.size() < 4) return;
    std::uint32_t seq = 0;
    for (int i = 0; i < 4; ++i) seq |= static_cast<std::uint32_t>(d[static_cast<std::size_t>(i)]) << (8 * i);
    if (seq >= sent_ || seen_[seq] || d.size() != size_) return;
    seen_[seq] = true;
    ++received_;
    const double rtt = seconds_since(sent_at_[seq]) * 1000.0;
    rtt_min_ = std::min(rtt_min_, rtt);
    rtt_max_ = std::max(rtt_max_, rtt);
    rtt_sum_ += rtt;
  }

  void finish(const std::string &error) {
    if (finished_) return;
    finished_ = true;
    if (auto s = session_.lock()) s->on_datagram({});
    StepResult r;
    r.name = "datagrams";
    const double need = min_ratio_ * count_;
    r.ok = error.empty() && static_cast<double>(received_) >= need && (received_ > 0 || count_ == 0);
    const double avg = received_ ? rtt_sum_ / received_ : 0;
    if (!error.empty()) {
      r.text = error;
    } else {
      r.text = format("%u/%u echoed (%zu bytes each)", received_, count_, size_);
      if (received_) r.text += format(", rtt min/avg/max %.3f/%.3f/%.3f ms", rtt_min_, avg, rtt_max_);
      if (!r.ok) r.text += format(", needed %.0f", need);
    }
    r.fields = {{"sent", std::to_string(sent_)},  {"received", std::to_string(received_)},
                {"size", std::to_string(size_)},  {"rtt_min_ms", json_number(received_ ? rtt_min_ : 0)},
                {"rtt_avg_ms", json_number(avg)}, {"rtt_max_ms", json_number(received_ ? rtt_max_ : 0)}};
    result_ = std::move(r);
    uv_close(reinterpret_cast<uv_handle_t *>(&timer_), [](uv_handle_t *h) {
      auto *self = static_cast<DatagramProbe *>(h->data);
      auto keep = std::move(self->keep_);
      auto done = std::move(self->done_);
      done(std::move(self->result_));
    });
  }

  uv_loop_t *loop_;
  std::uint32_t count_;
  std::size_t size_;
  double min_ratio_;
  Next done_;
  std::weak_ptr<uvwt::Session> session_;
  uv_timer_t timer_{};
  std::shared_ptr<DatagramProbe> keep_;
  std::vector<Clock::time_point> sent_at_;
  std::vector<bool> seen_;
  std::uint32_t sent_ = 0, received_ = 0;
  Clock::time_point last_sent_;
  double rtt_min_ = 1e300, rtt_max_ = 0, rtt_sum_ = 0;
  bool finished_ = false;
  StepResult result_;
};

// Collects what the server pushes on /push: one bidi and one uni stream.
class PushWatch : public std::enable_shared_from_this<PushWatch> {
 public:
  void attach(const std::shared_ptr<uvwt::Session> &s) {
    std::weak_ptr<PushWatch> weak = shared_from_this();
    s->on_bidi_stream([weak](std::shared_ptr<uvwt::Stream> st) {
      if (auto self = weak.lock()) self->read(st, self->bidi_, self->bidi_done_);
    });
    s->on_uni_stream([weak](std::shared_ptr<uvwt::Stream> st) {
      if (auto self = weak.lock()) self->read(st, self->uni_, self->uni_done_);
    });
  }
  // cb once both streams ended (or immediately if they already have).
  void wait(Next cb) {
    waiter_ = std::move(cb);
    check();
  }
  void fail_pending(const std::string &why) {
    if (!waiter_) return;
    auto w = std::move(waiter_);
    w(StepResult{"push", false, why, {}});
  }

 private:
  void read(const std::shared_ptr<uvwt::Stream> &st, std::string &into, bool &done) {
    if (done || !into.empty()) return;  // only the first stream of each kind counts
    std::weak_ptr<PushWatch> weak = shared_from_this();
    std::string *target = &into;
    bool *flag = &done;
    st->on_data([weak, target, flag](std::span<const std::uint8_t> d, bool fin) {
      auto self = weak.lock();
      if (!self) return;
      target->append(reinterpret_cast<const char *>(d.data()), d.size());
      if (fin) {
        *flag = true;
        self->check();
      }
    });
    if (st->direction() == uvwt::StreamDirection::bidirectional) st->end();
  }
  void check() {
    if (!waiter_ || !bidi_done_ || !uni_done_) return;
    const bool ok = bidi_ == "hello from server" && uni_ == "uni from server";
    StepResult r{"push",
                 ok,
                 "bidi \"" + bidi_ + "\", uni \"" + uni_ + "\"",
                 {{"bidi", json_string(bidi_)}, {"uni", json_string(uni_)}}};
    auto w = std::move(waiter_);
    w(std::move(r));
  }
  std::string bidi_, uni_;
  bool bidi_done_ = false, uni_done_ = false;
  Next waiter_;
};

// ---------------------------------------------------------------- the run

class ClientRun : public std::enable_shared_from_this<ClientRun> {
 public:
  ClientRun(uv_loop_t *loop, Options opt) : loop_(loop), opt_(std::move(opt)), report_(opt_.json) {}

  uvwt::Error configure() {
    cfg_.connect_timeout = uvwt::Duration(static_cast<std::int64_t>(opt_.timeout * 1000));
    cfg_.ca_file = opt_.ca_file;
    cfg_.qlog_dir = opt_.qlog_dir;
    if (!opt_.dialect.empty()) cfg_.dialects = {opt_.dialect};
    if (opt_.insecure) cfg_.verify_peer = false;
    for (const auto &h : opt_.cert_hashes) {
      auto pin = uvwt::parse_certificate_hash(h);
      if (!pin) return {uvwt::Errc::configuration, "--cert-hash: not a SHA-256 in hex or base64: " + h};
      cfg_.server_certificate_hashes.push_back(*pin);
    }
    if (!opt_.file.empty()) {
      std::ifstream in(opt_.file, std::ios::binary);
      if (!in) return {uvwt::Errc::configuration, "cannot read " + opt_.file};
      std::stringstream ss;
      ss << in.rdbuf();
      const std::string s = ss.str();
      file_data_.assign(s.begin(), s.end());
    }
    return {};
  }

  void start() {
    uv_timer_init(loop_, &timeout_timer_);
    timeout_timer_.data = this;
    uv_timer_start(
        &timeout_timer_, [](uv_timer_t *t) { static_cast<ClientRun *>(t->data)->on_timeout(); },
        static_cast<std::uint64_t>(opt_.timeout * 1000), 0);
    const bool main_steps = opt_.have_send || !opt_.file.empty() || opt_.bulk_mib > 0 || opt_.datagrams > 0 ||
                            opt_.expect_push || opt_.expect_close || opt_.sessions == 0;
    if (main_steps)
      connect_main();
    else
      run_sessions();
  }

  [[nodiscard]] int finish_exit_code() const {
    report_.finish(opt_.url);
    return report_.failed() ? 1 : 0;
  }

 private:
  void connect_main() {
    connect_started_ = Clock::now();
    auto self = shared_from_this();
    uvwt::Connection::create_client(
        loop_, cfg_, opt_.host, opt_.port, opt_.path, std::nullopt,
        [self](const uvwt::Error &err, std::shared_ptr<uvwt::Connection> conn) {
          if (self->done_) {
            if (conn) conn->close(0, "too late", {});
            return;
          }
          if (err) {
            self->report_.add({"connect", false, err.to_string(), {{"error", json_string(err.to_string())}}});
            return self->wrap_up();
          }
          self->conn_ = conn;
          const auto id = conn->get_ready_session_id();
          self->session_ = id ? conn->get_session(*id) : nullptr;
          if (!self->session_) {
            self->report_.add({"connect", false, "no ready session", {}});
            return self->wrap_up();
          }
          const double ms = seconds_since(self->connect_started_) * 1000;
          const auto info = self->session_->info();
          const auto remote = conn->remote_address();
          self->report_.add({"connect",
                             true,
                             format("session %" PRIu64 " on %s ready in %.1f ms (%s%s%s)", info.session_id,
                                    remote ? remote->to_string().c_str() : "?", ms, info.dialect.c_str(),
                                    info.protocol.empty() ? "" : ", protocol ", info.protocol.c_str()),
                             {{"setup_ms", json_number(ms)}, {"dialect", json_string(info.dialect)}}});
          self->watch_session();
          self->next_step();
        });
  }

  void watch_session() {
    if (opt_.expect_push) {
      push_ = std::make_shared<PushWatch>();
      push_->attach(session_);
    }
    std::weak_ptr<ClientRun> weak = shared_from_this();
    session_->on_closed([weak](const uvwt::SessionCloseInfo &ci) {
      if (auto self = weak.lock()) self->on_session_closed(ci);
    });
  }

  void on_session_closed(const uvwt::SessionCloseInfo &ci) {
    close_info_ = ci;
    session_closed_ = true;
    if (close_waiter_) {
      auto w = std::move(close_waiter_);
      w();
    } else if (!closing_locally_ && !done_) {
      // The server ended the session in the middle of a step.
      if (push_) push_->fail_pending("session closed before the pushed streams ended");
    }
  }

  // --bulk with --send-order: one echo stream per send order, all at once;
  // one result naming the order in which they finished.
  void competing_bulk(std::uint64_t n, const Next &then) {
    struct Race {
      std::vector<std::string> finished;
      std::size_t left = 0;
      bool ok = true;
      std::string errors;
    };
    auto race = std::make_shared<Race>();
    race->left = opt_.send_orders.size();
    for (const std::int64_t order : opt_.send_orders) {
      const std::string name = "bulk[send order " + std::to_string(order) + "]";
      auto t = std::make_shared<EchoTransfer>(name, uvwt::Bytes{}, n, [race, name, then](StepResult r) {
        race->finished.push_back(name);
        if (!r.ok) race->errors += name + ": " + r.text + "; ";
        race->ok = race->ok && r.ok;
        if (--race->left > 0) return;
        StepResult all;
        all.name = "bulk";
        all.ok = race->ok;
        std::string order;
        for (const auto &f : race->finished) order += (order.empty() ? "" : ", ") + f;
        all.text = race->errors + "finished in this order: " + order;
        then(std::move(all));
      });
      t->set_send_order(order);
      t->start(session_);
    }
  }

  // Runs the requested steps one after another.
  void next_step() {
    if (done_) return;
    auto self = shared_from_this();
    auto then = [self](StepResult r) {
      self->report_.add(std::move(r));
      self->next_step();
    };
    switch (step_++) {
      case 0:
        if (push_) return push_->wait(then);
        return next_step();
      case 1:
        if (opt_.have_send) {
          uvwt::Bytes d(opt_.send_text.begin(), opt_.send_text.end());
          const auto n = d.size();
          return std::make_shared<EchoTransfer>("send", std::move(d), n, then)->start(session_);
        }
        if (!opt_.file.empty())
          return std::make_shared<EchoTransfer>("file", file_data_, file_data_.size(), then)->start(session_);
        return next_step();
      case 2:
        if (opt_.bulk_mib > 0) {
          const auto n = static_cast<std::uint64_t>(opt_.bulk_mib * 1024 * 1024);
          if (!opt_.send_orders.empty()) return competing_bulk(n, then);
          return std::make_shared<EchoTransfer>("bulk", uvwt::Bytes{}, n, then)->start(session_);
        }
        return next_step();
      case 3:
        if (opt_.datagrams > 0)
          return std::make_shared<DatagramProbe>(loop_, static_cast<std::uint32_t>(opt_.datagrams), opt_.datagram_size,
                                                 opt_.datagram_min_ratio, then)
              ->start(session_);
        return next_step();
      case 4:
        return close_session([self] { self->next_step(); });
      case 5:
        if (opt_.sessions > 0) return run_sessions();
        return next_step();
      default:
        return wrap_up();
    }
  }

  void close_session(std::function<void()> then) {
    if (opt_.expect_close) {
      auto self = shared_from_this();
      close_waiter_ = [self, then] {
        const auto &ci = self->close_info_;
        bool ok = ci.remote && ci.code == self->opt_.expect_close_code;
        if (self->opt_.have_expect_reason) ok = ok && ci.reason == self->opt_.expect_close_reason;
        self->report_.add({"close",
                           ok,
                           format("closed by %s with code %u reason \"%s\"%s", ci.remote ? "server" : "client", ci.code,
                                  ci.reason.c_str(), ci.error ? (" (" + ci.error.to_string() + ")").c_str() : ""),
                           {{"code", std::to_string(ci.code)},
                            {"reason", json_string(ci.reason)},
                            {"remote", ci.remote ? "true" : "false"}}});
        then();
      };
      if (session_closed_) {
        auto w = std::move(close_waiter_);
        w();
      }
      return;
    }
    if (session_closed_) {
      report_.add({"close",
                   false,
                   format("session closed early by the %s: code %u \"%s\" %s", close_info_.remote ? "server" : "client",
                          close_info_.code, close_info_.reason.c_str(), close_info_.error.to_string().c_str()),
                   {}});
      return then();
    }
    closing_locally_ = true;
    const auto started = Clock::now();
    auto self = shared_from_this();
    close_waiter_ = [self, then, started] {
      const auto &ci = self->close_info_;
      const bool ok = !ci.remote && !ci.error;
      std::string text = format("session closed cleanly in %.1f ms", seconds_since(started) * 1000);
      if (ci.error)
        text = "session close failed: " + ci.error.to_string();
      else if (ci.remote)
        text = format("the server closed the session first (code %u reason \"%s\")", ci.code, ci.reason.c_str());
      self->report_.add(
          {"close", ok, text, {{"code", std::to_string(ci.code)}, {"remote", ci.remote ? "true" : "false"}}});
      then();
    };
    session_->close(opt_.close_code, opt_.close_reason);
  }

  // --sessions: a fresh connection and session each time, one after another.
  void run_sessions() {
    sessions_started_ = Clock::now();
    sessions_done_ = 0;
    setup_total_ = 0;
    open_one_session();
  }

  void open_one_session() {
    if (done_) return;
    if (sessions_done_ == opt_.sessions) {
      const double secs = std::max(seconds_since(sessions_started_), 1e-9);
      const double rate = static_cast<double>(opt_.sessions) / secs;
      const double avg = setup_total_ / static_cast<double>(opt_.sessions) * 1000;
      report_.add({"sessions",
                   true,
                   format("%ld sessions in %.3f s: %.1f sessions/s, setup avg %.2f ms", opt_.sessions, secs, rate, avg),
                   {{"sessions", std::to_string(opt_.sessions)},
                    {"seconds", json_number(secs)},
                    {"sessions_per_s", json_number(rate)},
                    {"setup_avg_ms", json_number(avg)}}});
      return wrap_up();
    }
    const auto started = Clock::now();
    auto self = shared_from_this();
    uvwt::Connection::create_client(
        loop_, cfg_, opt_.host, opt_.port, opt_.path, std::nullopt,
        [self, started](const uvwt::Error &err, std::shared_ptr<uvwt::Connection> conn) {
          if (self->done_) {
            if (conn) conn->close(0, "too late", {});
            return;
          }
          if (err) {
            self->report_.add(
                {"sessions", false, format("session %ld: %s", self->sessions_done_ + 1, err.to_string().c_str()), {}});
            return self->wrap_up();
          }
          self->setup_total_ += seconds_since(started);
          ++self->sessions_done_;
          // The closing handshake (draining) is not part of the setup rate.
          conn->close(0, "next", [conn] {});
          self->open_one_session();
        });
  }

  void on_timeout() {
    if (done_) return;
    report_.add({"timeout", false, format("gave up after %.1f s", opt_.timeout), {}});
    wrap_up();
  }

  // Closes everything this run opened; uv_run returns once all is closed.
  void wrap_up() {
    if (done_) return;
    done_ = true;
    uv_close(reinterpret_cast<uv_handle_t *>(&timeout_timer_), nullptr);
    if (push_) push_->fail_pending("not finished");
    close_waiter_ = nullptr;
    if (conn_) report_transport(conn_->diagnostics());
    if (conn_) {
      auto conn = std::move(conn_);
      session_.reset();
      conn->close(0, "bye", [conn] {});
    }
  }

  // The connection's own view of the path, printed last: what the transfers
  // above ran over.
  void report_transport(const uvwt::ConnectionDiagnostics &d) {
    const auto &st = d.stats;
    report_.add({"rtt",
                 true,
                 format("smoothed %.3f ms, min %.3f ms, cwnd %s, in flight %s", d.rtt * 1000, d.min_rtt * 1000,
                        human_bytes(d.cwnd).c_str(), human_bytes(d.bytes_in_flight).c_str()),
                 {{"rtt_ms", json_number(d.rtt * 1000)},
                  {"min_rtt_ms", json_number(d.min_rtt * 1000)},
                  {"cwnd", std::to_string(d.cwnd)},
                  {"bytes_in_flight", std::to_string(d.bytes_in_flight)}},
                 true});
    auto batching = [](bool on, std::uint64_t n) {
      return on ? format("on (%" PRIu64 " batch%s)", n, n == 1 ? "" : "es") : std::string("off");
    };
    std::string text = format("packets sent %" PRIu64 ", received %" PRIu64 ", lost %" PRIu64
                              " (%.2f %%); payload sent %s, received %s; GSO %s; GRO %s",
                              st.packets_sent, st.packets_received, st.packets_lost, d.packet_loss_rate * 100,
                              human_bytes(st.bytes_sent).c_str(), human_bytes(st.bytes_received).c_str(),
                              batching(d.gso, d.gso_batches).c_str(), batching(d.gro, d.gro_batches).c_str());
    for (const auto &issue : d.issues()) text += "; " + issue;
    report_.add({"transport",
                 true,
                 text,
                 {{"packets_sent", std::to_string(st.packets_sent)},
                  {"packets_received", std::to_string(st.packets_received)},
                  {"packets_lost", std::to_string(st.packets_lost)},
                  {"loss_rate", json_number(d.packet_loss_rate)},
                  {"bytes_sent", std::to_string(st.bytes_sent)},
                  {"bytes_received", std::to_string(st.bytes_received)},
                  {"gso", d.gso ? "true" : "false"},
                  {"gro", d.gro ? "true" : "false"},
                  {"gso_batches", std::to_string(d.gso_batches)},
                  {"gro_batches", std::to_string(d.gro_batches)}},
                 true});
  }

  uv_loop_t *loop_;
  Options opt_;
  Report report_;
  uvwt::ClientConfig cfg_;
  uvwt::Bytes file_data_;
  uv_timer_t timeout_timer_{};
  std::shared_ptr<uvwt::Connection> conn_;
  std::shared_ptr<uvwt::Session> session_;
  std::shared_ptr<PushWatch> push_;
  Clock::time_point connect_started_, sessions_started_;
  int step_ = 0;
  bool done_ = false;
  bool session_closed_ = false;
  bool closing_locally_ = false;
  uvwt::SessionCloseInfo close_info_;
  std::function<void()> close_waiter_;
  long sessions_done_ = 0;
  double setup_total_ = 0;
};

}  // namespace

int main(int argc, char **argv) {
  Options opt;
  if (const int rc = parse_options(argc, argv, opt); rc != 0) return rc < 0 ? 0 : 2;
  std::signal(SIGPIPE, SIG_IGN);
  uv_loop_t loop;
  if (uv_loop_init(&loop) != 0) return 1;
  auto run = std::make_shared<ClientRun>(&loop, opt);
  if (auto err = run->configure()) {
    std::fprintf(stderr, "uvwt-client: %s\n", err.to_string().c_str());
    return 2;
  }
  run->start();
  uv_run(&loop, UV_RUN_DEFAULT);
  const int rc = run->finish_exit_code();
  run.reset();
  uv_run(&loop, UV_RUN_DEFAULT);
  if (uv_loop_close(&loop) != 0) {
    std::fprintf(stderr, "uvwt-client: loop still has open handles:");
    uv_walk(
        &loop, [](uv_handle_t *h, void *) { std::fprintf(stderr, " %s", uv_handle_type_name(uv_handle_get_type(h))); },
        nullptr);
    std::fprintf(stderr, "\n");
    return rc == 0 ? 1 : rc;
  }
  return rc;
}
