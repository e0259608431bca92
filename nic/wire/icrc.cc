// RoCEv2 ICRC (IBTA annex A17.3.3): one ISA-L crc32_gzip_refl call per frame,
// starting from the state after 8 bytes of 0xFF, with variant fields masked in place.
#include "nic/wire/icrc.h"

#include <isa-l/crc.h>

#include <cstring>

#include "nic/wire/bth.h"
#include "nic/wire/ipv4.h"
#include "nic/wire/udp.h"

namespace droce::wire {
namespace {

// Offsets (from the IP header) of the variant bytes, for one IP version.
constexpr size_t kV4Tos = 1, kV4Ttl = 8, kV4Csum = 10;
constexpr size_t kV6Hop = 7;
constexpr size_t kUdpCsum = 6;  // within the UDP header
constexpr size_t kBthByte4 = 4;  // within the BTH

// Saved variant bytes so the frame can be restored after the CRC.
struct Saved {
  uint8_t ip[4];
  uint8_t ttl_or_hop;
  uint8_t udp_csum[2];
  uint8_t bth4;
};

// Where UDP starts: after the IPv4 header (its IHL) or the fixed IPv6 header.
inline size_t l4_offset(const uint8_t* l3, bool ipv6) {
  return ipv6 ? sizeof(Ipv6Hdr) : size_t(l3[0] & 0x0F) * 4;
}

}  // namespace

uint32_t icrc_compute(uint8_t* l3, size_t len, bool ipv6) {
  // Callers (parser, builder) guarantee len covers IP + UDP + BTH; the guards
  // below keep a wrong caller from touching bytes beyond `len` all the same.
  const size_t udp = l4_offset(l3, ipv6);
  const size_t bth = udp + sizeof(UdpHdr);
  const bool whole = len >= bth + sizeof(Bth);
  Saved s{};
  if (whole) {
    if (ipv6) {
      std::memcpy(s.ip, l3, 4);
      s.ttl_or_hop = l3[kV6Hop];
      l3[0] |= 0x0F;  // traffic class and flow label all ones, version kept
      l3[1] = l3[2] = l3[3] = 0xFF;
      l3[kV6Hop] = 0xFF;
    } else {
      s.ip[0] = l3[kV4Tos];
      s.ip[1] = l3[kV4Csum];
      s.ip[2] = l3[kV4Csum + 1];
      s.ttl_or_hop = l3[kV4Ttl];
      l3[kV4Tos] = 0xFF;
      l3[kV4Ttl] = 0xFF;
      l3[kV4Csum] = l3[kV4Csum + 1] = 0xFF;
    }
    std::memcpy(s.udp_csum, l3 + udp + kUdpCsum, 2);
    l3[udp + kUdpCsum] = l3[udp + kUdpCsum + 1] = 0xFF;
    s.bth4 = l3[bth + kBthByte4];
    l3[bth + kBthByte4] = 0xFF;
  }

  const uint32_t crc = crc32_gzip_refl(kIcrcSeed, l3, len);

  if (whole) {
    if (ipv6) {
      std::memcpy(l3, s.ip, 4);
      l3[kV6Hop] = s.ttl_or_hop;
    } else {
      l3[kV4Tos] = s.ip[0];
      l3[kV4Csum] = s.ip[1];
      l3[kV4Csum + 1] = s.ip[2];
      l3[kV4Ttl] = s.ttl_or_hop;
    }
    std::memcpy(l3 + udp + kUdpCsum, s.udp_csum, 2);
    l3[bth + kBthByte4] = s.bth4;
  }
  return crc;
}

void icrc_write(uint8_t* l3, size_t len, bool ipv6) {
  const uint32_t crc = icrc_compute(l3, len, ipv6);
  uint8_t* p = l3 + len;  // least-significant byte first, like the Ethernet FCS
  p[0] = uint8_t(crc);
  p[1] = uint8_t(crc >> 8);
  p[2] = uint8_t(crc >> 16);
  p[3] = uint8_t(crc >> 24);
}

bool icrc_verify(uint8_t* l3, size_t len, bool ipv6) {
  const uint8_t* p = l3 + len;
  const uint32_t wire = uint32_t(p[0]) | uint32_t(p[1]) << 8 | uint32_t(p[2]) << 16 |
                        uint32_t(p[3]) << 24;
  return icrc_compute(l3, len, ipv6) == wire;
}

}  // namespace droce::wire
