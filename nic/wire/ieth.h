// Invalidate ETH (IBTA vol. 1, 9.3.8): the R_Key to invalidate at the responder.
#pragma once

#include "nic/base/endian.h"

namespace droce::wire {

struct Ieth {
  Be32 rkey;  // R_Key to invalidate
};
static_assert(sizeof(Ieth) == 4);

}  // namespace droce::wire
