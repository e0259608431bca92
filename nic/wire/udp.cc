// UDP source port entropy for RoCEv2 (IBTA annex A17.4.1: sport carries a flow hash).
#include "nic/wire/udp.h"

namespace droce::wire {

uint16_t roce_udp_src_port(uint32_t src_qpn, uint32_t dst_qpn) {
  // A 32-bit mix (murmur3 finaliser) of both 24-bit QPNs; the top two bits of
  // the port are fixed to 11 so the port stays in 0xC000..0xFFFF.
  uint32_t h = (src_qpn & kMask24) * 0x9E3779B1u ^ (dst_qpn & kMask24);
  h ^= h >> 16;
  h *= 0x85EBCA6Bu;
  h ^= h >> 13;
  h *= 0xC2B2AE35u;
  h ^= h >> 16;
  return uint16_t(0xC000 | (h & 0x3FFF));
}

}  // namespace droce::wire
