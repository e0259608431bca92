// Explicit big-endian wire integers: Be16/Be32/Be64 and the 24-bit Be24.
// Byte arrays with alignment 1, so wire structs never need packing tricks
// and never trigger unaligned access.
#pragma once

#include <cstdint>
#include <cstring>

namespace droce {

class Be16 {
 public:
  constexpr Be16() = default;
  constexpr explicit Be16(uint16_t v) : b_{uint8_t(v >> 8), uint8_t(v)} {}
  constexpr uint16_t get() const { return uint16_t(b_[0] << 8 | b_[1]); }
  constexpr void set(uint16_t v) { *this = Be16(v); }
  friend constexpr bool operator==(Be16 a, Be16 b) { return a.get() == b.get(); }

 private:
  uint8_t b_[2]{};
};

class Be32 {
 public:
  constexpr Be32() = default;
  constexpr explicit Be32(uint32_t v)
      : b_{uint8_t(v >> 24), uint8_t(v >> 16), uint8_t(v >> 8), uint8_t(v)} {}
  uint32_t get() const {
    uint32_t v;
    std::memcpy(&v, b_, 4);
    return __builtin_bswap32(v);
  }
  void set(uint32_t v) {
    v = __builtin_bswap32(v);
    std::memcpy(b_, &v, 4);
  }
  // The raw network-order value (for opaque fields such as immediate data).
  uint32_t raw() const {
    uint32_t v;
    std::memcpy(&v, b_, 4);
    return v;
  }
  void set_raw(uint32_t v) { std::memcpy(b_, &v, 4); }
  friend bool operator==(Be32 a, Be32 b) { return a.get() == b.get(); }

 private:
  uint8_t b_[4]{};
};

class Be64 {
 public:
  constexpr Be64() = default;
  explicit Be64(uint64_t v) { set(v); }
  uint64_t get() const {
    uint64_t v;
    std::memcpy(&v, b_, 8);
    return __builtin_bswap64(v);
  }
  void set(uint64_t v) {
    v = __builtin_bswap64(v);
    std::memcpy(b_, &v, 8);
  }
  friend bool operator==(Be64 a, Be64 b) { return a.get() == b.get(); }

 private:
  uint8_t b_[8]{};
};

static_assert(sizeof(Be16) == 2 && alignof(Be16) == 1);
static_assert(sizeof(Be32) == 4 && alignof(Be32) == 1);
static_assert(sizeof(Be64) == 8 && alignof(Be64) == 1);

inline constexpr uint32_t kMask24 = 0x00FFFFFF;

// Reads/writes the low 24 bits of a big-endian 32-bit word, keeping the top byte.
inline uint32_t get_low24(Be32 w) { return w.get() & kMask24; }
inline void set_low24(Be32& w, uint32_t v) { w.set((w.get() & ~kMask24) | (v & kMask24)); }
inline uint8_t get_high8(Be32 w) { return uint8_t(w.get() >> 24); }
inline void set_high8(Be32& w, uint8_t v) { w.set((w.get() & kMask24) | uint32_t(v) << 24); }

}  // namespace droce
