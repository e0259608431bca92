// Minimal logging to stderr for setup and user-facing diagnostics (never per packet).
#pragma once

#include <cstdio>

namespace droce {

// True when DROCE_LOG=1 (read once).
bool log_enabled();

}  // namespace droce

#define DROCE_ERROR(...)                    \
  do {                                      \
    std::fprintf(stderr, "droce: " __VA_ARGS__); \
    std::fputc('\n', stderr);               \
  } while (0)

#define DROCE_DEBUG(...)                      \
  do {                                        \
    if (::droce::log_enabled()) DROCE_ERROR(__VA_ARGS__); \
  } while (0)
