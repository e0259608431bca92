// Base Transport Header (IBTA vol. 1, 9.2): 12 bytes after UDP.
#pragma once

#include <cstdint>

#include "nic/base/endian.h"

namespace droce::wire {

inline constexpr uint16_t kDefaultPkey = 0xFFFF;

struct Bth {
  uint8_t opcode;     // transport base | operation (see opcodes.h)
  uint8_t flags;      // SE(1) MigReq(1) PadCnt(2) TVer(4)
  Be16 pkey;          // partition key, 0xFFFF default
  Be32 fecn_dqpn;     // FECN(1) BECN(1) Resv6a(6) | DestQP(24); byte 4 ICRC-masked
  Be32 ackreq_psn;    // AckReq(1) Resv7(7) | PSN(24)

  static constexpr uint8_t kSe = 0x80;
  static constexpr uint8_t kMigReq = 0x40;
  static constexpr uint8_t kPadShift = 4;
  static constexpr uint8_t kPadMask = 0x30;
  static constexpr uint8_t kTverMask = 0x0F;
  static constexpr uint8_t kFecn = 0x80;
  static constexpr uint8_t kBecn = 0x40;
  static constexpr uint8_t kAckReq = 0x80;

  bool se() const { return flags & kSe; }
  bool migreq() const { return flags & kMigReq; }
  uint8_t pad() const { return uint8_t((flags & kPadMask) >> kPadShift); }
  uint8_t tver() const { return flags & kTverMask; }
  uint32_t dest_qp() const { return get_low24(fecn_dqpn); }
  uint8_t byte4() const { return get_high8(fecn_dqpn); }
  bool becn() const { return byte4() & kBecn; }
  uint32_t psn() const { return get_low24(ackreq_psn); }
  bool ackreq() const { return get_high8(ackreq_psn) & kAckReq; }

  void set_flags(bool se, bool migreq, uint8_t pad) {
    flags = uint8_t((se ? kSe : 0) | (migreq ? kMigReq : 0) | ((pad << kPadShift) & kPadMask));
  }
  void set_dest_qp(uint32_t qpn) { set_low24(fecn_dqpn, qpn); }
  void set_byte4(uint8_t v) { set_high8(fecn_dqpn, v); }
  void set_psn(uint32_t psn) { set_low24(ackreq_psn, psn); }
  void set_ackreq(bool v) { set_high8(ackreq_psn, v ? kAckReq : 0); }
};
static_assert(sizeof(Bth) == 12);

}  // namespace droce::wire
