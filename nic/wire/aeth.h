// ACK Extended Transport Header (IBTA vol. 1, 9.3.5): syndrome and MSN.
#pragma once

#include <cstdint>

#include "nic/base/endian.h"

namespace droce::wire {

enum class AethType : uint8_t { kAck = 0, kRnrNak = 1, kReserved = 2, kNak = 3 };

// NAK codes (syndrome bits 4:0 when the type is kNak).
enum class NakCode : uint8_t {
  kPsnSeqError = 0,
  kInvalidRequest = 1,
  kRemoteAccessError = 2,
  kRemoteOpError = 3,
  kInvalidRdRequest = 4,
};

inline constexpr uint8_t kAethCreditInvalid = 0x1F;  // "unlimited" credits, as rxe sends

struct Aeth {
  Be32 syn_msn;  // Syndrome(8) | MSN(24)

  uint8_t syndrome() const { return get_high8(syn_msn); }
  AethType type() const { return AethType((syndrome() >> 5) & 3); }
  uint8_t value() const { return syndrome() & 0x1F; }  // credits / RNR timer / NAK code
  uint32_t msn() const { return get_low24(syn_msn); }
  void set(uint8_t syndrome, uint32_t msn) { syn_msn.set(uint32_t(syndrome) << 24 | (msn & kMask24)); }

  static constexpr uint8_t make_syndrome(AethType t, uint8_t value) {
    return uint8_t(uint8_t(t) << 5 | (value & 0x1F));
  }
};
static_assert(sizeof(Aeth) == 4);

}  // namespace droce::wire
