#include "common/log.hpp"

#include <atomic>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace uvwt {

namespace {
LogLevel initial_level() {
  // UVWT_LOG=debug|info|warning|error|off|trace lets a user turn logs up without code.
  const char *env = std::getenv("UVWT_LOG");
  if (env == nullptr) return LogLevel::warning;
  static constexpr std::pair<const char *, LogLevel> kLevels[] = {
      {"trace", LogLevel::trace},     {"debug", LogLevel::debug}, {"info", LogLevel::info},
      {"warning", LogLevel::warning}, {"error", LogLevel::error}, {"off", LogLevel::off}};
  for (const auto &[name, lvl] : kLevels)
    if (std::strcmp(env, name) == 0) return lvl;
  return LogLevel::warning;
}

std::atomic<LogLevel> g_level{initial_level()};
LogHook &hook() {
  static LogHook h = [](LogLevel lvl, std::string_view msg) {
    static constexpr const char *kNames[] = {"trace", "debug", "info", "warn", "error", "off"};
    std::fprintf(stderr, "uvwt %s: %.*s\n", kNames[static_cast<int>(lvl)], static_cast<int>(msg.size()), msg.data());
  };
  return h;
}
}  // namespace

void set_log_hook(LogHook h) { hook() = std::move(h); }
void set_log_level(LogLevel min_level) { g_level.store(min_level); }
LogLevel log_level() noexcept { return g_level.load(std::memory_order_relaxed); }

namespace detail {
bool log_enabled(LogLevel level) noexcept {
  return level >= g_level.load(std::memory_order_relaxed) && level != LogLevel::off;
}

void log_write(LogLevel level, const char *fmt, ...) {
  char buf[1024];
  va_list ap;
  va_start(ap, fmt);
  const int n = std::vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  if (n < 0) return;
  const auto len = static_cast<std::size_t>(n) < sizeof buf ? static_cast<std::size_t>(n) : sizeof buf - 1;
  if (auto &h = hook()) h(level, std::string_view(buf, len));
}
}  // namespace detail

}  // namespace uvwt
