// rdma_cm IP header and service IDs (Linux cma.c cma_format_hdr,
// cma_save_ip4_info; rdma_cma.h RDMA_IB_IP_PS_*).
#include "nic/cm/ip_hdr.h"

#include <cstring>

#include "nic/cm/bytes.h"

namespace droce::cm {

using namespace detail;

std::optional<ServiceId> split_service_id(uint64_t sid) {
  if ((sid >> 32) != 0) return std::nullopt;
  const uint16_t ps = uint16_t(sid >> 16);
  if (ps != kPsTcp && ps != kPsUdp && ps != kPsIb && ps != kPsIpoib) return std::nullopt;
  return ServiceId{ps, uint16_t(sid)};
}

uint32_t IpHdr::src_ipv4() const { return get_be32(src.data() + 12); }
uint32_t IpHdr::dst_ipv4() const { return get_be32(dst.data() + 12); }

void IpHdr::set_ipv4(uint32_t src_ip, uint32_t dst_ip) {
  ip_version = 4;
  src.fill(0);
  dst.fill(0);
  put_be32(src.data() + 12, src_ip);
  put_be32(dst.data() + 12, dst_ip);
}

const char* ip_hdr_error_name(IpHdrError e) {
  switch (e) {
    case IpHdrError::kOk: return "ok";
    case IpHdrError::kTruncated: return "truncated";
    case IpHdrError::kVersion: return "cma_version";
    case IpHdrError::kIpVersion: return "ip_version";
  }
  return "unknown";
}

IpHdrError decode_ip_hdr(std::span<const uint8_t> pd, IpHdr* out) {
  if (pd.size() < kIpHdrLen) return IpHdrError::kTruncated;
  const uint8_t* p = pd.data();
  out->cma_version = p[0];
  out->ip_version = uint8_t(p[1] >> 4);
  out->port = get_be16(p + 2);
  std::memcpy(out->src.data(), p + 4, 16);
  std::memcpy(out->dst.data(), p + 20, 16);
  if (out->cma_version != kCmaVersion) return IpHdrError::kVersion;
  if (out->ip_version != 4 && out->ip_version != 6) return IpHdrError::kIpVersion;
  return IpHdrError::kOk;
}

void encode_ip_hdr(const IpHdr& h, std::span<uint8_t, kIpHdrLen> out) {
  uint8_t* p = out.data();
  p[0] = h.cma_version;
  p[1] = uint8_t((h.ip_version & 0x0F) << 4);
  put_be16(p + 2, h.port);
  std::memcpy(p + 4, h.src.data(), 16);
  std::memcpy(p + 20, h.dst.data(), 16);
}

}  // namespace droce::cm
