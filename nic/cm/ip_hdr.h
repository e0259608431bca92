// rdma_cm's IP addressing on top of the CM: service IDs per port space and
// the 36-byte header at the start of REQ and SIDR_REQ private data
// (Linux drivers/infiniband/core/cma.c struct cma_hdr, rdma_get_service_id;
// IBTA vol. 1 annex A11, "RDMA IP CM Service").
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>

namespace droce::cm {

// Port spaces (rdma_cma.h enum rdma_port_space).
inline constexpr uint16_t kPsIpoib = 0x0002;
inline constexpr uint16_t kPsTcp = 0x0106;
inline constexpr uint16_t kPsUdp = 0x0111;
inline constexpr uint16_t kPsIb = 0x013F;

// Service ID = (port space << 16) + port (RDMA_IB_IP_PS_TCP ... in rdma_cma.h).
inline constexpr uint64_t service_id(uint16_t ps, uint16_t port) { return uint64_t(ps) << 16 | port; }

struct ServiceId {
  uint16_t ps = 0;
  uint16_t port = 0;
};
// The port space and port of an IP-based service ID; nullopt when the top 32
// bits are not zero or the port space is not TCP, UDP, IB or IPoIB.
std::optional<ServiceId> split_service_id(uint64_t sid);

inline constexpr size_t kIpHdrLen = 36;
inline constexpr uint8_t kCmaVersion = 0x00;
// User private data after the header: REQ 92 - 36, SIDR_REQ 216 - 36.
inline constexpr size_t kReqUserPrivateLen = 56;
inline constexpr size_t kSidrReqUserPrivateLen = 180;

struct IpHdr {
  uint8_t cma_version = kCmaVersion;
  uint8_t ip_version = 4;  // high nibble of byte 1: 4 or 6
  uint16_t port = 0;       // the active side's source port
  // 16-byte address fields as on the wire; IPv4 sits in bytes 12..15
  // (union cma_ip_addr: three zero words, then the address).
  std::array<uint8_t, 16> src{};
  std::array<uint8_t, 16> dst{};

  uint32_t src_ipv4() const;  // host order
  uint32_t dst_ipv4() const;
  void set_ipv4(uint32_t src_ip, uint32_t dst_ip);  // host order; zero pads
  friend bool operator==(const IpHdr&, const IpHdr&) = default;
};

enum class IpHdrError : uint8_t {
  kOk = 0,
  kTruncated,   // fewer than kIpHdrLen bytes
  kVersion,     // cma_version is not 0 (cma.c: -EINVAL)
  kIpVersion,   // neither 4 nor 6 in the high nibble
};
const char* ip_hdr_error_name(IpHdrError e);

// Reads the header from the first bytes of REQ or SIDR_REQ private data.
// The low nibble of byte 1 is not kept (cma.c ignores it; encode writes 0).
IpHdrError decode_ip_hdr(std::span<const uint8_t> private_data, IpHdr* out);
void encode_ip_hdr(const IpHdr& h, std::span<uint8_t, kIpHdrLen> out);

}  // namespace droce::cm
