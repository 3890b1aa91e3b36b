#pragma once

#include <uvwt/log.hpp>

#include <cstdio>
#include <string>

namespace uvwt::detail {

// Formats and forwards to the user's log hook when `level` is enabled.
// Cheap when disabled: the level check happens before any formatting.
bool log_enabled(LogLevel level) noexcept;
void log_write(LogLevel level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

}  // namespace uvwt::detail

#define UVWT_LOG(level, ...)                                                               \
  do {                                                                                     \
    if (::uvwt::detail::log_enabled(level)) ::uvwt::detail::log_write(level, __VA_ARGS__); \
  } while (0)
#define UVWT_TRACE(...) UVWT_LOG(::uvwt::LogLevel::trace, __VA_ARGS__)
#define UVWT_DEBUG(...) UVWT_LOG(::uvwt::LogLevel::debug, __VA_ARGS__)
#define UVWT_INFO(...) UVWT_LOG(::uvwt::LogLevel::info, __VA_ARGS__)
#define UVWT_WARN(...) UVWT_LOG(::uvwt::LogLevel::warning, __VA_ARGS__)
#define UVWT_ERROR(...) UVWT_LOG(::uvwt::LogLevel::error, __VA_ARGS__)
