// Transport timers from 5-bit QP attributes: the RNR NAK timer table (IBTA
// vol. 1, 9.7.5.2.8, table 45) and the local ACK timeout (IBTA 11.2.4.2,
// 4.096 us * 2^timeout, 0 = infinite). Pure constexpr; values in ns.
#pragma once

#include <array>
#include <cstdint>

#include "nic/base/clock.h"

namespace droce {

// A deadline or interval that never expires.
inline constexpr Nanos kNeverNs = UINT64_MAX;

// RNR NAK timer field (5 bits, in the AETH of an RNR NAK and the QP's
// min_rnr_timer attribute) -> minimum wait in microseconds. Code 0 is the
// longest wait, 655.36 ms. Code 25 is 61.44 ms (rxe's table says 61410 us,
// a typo; droce follows the spec).
inline constexpr std::array<uint32_t, 32> kRnrTimerUs = {
    655360, 10,    20,    30,     40,     60,     80,     120,     //  0 -  7
    160,    240,   320,   480,    640,    960,    1280,   1920,    //  8 - 15
    2560,   3840,  5120,  7680,   10240,  15360,  20480,  30720,   // 16 - 23
    40960,  61440, 81920, 122880, 163840, 245760, 327680, 491520,  // 24 - 31
};

// Bits above the 5-bit field are ignored.
constexpr uint32_t rnr_timer_us(uint8_t code) { return kRnrTimerUs[code & 0x1F]; }
constexpr Nanos rnr_timer_ns(uint8_t code) { return Nanos{rnr_timer_us(code)} * kNanosPerUs; }

// Local ACK timeout attribute (5 bits) -> retransmit interval in ns:
// 4.096 us * 2^timeout = 4096 ns << timeout; 0 disables the timer (kNeverNs).
// The largest, timeout 31, is 2^43 ns (about 2.4 hours).
inline constexpr Nanos kAckTimeoutUnitNs = 4096;
constexpr Nanos ack_timeout_ns(uint8_t timeout) {
  const uint8_t t = timeout & 0x1F;
  return t == 0 ? kNeverNs : kAckTimeoutUnitNs << t;
}

// retry_cnt and rnr_retry are 3-bit counters; 7 means retry forever (IBTA
// 11.2.4.2; for retry_cnt droce follows rxe, which never decrements 7).
inline constexpr uint8_t kInfiniteRetry = 7;
constexpr bool retry_is_infinite(uint8_t count) { return (count & 7) == kInfiniteRetry; }

// now + interval, saturating at kNeverNs (so an infinite interval, or one
// that would overflow, never expires).
constexpr Nanos deadline_after(Nanos now, Nanos interval) {
  return interval >= kNeverNs - now ? kNeverNs : now + interval;
}

}  // namespace droce
