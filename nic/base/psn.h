// Serial-number arithmetic: 24-bit PSNs (IBTA vol. 1, 9.7.1 "packet sequence
// numbers", modulo 2^24 with a 2^23 half-window, as rdma_rxe's psn_compare)
// and 16-bit sequence numbers (SMC-R CDC seqno, RFC 7609 3.5; Linux smc_cdc_before).
#pragma once

#include <cstdint>

namespace droce {

// ---- 24-bit PSN ------------------------------------------------------------

inline constexpr uint32_t kPsnBits = 24;
inline constexpr uint32_t kPsnMask = (1u << kPsnBits) - 1;        // 0xFFFFFF
inline constexpr uint32_t kPsnHalfWindow = 1u << (kPsnBits - 1);  // 2^23

// psn + n modulo 2^24. Bits of `psn` above 24 are ignored.
constexpr uint32_t psn_add(uint32_t psn, uint32_t n) { return (psn + n) & kPsnMask; }

// The PSN after `psn` (0xFFFFFF -> 0).
constexpr uint32_t psn_next(uint32_t psn) { return psn_add(psn, 1); }

// psn - n modulo 2^24.
constexpr uint32_t psn_sub(uint32_t psn, uint32_t n) { return (psn - n) & kPsnMask; }

// Signed distance a - b in the 24-bit circle, in [-2^23, 2^23 - 1]: the low
// 24 bits of a - b, sign-extended. Negative means a is before b. A distance
// of exactly 2^23 is reported as -2^23 in both directions (a before b and b
// before a), as rxe's psn_compare does; a window never spans half the space.
constexpr int32_t psn_diff(uint32_t a, uint32_t b) {
  // Shift the 24-bit difference into the top of a 32-bit word, then shift it
  // back arithmetically (C++20: conversion is modular, >> on negatives is
  // arithmetic).
  return static_cast<int32_t>((a - b) << (32 - kPsnBits)) >> (32 - kPsnBits);
}

constexpr bool psn_before(uint32_t a, uint32_t b) { return psn_diff(a, b) < 0; }
constexpr bool psn_after(uint32_t a, uint32_t b) { return psn_diff(a, b) > 0; }
constexpr bool psn_le(uint32_t a, uint32_t b) { return psn_diff(a, b) <= 0; }
constexpr bool psn_ge(uint32_t a, uint32_t b) { return psn_diff(a, b) >= 0; }

// True when lo <= psn < lo + len in the circle (len <= 2^23).
constexpr bool psn_in_window(uint32_t psn, uint32_t lo, uint32_t len) {
  return ((psn - lo) & kPsnMask) < len;
}

// ---- 16-bit sequence numbers -------------------------------------------------

constexpr uint16_t seq16_add(uint16_t s, uint16_t n) { return uint16_t(s + n); }
constexpr uint16_t seq16_next(uint16_t s) { return seq16_add(s, 1); }

// Signed distance a - b in [-2^15, 2^15 - 1]; 2^15 apart reads as "before"
// in both directions, like the 24-bit variant.
constexpr int16_t seq16_diff(uint16_t a, uint16_t b) {
  return static_cast<int16_t>(uint16_t(a - b));
}

constexpr bool seq16_before(uint16_t a, uint16_t b) { return seq16_diff(a, b) < 0; }
constexpr bool seq16_after(uint16_t a, uint16_t b) { return seq16_diff(a, b) > 0; }
constexpr bool seq16_le(uint16_t a, uint16_t b) { return seq16_diff(a, b) <= 0; }
constexpr bool seq16_ge(uint16_t a, uint16_t b) { return seq16_diff(a, b) >= 0; }

}  // namespace droce
