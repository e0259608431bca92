// UDP header (RFC 768); RoCEv2 uses destination port 4791 (IBTA annex A17).
#pragma once

#include "nic/base/endian.h"

namespace droce::wire {

inline constexpr uint16_t kRoceV2Port = 4791;

struct UdpHdr {
  Be16 src_port;  // flow entropy (hash of the QP pair), 0xC000..0xFFFF
  Be16 dst_port;  // 4791
  Be16 length;    // header + payload, bytes
  Be16 checksum;  // 0 (not computed) for RoCEv2; ICRC-masked
};
static_assert(sizeof(UdpHdr) == 8);

// UDP source port for a QP pair: 0xC000 | 14-bit hash, as rxe and RNICs do.
uint16_t roce_udp_src_port(uint32_t src_qpn, uint32_t dst_qpn);

}  // namespace droce::wire
