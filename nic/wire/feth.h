// FLUSH Extended Transport Header (IBTA vol. 1 annex A19, Memory Placement
// Extensions, A19.4.1): the placement type and selectivity level of an RC FLUSH.
#pragma once

#include <cstdint>

#include "nic/base/endian.h"

namespace droce::wire {

// Placement types (A19.4.1.1), bits 3:0 of the FETH; a FLUSH may name both.
inline constexpr uint8_t kFlushGlobal = 1u << 0;      // global visibility
inline constexpr uint8_t kFlushPersistent = 1u << 1;  // persistence
// Selectivity levels (A19.4.1.2), bits 5:4.
inline constexpr uint8_t kFlushRange = 0;  // the RETH's [va, va + length)
inline constexpr uint8_t kFlushMr = 1;     // the whole region the R_Key names

struct Feth {
  Be32 bits;  // Reserved(26) | Selectivity level(2) | Placement type(4)

  static constexpr uint32_t kPlacementMask = 0x0F;
  static constexpr uint32_t kSelectivityMask = 0x30;
  static constexpr int kSelectivityShift = 4;

  uint8_t placement() const { return uint8_t(bits.get() & kPlacementMask); }
  uint8_t selectivity() const {
    return uint8_t((bits.get() & kSelectivityMask) >> kSelectivityShift);
  }
  void set(uint8_t placement, uint8_t selectivity) {
    bits.set((uint32_t(selectivity) << kSelectivityShift & kSelectivityMask) |
             (placement & kPlacementMask));
  }
};
static_assert(sizeof(Feth) == 4);

}  // namespace droce::wire
