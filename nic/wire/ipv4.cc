// IPv4 header checksum (RFC 791 / RFC 1071) for the fixed 20-byte header RoCEv2 uses.
#include "nic/wire/ipv4.h"

namespace droce::wire {

uint16_t ipv4_checksum(const Ipv4Hdr& h) {
  // One's-complement sum of the ten 16-bit words of the fixed header. Options
  // (IHL > 5) are never written by droce and are outside this struct.
  const auto* p = reinterpret_cast<const uint8_t*>(&h);
  uint32_t sum = 0;
  for (size_t i = 0; i < sizeof(Ipv4Hdr); i += 2) sum += uint32_t(p[i]) << 8 | p[i + 1];
  while (sum >> 16) sum = (sum & 0xFFFF) + (sum >> 16);
  return uint16_t(~sum);
}

bool ipv4_header_valid(const uint8_t* h, size_t ihl) {
  uint32_t sum = 0;
  for (size_t i = 0; i + 1 < ihl; i += 2) sum += uint32_t(h[i]) << 8 | h[i + 1];
  while (sum >> 16) sum = (sum & 0xFFFF) + (sum >> 16);
  return sum == 0xFFFF;
}

}  // namespace droce::wire
