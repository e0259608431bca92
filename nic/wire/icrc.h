// RoCEv2 Invariant CRC (IBTA annex A17.3.3; DESIGN.md section 3): CRC-32 over
// 8 bytes of 0xFF, then the IP header onward with the variant fields (IPv4
// TOS/TTL/checksum or IPv6 TC/flow/hop limit, UDP checksum, BTH byte 4) set
// to all ones, up to the ICRC. One ISA-L call per frame.
#pragma once

#include <cstddef>
#include <cstdint>

namespace droce::wire {

// CRC state (ISA-L crc32_gzip_refl convention) after the 8 bytes of 0xFF.
inline constexpr uint32_t kIcrcSeed = 0x2144DF1C;

// Computes the ICRC of a RoCEv2 packet starting at its IP header `l3`, with
// `len` bytes from the IP header up to (excluding) the ICRC. The variant
// fields are masked in place and restored before returning, so `l3` must be
// writable. `ipv6` selects the IP header layout.
uint32_t icrc_compute(uint8_t* l3, size_t len, bool ipv6);

// Writes the ICRC (least-significant byte first) at l3 + len.
void icrc_write(uint8_t* l3, size_t len, bool ipv6);

// True when the 4 bytes at l3 + len hold the right ICRC.
bool icrc_verify(uint8_t* l3, size_t len, bool ipv6);

// A run of bytes the ICRC continues over (a later segment of a chained frame).
struct IcrcPiece {
  const uint8_t* p;
  size_t len;
};

// The ICRC of a packet whose bytes are not contiguous: `head_len` bytes at
// `l3` (the IP header onward; they must hold the IP, UDP and BTH headers, so
// every variant field is masked there, in place, as icrc_compute does),
// followed by the n pieces in order. ISA-L's CRC is a running CRC, so the
// pieces cost one pass, as one contiguous frame does: this is how the
// transmit ICRC of a frame whose payload is attached from registered memory
// is computed, and how a received chained frame is verified.
uint32_t icrc_compute_chain(uint8_t* l3, size_t head_len, const IcrcPiece* rest, size_t n,
                            bool ipv6);

// How the variant fields are masked around the one ISA-L call (icrc.cc says
// why): icrc_compute uses the best path the CPU supports. The explicit choice
// is for tests and benchmarks, which check and measure every path.
enum class IcrcPath : uint8_t {
  kAuto,   // the best path this CPU supports
  kBytes,  // byte stores, ISA-L's dispatcher (any CPU, any IP header)
  kXmm,    // 16-byte stores, ISA-L's PCLMUL variant (x86-64 with PCLMUL)
  kZmm,    // one 64-byte store or a stack copy, ISA-L's AVX-512 variant
};
bool icrc_path_supported(IcrcPath path);
// icrc_compute through `path` (kAuto's choice when the CPU lacks it).
uint32_t icrc_compute_with(IcrcPath path, uint8_t* l3, size_t len, bool ipv6);

}  // namespace droce::wire
