// RDMA Extended Transport Header (IBTA vol. 1, 9.3.3).
#pragma once

#include "nic/base/endian.h"

namespace droce::wire {

struct Reth {
  Be64 va;          // remote virtual address
  Be32 rkey;        // remote key
  Be32 dma_length;  // total message length, bytes
};
static_assert(sizeof(Reth) == 16);

}  // namespace droce::wire
