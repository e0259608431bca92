// Big-endian reads and writes at byte offsets, for the CM MAD codec whose
// fields sit at the offsets of IBTA vol. 1 chapter 12 rather than in headers.
#pragma once

#include <cstdint>
#include <cstring>

namespace droce::cm::detail {

inline uint16_t get_be16(const uint8_t* p) { return uint16_t(p[0] << 8 | p[1]); }
inline uint32_t get_be24(const uint8_t* p) { return uint32_t(p[0]) << 16 | uint32_t(p[1]) << 8 | p[2]; }
inline uint32_t get_be32(const uint8_t* p) {
  return uint32_t(p[0]) << 24 | uint32_t(p[1]) << 16 | uint32_t(p[2]) << 8 | p[3];
}
inline uint64_t get_be64(const uint8_t* p) { return uint64_t(get_be32(p)) << 32 | get_be32(p + 4); }

inline void put_be16(uint8_t* p, uint16_t v) {
  p[0] = uint8_t(v >> 8);
  p[1] = uint8_t(v);
}
inline void put_be24(uint8_t* p, uint32_t v) {
  p[0] = uint8_t(v >> 16);
  p[1] = uint8_t(v >> 8);
  p[2] = uint8_t(v);
}
inline void put_be32(uint8_t* p, uint32_t v) {
  put_be16(p, uint16_t(v >> 16));
  put_be16(p + 2, uint16_t(v));
}
inline void put_be64(uint8_t* p, uint64_t v) {
  put_be32(p, uint32_t(v >> 32));
  put_be32(p + 4, uint32_t(v));
}

// Bits hi..lo (hi >= lo, bit 0 the least significant) of a byte.
inline uint8_t get_bits(uint8_t b, unsigned hi, unsigned lo) {
  return uint8_t((b >> lo) & ((1u << (hi - lo + 1)) - 1));
}
inline uint8_t put_bits(uint8_t b, unsigned hi, unsigned lo, unsigned v) {
  const unsigned mask = ((1u << (hi - lo + 1)) - 1) << lo;
  return uint8_t((b & ~mask) | ((v << lo) & mask));
}

}  // namespace droce::cm::detail
