// Atomic Extended Transport Header and Atomic ACK ETH (IBTA vol. 1, 9.3.4 / 9.3.6).
#pragma once

#include "nic/base/endian.h"

namespace droce::wire {

struct AtomicEth {
  Be64 va;        // remote virtual address, 8-byte aligned
  Be32 rkey;      // remote key
  Be64 swap_add;  // swap value (CMP_SWAP) or addend (FETCH_ADD)
  Be64 compare;   // compare value (CMP_SWAP)
};
static_assert(sizeof(AtomicEth) == 28);

struct AtomicAckEth {
  Be64 orig;  // original remote data
};
static_assert(sizeof(AtomicAckEth) == 8);

}  // namespace droce::wire
