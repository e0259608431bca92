// Tests for nic/base/rnr.h: every RNR timer code against the IBTA table 45
// values (written out here in milliseconds), every local ACK timeout code.
#include "nic/base/rnr.h"

#include <gtest/gtest.h>

#include <cstdint>

namespace droce {
namespace {

// IBTA vol. 1 table 45, in milliseconds * 100 (i.e. units of 10 us), as the
// spec prints them: 655.36, 0.01, 0.02, ... 491.52.
constexpr uint32_t kSpecRnrHundredthsMs[32] = {
    65536, 1,    2,    3,     4,     6,     8,     12,     //
    16,    24,   32,   48,    64,    96,    128,   192,    //
    256,   384,  512,  768,   1024,  1536,  2048,  3072,   //
    4096,  6144, 8192, 12288, 16384, 24576, 32768, 49152,  //
};

TEST(RnrTimer, EveryCodeMatchesIbtaTable) {
  for (uint32_t code = 0; code < 32; ++code) {
    const uint32_t want_us = kSpecRnrHundredthsMs[code] * 10;
    EXPECT_EQ(rnr_timer_us(uint8_t(code)), want_us) << "code " << code;
    EXPECT_EQ(rnr_timer_ns(uint8_t(code)), Nanos{want_us} * 1000) << "code " << code;
  }
}

TEST(RnrTimer, NamedValues) {
  EXPECT_EQ(rnr_timer_us(0), 655360u);  // longest wait
  EXPECT_EQ(rnr_timer_us(1), 10u);      // shortest wait
  EXPECT_EQ(rnr_timer_us(25), 61440u);  // not rxe's 61410
  EXPECT_EQ(rnr_timer_us(31), 491520u);
  EXPECT_EQ(rnr_timer_ns(25), Nanos{61440000});
}

TEST(RnrTimer, IncreasingFromCodeOne) {
  for (uint32_t code = 2; code < 32; ++code) {
    EXPECT_GT(rnr_timer_us(uint8_t(code)), rnr_timer_us(uint8_t(code - 1))) << code;
  }
  EXPECT_GT(rnr_timer_us(0), rnr_timer_us(31));
}

TEST(RnrTimer, OnlyLowFiveBitsCount) {
  for (uint32_t code = 0; code < 256; ++code) {
    EXPECT_EQ(rnr_timer_us(uint8_t(code)), rnr_timer_us(uint8_t(code & 31))) << code;
  }
}

TEST(AckTimeout, EveryCode) {
  EXPECT_EQ(ack_timeout_ns(0), kNeverNs);
  // 4.096 us * 2^t, computed in double and compared exactly (all values are
  // integers of ns below 2^53).
  for (uint32_t t = 1; t < 32; ++t) {
    double want = 4.096 * 1000.0;
    for (uint32_t i = 0; i < t; ++i) want *= 2;
    EXPECT_EQ(ack_timeout_ns(uint8_t(t)), Nanos(want)) << "timeout " << t;
  }
  EXPECT_EQ(ack_timeout_ns(1), Nanos{8192});
  EXPECT_EQ(ack_timeout_ns(14), Nanos{67108864});  // ~67 ms, a common setting
  EXPECT_EQ(ack_timeout_ns(31), Nanos{1} << 43);
  EXPECT_EQ(ack_timeout_ns(32), kNeverNs);  // only 5 bits: 32 reads as 0
  EXPECT_EQ(ack_timeout_ns(33), ack_timeout_ns(1));
}

TEST(Retry, SevenIsInfinite) {
  for (uint8_t n = 0; n < 7; ++n) EXPECT_FALSE(retry_is_infinite(n)) << int(n);
  EXPECT_TRUE(retry_is_infinite(7));
}

TEST(Deadline, Saturates) {
  EXPECT_EQ(deadline_after(100, 50), Nanos{150});
  EXPECT_EQ(deadline_after(100, kNeverNs), kNeverNs);
  EXPECT_EQ(deadline_after(kNeverNs - 10, 20), kNeverNs);
  EXPECT_EQ(deadline_after(kNeverNs - 10, 9), kNeverNs - 1);
  EXPECT_EQ(deadline_after(0, ack_timeout_ns(0)), kNeverNs);
}

}  // namespace
}  // namespace droce
