// Building RoCEv2 frames: Ethernet / IPv4 / UDP / BTH / extension headers,
// then the caller's payload, then pad and ICRC (IBTA vol. 1 ch. 9, annex A17).
#pragma once

#include <cstddef>
#include <cstdint>

#include "nic/wire/eth.h"
#include "nic/wire/opcodes.h"

namespace droce::wire {

// Everything needed to write the headers of one packet. Only the extension
// headers the opcode's table entry names are written.
struct PacketSpec {
  // The fields every packet of one QP to one peer shares come first, without
  // padding: HeaderTemplate compares these kFixedBytes as a block.
  MacAddr src_mac{};
  MacAddr dst_mac{};
  uint16_t vlan_tci = 0;
  uint16_t udp_src_port = 0xC000;
  uint32_t src_ip = 0;  // IPv4, host byte order
  uint32_t dst_ip = 0;
  uint32_t dest_qp = 0;
  uint16_t pkey = 0xFFFF;
  uint8_t tos = 0;
  uint8_t ttl = 64;
  uint8_t becn_fecn = 0;  // BTH byte 4 (FECN/BECN)
  bool vlan = false;
  static constexpr size_t kFixedBytes = 34;
  // Per packet
  uint16_t ip_id = 0;
  // BTH
  uint8_t opcode = 0;
  bool se = false;
  bool migreq = false;
  bool ackreq = false;
  uint32_t psn = 0;
  // Extension headers
  uint64_t reth_va = 0;
  uint32_t reth_rkey = 0;
  uint32_t reth_len = 0;
  uint8_t aeth_syndrome = 0;
  uint32_t aeth_msn = 0;
  uint64_t atomic_va = 0;
  uint32_t atomic_rkey = 0;
  uint64_t atomic_swap_add = 0;
  uint64_t atomic_compare = 0;
  uint64_t atomic_ack_orig = 0;
  uint32_t imm_raw = 0;  // immediate data, network order as stored
  uint32_t ieth_rkey = 0;
  uint32_t deth_qkey = 0;
  uint32_t deth_src_qp = 0;
  uint8_t feth_placement = 0;    // FLUSH: placement type bits (kFlushGlobal...)
  uint8_t feth_selectivity = 0;  // FLUSH: kFlushRange or kFlushMr
  // Payload
  uint32_t payload_len = 0;
};
static_assert(offsetof(PacketSpec, vlan) + 1 == PacketSpec::kFixedBytes &&
                  offsetof(PacketSpec, ip_id) == PacketSpec::kFixedBytes,
              "PacketSpec's fixed fields are one block without padding");

// Bytes from the start of the frame to the first payload byte.
size_t header_len(const PacketSpec& s);
// Total frame bytes: headers + payload + pad + ICRC.
size_t frame_len(const PacketSpec& s);
inline uint8_t pad_for(uint32_t payload_len) { return uint8_t((-payload_len) & 3u); }

// Writes all headers into buf (cap bytes available) and returns the offset of
// the payload, or 0 when the frame would not fit or the opcode is invalid.
// The IPv4 checksum is computed; the ICRC is not (call finish_frame after the
// payload is in place).
size_t write_headers(uint8_t* buf, size_t cap, const PacketSpec& s);
// The same for a frame whose payload, pad and ICRC are in other buffers (a
// chained frame): cap need only hold the headers.
size_t write_headers_only(uint8_t* buf, size_t cap, const PacketSpec& s);

// Zeroes the pad bytes after the payload and writes the ICRC. `buf` holds the
// headers written by write_headers and the payload.
void finish_frame(uint8_t* buf, const PacketSpec& s);

// A per-QP header template (issue 12 section 3): the first 64 bytes of a
// frame (Ethernet [802.1Q], IPv4, UDP, BTH) as they are for every packet to
// one destination, kept with the fields they were made from. write_headers
// with a template copies those 64 bytes and writes only what changes per
// packet: IPv4 total length, id and checksum (from a sum of the fixed words
// kept beside), UDP length, BTH opcode, SE/MigReq/pad, AckReq and PSN, and the
// extension headers. The output is byte for byte write_headers' own. When the
// spec's fixed fields (PacketSpec's first kFixedBytes) differ from the
// template's (a new peer MAC, modify_qp), the template is made again from the
// spec first, so no invalidation is needed.
struct HeaderTemplate {
  static constexpr size_t kBytes = 64;
  alignas(64) uint8_t bytes[kBytes]{};
  alignas(8) uint8_t key[40]{};  // PacketSpec's first kFixedBytes when made
  uint32_t ip_sum = 0;  // RFC 1071 sum of the IPv4 words that do not change
  bool valid = false;
  uint32_t rebuilds = 0;  // times the template was made (a counter for tests)
};

// write_headers / write_headers_only through a template (nullptr: without).
// Same results and refusals as the plain functions; a cap under 64 bytes is
// written without the template.
size_t write_headers(uint8_t* buf, size_t cap, const PacketSpec& s, HeaderTemplate* t);
size_t write_headers_only(uint8_t* buf, size_t cap, const PacketSpec& s, HeaderTemplate* t);

// finish_frame in two steps, for a sender that writes the ICRC later (the
// engine's transmit batch): zero the pad, then, from the frame alone (its
// length and whether it has an 802.1Q tag), write the ICRC.
void zero_pad(uint8_t* buf, const PacketSpec& s);
void write_frame_icrc(uint8_t* frame, size_t frame_len);

// write_headers + copy payload (zeroes when payload is nullptr) + finish_frame.
// Returns the frame length, or 0 for an invalid opcode, payload on an opcode
// that carries none, an IP length over 65535, or a frame longer than cap.
size_t build_frame(uint8_t* buf, size_t cap, const PacketSpec& s, const void* payload);

}  // namespace droce::wire
