// Immediate Data ETH (IBTA vol. 1, 9.3.7): opaque 32 bits, passed through in network order.
#pragma once

#include "nic/base/endian.h"

namespace droce::wire {

struct ImmDt {
  Be32 imm;  // immediate data (use raw(): libibverbs keeps it in network order)
};
static_assert(sizeof(ImmDt) == 4);

}  // namespace droce::wire
