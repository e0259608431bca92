// Ethernet II header with optional 802.1Q tag (IEEE 802.3 / 802.1Q).
#pragma once

#include <array>
#include <cstdint>

#include "nic/base/endian.h"

namespace droce::wire {

using MacAddr = std::array<uint8_t, 6>;

inline constexpr uint16_t kEtherTypeIpv4 = 0x0800;
inline constexpr uint16_t kEtherTypeArp = 0x0806;
inline constexpr uint16_t kEtherTypeVlan = 0x8100;
inline constexpr uint16_t kEtherTypeIpv6 = 0x86DD;

struct EthHdr {
  MacAddr dst;      // destination MAC
  MacAddr src;      // source MAC
  Be16 ether_type;  // 0x0800 IPv4, 0x86DD IPv6, 0x8100 VLAN tag follows
};
static_assert(sizeof(EthHdr) == 14);

struct VlanTag {
  Be16 tci;         // PCP(3) DEI(1) VID(12)
  Be16 ether_type;  // inner EtherType
};
static_assert(sizeof(VlanTag) == 4);

}  // namespace droce::wire
