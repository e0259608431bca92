// SMC_LOG=1: why a connection was declined, fell back to TCP, was aborted or
// lost its link, on stderr (never per message on the data path).
#pragma once

#include <cstdio>

namespace droce::smc {

// True when SMC_LOG is set to a value other than 0 (read once).
bool log_enabled();

}  // namespace droce::smc

#define SMC_LOG(...)                                   \
  do {                                                 \
    if (::droce::smc::log_enabled()) {                 \
      std::fprintf(stderr, "droce-smc: " __VA_ARGS__); \
      std::fputc('\n', stderr);                        \
    }                                                  \
  } while (0)
