#pragma once

#include <functional>
#include <string_view>

#include <uvwt/export.hpp>

namespace uvwt {

enum class LogLevel { trace = 0, debug, info, warning, error, off };

// Process-wide log hook. Called on the thread that logs (a loop thread).
// The default hook writes warnings and errors to stderr.
using LogHook = std::function<void(LogLevel, std::string_view)>;
UVWT_EXPORT void set_log_hook(LogHook hook);
UVWT_EXPORT void set_log_level(LogLevel min_level);
UVWT_EXPORT LogLevel log_level() noexcept;

}  // namespace uvwt
