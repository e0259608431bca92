// Time for the engine: nanoseconds from a monotonic clock. The engine and the
// port take `now` as a parameter so tests can drive them with a fake clock.
#pragma once

#include <cstdint>
#include <ctime>

namespace droce {

using Nanos = uint64_t;

inline constexpr Nanos kNanosPerUs = 1000;
inline constexpr Nanos kNanosPerMs = 1000 * kNanosPerUs;
inline constexpr Nanos kNanosPerSec = 1000 * kNanosPerMs;

inline Nanos monotonic_now() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return Nanos(ts.tv_sec) * kNanosPerSec + Nanos(ts.tv_nsec);
}

}  // namespace droce
