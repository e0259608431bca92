// RoCEv2 ICRC (IBTA annex A17.3.3): one ISA-L crc32_gzip_refl-family call per
// frame, starting from the state after 8 bytes of 0xFF, with the variant fields
// masked in place and restored afterwards.
#include "nic/wire/icrc.h"

#include <isa-l/crc.h>

#include <cstring>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

#include "nic/wire/bth.h"
#include "nic/wire/ipv4.h"
#include "nic/wire/udp.h"

// ISA-L's PCLMUL (SSE) variant, which its dispatcher picks on CPUs without
// AVX-512; exported by libisal but not declared in its header. Weak, so a
// libisal without it leaves it null and the byte path is used.
extern "C" uint32_t crc32_gzip_refl_by8(uint32_t, const unsigned char*, uint64_t)
    __attribute__((weak));

namespace droce::wire {
namespace {

// Offsets (from the IP header) of the variant bytes.
constexpr size_t kV4Tos = 1, kV4Ttl = 8, kV4Csum = 10;
constexpr size_t kV6Hop = 7;
constexpr size_t kUdpCsum = 6;   // within the UDP header
constexpr size_t kBthByte4 = 4;  // within the BTH

// How the one CRC call is made fast (measured with bench_wire: BM_Icrc against
// BM_Icrc_Bytes, BM_Icrc_Xmm and the bare BM_IsalCrc). Two effects dominate:
//  - a CRC load that overlaps the narrow stores that just masked the header
//    cannot take its data from them and stalls until they commit (~10 ns here);
//    a load fully inside one earlier, wider store does not stall;
//  - ISA-L's AVX-512 variant leaves the upper vector state dirty, and the
//    caller's next legacy-SSE code pays for it unless vzeroupper follows.
// So the first 64 bytes (which hold every variant field, IPv4 or IPv6) are
// masked with stores shaped like the loads of the variant ISA-L runs:
//  - AVX-512 + VPCLMULQDQ (ISA-L runs by16_10, 64-byte loads): one 64-byte
//    store; frames under 64 bytes are masked into a 64-byte stack copy instead,
//    so the frame is not written at all (ISA-L's short-buffer code still
//    stalls on the fresh copy, whatever the shape of the stores);
//  - PCLMUL only (ISA-L runs by8, 16-byte loads): 16-byte stores;
//  - otherwise, or for IPv4 with options: byte stores.
using Path = IcrcPath;

Path detect_path() {
#if defined(__x86_64__)
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
      __builtin_cpu_supports("vpclmulqdq")) {
    return Path::kZmm;
  }
  if (crc32_gzip_refl_by8 != nullptr && __builtin_cpu_supports("pclmul") &&
      __builtin_cpu_supports("sse4.1")) {
    return Path::kXmm;
  }
#endif
  return Path::kBytes;
}

// Dynamic initialisation: a call before it (from another static initialiser)
// sees kAuto (0) and takes the byte path, which is slower but gives the same CRC.
const Path kPath = detect_path();

// 0xFF (IPv6 byte 0: 0x0F) at every variant byte of the first 64 bytes.
struct Masks {
  alignas(64) uint8_t v4[64];
  alignas(64) uint8_t v6[64];
};
constexpr Masks make_masks() {
  Masks m{};
  constexpr size_t v4_udp = sizeof(Ipv4Hdr), v6_udp = sizeof(Ipv6Hdr);
  m.v4[kV4Tos] = m.v4[kV4Ttl] = m.v4[kV4Csum] = m.v4[kV4Csum + 1] = 0xFF;
  m.v4[v4_udp + kUdpCsum] = m.v4[v4_udp + kUdpCsum + 1] = 0xFF;
  m.v4[v4_udp + sizeof(UdpHdr) + kBthByte4] = 0xFF;
  m.v6[0] = 0x0F;                      // traffic class (low nibble of byte 0) ...
  m.v6[1] = m.v6[2] = m.v6[3] = 0xFF;  // ... and flow label
  m.v6[kV6Hop] = 0xFF;
  m.v6[v6_udp + kUdpCsum] = m.v6[v6_udp + kUdpCsum + 1] = 0xFF;
  m.v6[v6_udp + sizeof(UdpHdr) + kBthByte4] = 0xFF;
  return m;
}
constexpr Masks kMasks = make_masks();
static_assert(sizeof(Ipv6Hdr) + sizeof(UdpHdr) + kBthByte4 < 64);

inline void zeroupper() {
#if defined(__x86_64__)
  asm volatile("vzeroupper" ::: "memory");
#endif
}

// Byte-wise masking: any layout (IPv4 with options too), any CPU.
uint32_t icrc_bytes(uint8_t* l3, size_t len, bool ipv6) {
  const size_t udp = ipv6 ? sizeof(Ipv6Hdr) : size_t(l3[0] & 0x0F) * 4;
  const size_t bth = udp + sizeof(UdpHdr);
  uint8_t ip[4], ttl_hop, udp_csum[2], bth4;
  if (ipv6) {
    std::memcpy(ip, l3, 4);
    ttl_hop = l3[kV6Hop];
    l3[0] |= 0x0F;  // traffic class and flow label all ones, version kept
    l3[1] = l3[2] = l3[3] = 0xFF;
    l3[kV6Hop] = 0xFF;
  } else {
    ip[0] = l3[kV4Tos];
    ip[1] = l3[kV4Csum];
    ip[2] = l3[kV4Csum + 1];
    ttl_hop = l3[kV4Ttl];
    l3[kV4Tos] = l3[kV4Ttl] = l3[kV4Csum] = l3[kV4Csum + 1] = 0xFF;
  }
  std::memcpy(udp_csum, l3 + udp + kUdpCsum, 2);
  l3[udp + kUdpCsum] = l3[udp + kUdpCsum + 1] = 0xFF;
  bth4 = l3[bth + kBthByte4];
  l3[bth + kBthByte4] = 0xFF;

  const uint32_t crc = crc32_gzip_refl(kIcrcSeed, l3, len);
  if (kPath == Path::kZmm) zeroupper();  // ISA-L ran its AVX-512 variant

  if (ipv6) {
    std::memcpy(l3, ip, 4);
    l3[kV6Hop] = ttl_hop;
  } else {
    l3[kV4Tos] = ip[0];
    l3[kV4Csum] = ip[1];
    l3[kV4Csum + 1] = ip[2];
    l3[kV4Ttl] = ttl_hop;
  }
  std::memcpy(l3 + udp + kUdpCsum, udp_csum, 2);
  l3[bth + kBthByte4] = bth4;
  return crc;
}

#if defined(__x86_64__)
// PCLMUL machines, len >= 64: 16-byte masked stores at 0, 16, 32 (and 48 for
// IPv6). Unrolled so the saved blocks stay in registers (a loop became rep movsq).
template <int kBlocks>
uint32_t icrc_xmm(uint8_t* l3, size_t len, const uint8_t* mask) {
  static_assert(kBlocks == 3 || kBlocks == 4);
  auto* v = reinterpret_cast<__m128i*>(l3);
  const auto* m = reinterpret_cast<const __m128i*>(mask);
  const __m128i a = _mm_loadu_si128(v), b = _mm_loadu_si128(v + 1), c = _mm_loadu_si128(v + 2);
  __m128i d = _mm_setzero_si128();
  _mm_storeu_si128(v, _mm_or_si128(a, _mm_load_si128(m)));
  _mm_storeu_si128(v + 1, _mm_or_si128(b, _mm_load_si128(m + 1)));
  _mm_storeu_si128(v + 2, _mm_or_si128(c, _mm_load_si128(m + 2)));
  if constexpr (kBlocks == 4) {
    d = _mm_loadu_si128(v + 3);
    _mm_storeu_si128(v + 3, _mm_or_si128(d, _mm_load_si128(m + 3)));
  }
  const uint32_t crc = crc32_gzip_refl_by8(kIcrcSeed, l3, len);
  _mm_storeu_si128(v, a);
  _mm_storeu_si128(v + 1, b);
  _mm_storeu_si128(v + 2, c);
  if constexpr (kBlocks == 4) _mm_storeu_si128(v + 3, d);
  return crc;
}

// AVX-512 machines, len >= 64: one 64-byte masked store, restored afterwards.
__attribute__((target("avx512f,avx512bw"))) uint32_t icrc_zmm(uint8_t* l3, size_t len,
                                                              const uint8_t* mask) {
  const __m512i saved = _mm512_loadu_si512(l3);
  _mm512_storeu_si512(l3, _mm512_or_si512(saved, _mm512_load_si512(mask)));
  const uint32_t crc = crc32_gzip_refl(kIcrcSeed, l3, len);
  _mm512_storeu_si512(l3, saved);
  zeroupper();
  return crc;
}

// AVX-512 machines, len < 64: a masked copy on the stack; the frame is only read.
__attribute__((target("avx512f,avx512bw"))) uint32_t icrc_zmm_copy(const uint8_t* l3, size_t len,
                                                                   const uint8_t* mask) {
  alignas(64) uint8_t copy[64];
  const __mmask64 k = (__mmask64(1) << len) - 1;        // len < 64
  const __m512i data = _mm512_maskz_loadu_epi8(k, l3);  // bytes past len are not read
  _mm512_store_si512(copy, _mm512_or_si512(data, _mm512_load_si512(mask)));
  const uint32_t crc = crc32_gzip_refl(kIcrcSeed, copy, len);
  zeroupper();
  return crc;
}
#endif

}  // namespace

bool icrc_path_supported(IcrcPath p) {
  switch (p) {
    case Path::kAuto:
    case Path::kBytes:
      return true;
    case Path::kXmm:
      return kPath == Path::kXmm || (kPath == Path::kZmm && crc32_gzip_refl_by8 != nullptr);
    case Path::kZmm:
      return kPath == Path::kZmm;
  }
  return false;
}

uint32_t icrc_compute_with(IcrcPath path, uint8_t* l3, size_t len, bool ipv6) {
  if (path == Path::kAuto || !icrc_path_supported(path)) path = kPath;
  const size_t hdrs =
      (ipv6 ? sizeof(Ipv6Hdr) : size_t(l3[0] & 0x0F) * 4) + sizeof(UdpHdr) + sizeof(Bth);
  // Callers (parser, builder) guarantee len covers IP + UDP + BTH; without that
  // nothing is masked, so a wrong caller still touches no byte past len.
  if (len < hdrs) return crc32_gzip_refl(kIcrcSeed, l3, len);
#if defined(__x86_64__)
  // The fixed layouts: IPv6, or IPv4 without options (IHL 5).
  if (ipv6 || l3[0] == 0x45) {
    const uint8_t* mask = ipv6 ? kMasks.v6 : kMasks.v4;
    if (path == Path::kZmm)
      return len >= 64 ? icrc_zmm(l3, len, mask) : icrc_zmm_copy(l3, len, mask);
    if (path == Path::kXmm && len >= 64) {
      return ipv6 ? icrc_xmm<4>(l3, len, mask) : icrc_xmm<3>(l3, len, mask);
    }
  }
#endif
  return icrc_bytes(l3, len, ipv6);
}

uint32_t icrc_compute(uint8_t* l3, size_t len, bool ipv6) {
  return icrc_compute_with(kPath, l3, len, ipv6);
}

uint32_t icrc_compute_chain(uint8_t* l3, size_t head_len, const IcrcPiece* rest, size_t n,
                            bool ipv6) {
  uint32_t crc = icrc_compute(l3, head_len, ipv6);
  // crc32_gzip_refl takes the previous result as its initial value.
  for (size_t i = 0; i < n; ++i) {
    if (rest[i].len != 0) crc = crc32_gzip_refl(crc, rest[i].p, rest[i].len);
  }
  if (kPath == Path::kZmm && n != 0) zeroupper();
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
  const uint32_t wire =
      uint32_t(p[0]) | uint32_t(p[1]) << 8 | uint32_t(p[2]) << 16 | uint32_t(p[3]) << 24;
  return icrc_compute(l3, len, ipv6) == wire;
}

}  // namespace droce::wire
