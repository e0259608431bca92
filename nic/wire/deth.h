// Datagram ETH (IBTA vol. 1, 9.3.2): Q_Key and source QP for UD.
#pragma once

#include "nic/base/endian.h"

namespace droce::wire {

inline constexpr uint32_t kGsiQkey = 0x80010000;

struct Deth {
  Be32 qkey;        // queue key
  Be32 rsvd_srcqp;  // Reserved(8) | SrcQP(24)

  uint32_t src_qp() const { return get_low24(rsvd_srcqp); }
  void set_src_qp(uint32_t qpn) { rsvd_srcqp.set(qpn & kMask24); }
};
static_assert(sizeof(Deth) == 8);

}  // namespace droce::wire
