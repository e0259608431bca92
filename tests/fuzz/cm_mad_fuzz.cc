// libFuzzer target for the CM MAD decoder and rdma_cm's IP header
// (nic/cm/mad.h, nic/cm/ip_hdr.h): decoding never reads outside the bytes it
// is given (an exactly sized heap copy); a MAD that decodes re-encodes to 256
// bytes that decode to the same MAD and encode to the same bytes again.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <span>
#include <variant>

#include "nic/cm/ip_hdr.h"
#include "nic/cm/mad.h"

namespace {

using namespace droce::cm;

volatile uint32_t g_sink;

void check_ip_hdr(std::span<const uint8_t> pd) {
  IpHdr h;
  const IpHdrError e = decode_ip_hdr(pd, &h);
  g_sink = uint32_t(ip_hdr_error_name(e)[0]);
  if (e != IpHdrError::kOk) return;
  uint8_t a[kIpHdrLen];
  encode_ip_hdr(h, a);
  IpHdr h2;
  if (decode_ip_hdr(a, &h2) != IpHdrError::kOk || !(h2 == h)) __builtin_trap();
  g_sink = h.src_ipv4() ^ h.dst_ipv4();
}

void check_mad(std::span<const uint8_t> in) {
  CmMad m;
  const MadError e = decode_cm_mad(in, &m);
  if (uint8_t(e) > uint8_t(MadError::kField)) __builtin_trap();
  g_sink = uint32_t(mad_error_name(e)[0]);
  if (e != MadError::kOk) return;
  if (attr_id_of(m.msg) != m.hdr.attr_id) __builtin_trap();
  g_sink = uint32_t(attr_name(m.hdr.attr_id)[0]);
  std::unique_ptr<uint8_t[]> a(new uint8_t[kMadLen]);
  encode_cm_mad(m, std::span<uint8_t, kMadLen>(a.get(), kMadLen));
  CmMad m2;
  if (decode_cm_mad(std::span<const uint8_t>(a.get(), kMadLen), &m2) != MadError::kOk || !(m2 == m))
    __builtin_trap();
  uint8_t b[kMadLen];
  encode_cm_mad(m2, b);
  if (std::memcmp(a.get(), b, kMadLen) != 0) __builtin_trap();
  if (const Req* req = std::get_if<Req>(&m.msg)) check_ip_hdr(req->private_data);
  if (const SidrReq* sreq = std::get_if<SidrReq>(&m.msg)) check_ip_hdr(sreq->private_data);
}

void check(const uint8_t* data, size_t n) {
  std::unique_ptr<uint8_t[]> copy(new uint8_t[n ? n : 1]);
  if (n) std::memcpy(copy.get(), data, n);
  const std::span<const uint8_t> in(copy.get(), n);
  check_ip_hdr(in);
  MadHdr hdr;
  g_sink = uint32_t(decode_mad_hdr(in, &hdr));
  check_mad(in);
  // The same bytes behind a valid header (class, versions, method) and one of
  // the attributes 0x0010..0x001A, so that every message decoder sees them.
  if (n == 0) return;
  std::unique_ptr<uint8_t[]> mad(new uint8_t[kMadLen]());
  std::memcpy(mad.get(), copy.get(), n < kMadLen ? n : kMadLen);
  const uint16_t attr = uint16_t(kAttrReq + copy[0] % 11);
  mad[0] = kMadBaseVersion;
  mad[1] = kMgmtClassCm;
  mad[2] = kCmClassVersion;
  mad[3] = kMadMethodSend;
  mad[16] = uint8_t(attr >> 8);
  mad[17] = uint8_t(attr);
  check_mad(std::span<const uint8_t>(mad.get(), kMadLen));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  check(data, size);
  return 0;
}
