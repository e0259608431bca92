// Tests for nic/base/psn.h: 24-bit PSN and 16-bit seqno serial arithmetic,
// wrap-around and half-window boundaries against an independent int64 model.
#include "nic/base/psn.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <vector>

namespace droce {
namespace {

// Reference model: the distance a - b taken modulo 2^bits into the range
// [-2^(bits-1), 2^(bits-1) - 1], computed with plain 64-bit integers.
int64_t ref_diff(int64_t a, int64_t b, int bits) {
  const int64_t mod = int64_t{1} << bits;
  int64_t d = ((a - b) % mod + mod) % mod;
  if (d >= mod / 2) d -= mod;
  return d;
}

// PSNs near the interesting points of the circle.
std::vector<uint32_t> psn_probe_points() {
  std::vector<uint32_t> v;
  for (int64_t center : {int64_t{0}, int64_t{kPsnHalfWindow}, int64_t{kPsnMask}, int64_t{0x123456},
                         int64_t{kPsnHalfWindow} / 2}) {
    for (int64_t off = -300; off <= 300; ++off) {
      v.push_back(uint32_t(((center + off) % (int64_t{1} << 24) + (int64_t{1} << 24)) %
                           (int64_t{1} << 24)));
    }
  }
  return v;
}

static_assert(kPsnMask == 0xFFFFFF);
static_assert(psn_next(0xFFFFFF) == 0);
static_assert(psn_add(0xFFFFFE, 3) == 1);
static_assert(psn_diff(0, 0xFFFFFF) == 1);
static_assert(psn_before(0xFFFFFF, 0));

TEST(Psn, AddWrapsAt24Bits) {
  EXPECT_EQ(psn_add(0, 0), 0u);
  EXPECT_EQ(psn_add(0xFFFFFF, 1), 0u);
  EXPECT_EQ(psn_add(0xFFFFFF, 2), 1u);
  EXPECT_EQ(psn_add(0xFFFF00, 0x100), 0u);
  EXPECT_EQ(psn_add(0x800000, 0x800000), 0u);
  EXPECT_EQ(psn_add(1, 0xFFFFFF), 0u);   // adding 2^24 - 1 is subtracting one
  EXPECT_EQ(psn_add(5, 0x1000000), 5u);  // adding 2^24 is a no-op
  // High bits of the input never leak into the result.
  EXPECT_EQ(psn_add(0xFF000010, 1), 0x11u);
  EXPECT_EQ(psn_next(0x7FFFFF), 0x800000u);
  EXPECT_EQ(psn_next(0xFFFFFF), 0u);
  EXPECT_EQ(psn_sub(0, 1), 0xFFFFFFu);
  EXPECT_EQ(psn_sub(3, 5), 0xFFFFFEu);
  EXPECT_EQ(psn_sub(0x800000, 0x800000), 0u);
}

TEST(Psn, NextWalksTheWholeCircleOnce) {
  uint32_t p = 0x123456;
  uint64_t steps = 0;
  do {
    uint32_t n = psn_next(p);
    ASSERT_LE(n, kPsnMask);
    ASSERT_EQ(psn_diff(n, p), 1);
    ASSERT_TRUE(psn_after(n, p));
    p = n;
    ++steps;
  } while (p != 0x123456 && steps <= (uint64_t{1} << 24));
  EXPECT_EQ(steps, uint64_t{1} << 24);
}

TEST(Psn, DiffAtHalfWindowBoundaries) {
  // Largest forward distance is 2^23 - 1; 2^23 reads as "before" both ways.
  EXPECT_EQ(psn_diff(0x7FFFFF, 0), 0x7FFFFF);
  EXPECT_EQ(psn_diff(0x800000, 0), -0x800000);
  EXPECT_EQ(psn_diff(0, 0x800000), -0x800000);
  EXPECT_EQ(psn_diff(0x800001, 0), -0x7FFFFF);
  EXPECT_EQ(psn_diff(0, 0x7FFFFF), -0x7FFFFF);
  EXPECT_TRUE(psn_after(0x7FFFFF, 0));
  EXPECT_TRUE(psn_before(0x800000, 0));
  EXPECT_TRUE(psn_before(0, 0x800000));
  EXPECT_TRUE(psn_before(0x800001, 0));
  // Across the wrap.
  EXPECT_EQ(psn_diff(0, 0xFFFFFF), 1);
  EXPECT_EQ(psn_diff(0xFFFFFF, 0), -1);
  EXPECT_EQ(psn_diff(0x7FFFFE, 0xFFFFFF), 0x7FFFFF);
  EXPECT_EQ(psn_diff(0x7FFFFF, 0xFFFFFF), -0x800000);
  EXPECT_TRUE(psn_le(5, 5));
  EXPECT_TRUE(psn_ge(5, 5));
  EXPECT_FALSE(psn_before(5, 5));
  EXPECT_FALSE(psn_after(5, 5));
}

TEST(Psn, DiffIgnoresBitsAbove24) {
  EXPECT_EQ(psn_diff(0xAB000001, 0xCD000000), 1);
  EXPECT_EQ(psn_diff(0x01FFFFFF, 0x00000000), -1);
}

TEST(Psn, ExhaustiveNearBoundariesMatchesModel) {
  const std::vector<uint32_t> pts = psn_probe_points();
  for (uint32_t a : pts) {
    for (uint32_t b : pts) {
      const int64_t want = ref_diff(a, b, 24);
      const int32_t got = psn_diff(a, b);
      ASSERT_EQ(got, want) << std::hex << "a=0x" << a << " b=0x" << b;
      ASSERT_EQ(psn_before(a, b), want < 0);
      ASSERT_EQ(psn_after(a, b), want > 0);
      ASSERT_EQ(psn_le(a, b), want <= 0);
      ASSERT_EQ(psn_ge(a, b), want >= 0);
      // Adding the distance back to b gives a.
      ASSERT_EQ(psn_add(b, uint32_t(got)), a);
    }
  }
}

TEST(Psn, ExhaustiveAllPsnsAgainstFixedReferences) {
  for (uint32_t b : {0u, 1u, 0x7FFFFFu, 0x800000u, 0xFFFFFFu, 0x5A5A5Au}) {
    for (uint32_t a = 0; a <= kPsnMask; ++a) {
      const int64_t want = ref_diff(a, b, 24);
      ASSERT_EQ(psn_diff(a, b), want) << std::hex << "a=0x" << a << " b=0x" << b;
      ASSERT_EQ(psn_before(a, b), want < 0);
    }
  }
}

TEST(Psn, Window) {
  EXPECT_TRUE(psn_in_window(0xFFFFFE, 0xFFFFFE, 4));
  EXPECT_TRUE(psn_in_window(0xFFFFFF, 0xFFFFFE, 4));
  EXPECT_TRUE(psn_in_window(0, 0xFFFFFE, 4));
  EXPECT_TRUE(psn_in_window(1, 0xFFFFFE, 4));
  EXPECT_FALSE(psn_in_window(2, 0xFFFFFE, 4));
  EXPECT_FALSE(psn_in_window(0xFFFFFD, 0xFFFFFE, 4));
  EXPECT_FALSE(psn_in_window(7, 7, 0));
  for (uint32_t lo : {0u, 0xFFFFF0u, 0x7FFFF8u}) {
    for (uint32_t off = 0; off < 64; ++off) {
      const uint32_t p = psn_add(lo, off);
      ASSERT_EQ(psn_in_window(p, lo, 32), off < 32) << lo << " " << off;
    }
  }
}

// ---- 16-bit ------------------------------------------------------------------

static_assert(seq16_next(0xFFFF) == 0);
static_assert(seq16_before(0xFFFF, 0));

TEST(Seq16, WrapAndHalfWindow) {
  EXPECT_EQ(seq16_add(0xFFFF, 1), 0);
  EXPECT_EQ(seq16_add(0xFFF0, 0x20), 0x10);
  EXPECT_EQ(seq16_next(0x7FFF), 0x8000);
  EXPECT_EQ(seq16_diff(0, 0xFFFF), 1);
  EXPECT_EQ(seq16_diff(0xFFFF, 0), -1);
  EXPECT_EQ(seq16_diff(0x7FFF, 0), 0x7FFF);
  EXPECT_EQ(seq16_diff(0x8000, 0), -0x8000);
  EXPECT_EQ(seq16_diff(0, 0x8000), -0x8000);
  EXPECT_TRUE(seq16_before(0x8000, 0));
  EXPECT_TRUE(seq16_before(0, 0x8000));
  EXPECT_TRUE(seq16_after(0x7FFF, 0));
  EXPECT_TRUE(seq16_le(9, 9));
  EXPECT_TRUE(seq16_ge(9, 9));
  EXPECT_FALSE(seq16_before(9, 9));
}

TEST(Seq16, ExhaustiveAgainstModel) {
  // Every a against 257 spread-out b values, including all the boundaries.
  std::vector<uint16_t> bs = {0, 1, 0x7FFF, 0x8000, 0x8001, 0xFFFE, 0xFFFF};
  for (uint32_t b = 0; b < 0x10000; b += 257) bs.push_back(uint16_t(b));
  for (uint16_t b : bs) {
    for (uint32_t a = 0; a < 0x10000; ++a) {
      const int64_t want = ref_diff(a, b, 16);
      ASSERT_EQ(seq16_diff(uint16_t(a), b), want) << a << " " << b;
      ASSERT_EQ(seq16_before(uint16_t(a), b), want < 0);
      ASSERT_EQ(seq16_after(uint16_t(a), b), want > 0);
      ASSERT_EQ(seq16_le(uint16_t(a), b), want <= 0);
      ASSERT_EQ(seq16_ge(uint16_t(a), b), want >= 0);
      ASSERT_EQ(seq16_add(b, uint16_t(want)), uint16_t(a));
    }
  }
}

}  // namespace
}  // namespace droce
