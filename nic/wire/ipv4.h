// IPv4 header (RFC 791) and IPv6 fixed header (RFC 8200) as RoCEv2 uses them.
#pragma once

#include <cstdint>

#include "nic/base/endian.h"

namespace droce::wire {

inline constexpr uint8_t kIpProtoUdp = 17;

struct Ipv4Hdr {
  uint8_t version_ihl;  // version(4) = 4, IHL(4) in 32-bit words
  uint8_t tos;          // DSCP(6) ECN(2); ICRC-masked
  Be16 total_length;    // header + payload, bytes
  Be16 id;              // identification
  Be16 frag;            // flags(3) DF=0x4000 MF=0x2000, fragment offset(13)
  uint8_t ttl;          // ICRC-masked
  uint8_t protocol;     // 17 = UDP
  Be16 checksum;        // header checksum; ICRC-masked
  Be32 src;             // source address
  Be32 dst;             // destination address

  uint8_t version() const { return version_ihl >> 4; }
  uint8_t ihl_bytes() const { return uint8_t((version_ihl & 0x0F) * 4); }
};
static_assert(sizeof(Ipv4Hdr) == 20);

inline constexpr uint16_t kIpv4FlagDf = 0x4000;
inline constexpr uint16_t kIpv4FlagMf = 0x2000;
inline constexpr uint16_t kIpv4FragOffsetMask = 0x1FFF;

struct Ipv6Hdr {
  Be32 ver_tc_flow;    // version(4) = 6, traffic class(8), flow label(20); TC+flow ICRC-masked
  Be16 payload_length; // bytes after this header
  uint8_t next_header; // 17 = UDP
  uint8_t hop_limit;   // ICRC-masked
  uint8_t src[16];     // source address
  uint8_t dst[16];     // destination address
};
static_assert(sizeof(Ipv6Hdr) == 40);

// RFC 1071 checksum of an IPv4 header (checksum field included as stored).
uint16_t ipv4_checksum(const Ipv4Hdr& h);
// True when the header of ihl bytes (options included) sums to 0xFFFF, its
// checksum field as received.
bool ipv4_header_valid(const uint8_t* h, size_t ihl);

}  // namespace droce::wire
