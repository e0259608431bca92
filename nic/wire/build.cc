// RoCEv2 frame builder (IBTA vol. 1 ch. 9, annex A17): Ethernet [802.1Q] / IPv4 / UDP 4791 /
// BTH / extension headers from the opcode table / payload / pad / ICRC.
#include <cstring>

#include "nic/wire/bth.h"
#include "nic/wire/builder.h"
#include "nic/wire/icrc.h"
#include "nic/wire/ipv4.h"
#include "nic/wire/udp.h"

namespace droce::wire {
namespace {

constexpr size_t kIcrcLen = 4;
constexpr uint32_t kMaxIpTotal = 0xFFFF;

inline size_t l2_len(const PacketSpec& s) {
  return sizeof(EthHdr) + (s.vlan ? sizeof(VlanTag) : 0);
}

// Bytes from the IP header to the end of the ICRC.
inline size_t ip_total(const PacketSpec& s) {
  return sizeof(Ipv4Hdr) + sizeof(UdpHdr) + sizeof(Bth) + opcode_info(s.opcode).ext_len +
         size_t(s.payload_len) + pad_for(s.payload_len) + kIcrcLen;
}

template <typename H>
H& at(uint8_t* p) {
  return *reinterpret_cast<H*>(p);
}

}  // namespace

size_t header_len(const PacketSpec& s) {
  return l2_len(s) + sizeof(Ipv4Hdr) + sizeof(UdpHdr) + sizeof(Bth) + opcode_info(s.opcode).ext_len;
}

size_t frame_len(const PacketSpec& s) { return l2_len(s) + ip_total(s); }

namespace {

// Ethernet [802.1Q] with EtherType IPv4; returns the next byte.
uint8_t* write_l2(uint8_t* p, const PacketSpec& s) {
  auto& eth = at<EthHdr>(p);
  eth.dst = s.dst_mac;
  eth.src = s.src_mac;
  p += sizeof(EthHdr);
  if (s.vlan) {
    eth.ether_type = Be16(kEtherTypeVlan);
    auto& tag = at<VlanTag>(p);
    tag.tci = Be16(s.vlan_tci);
    tag.ether_type = Be16(kEtherTypeIpv4);
    p += sizeof(VlanTag);
  } else {
    eth.ether_type = Be16(kEtherTypeIpv4);
  }
  return p;
}

// IPv4 (no options, DF) and UDP to port 4791 (RoCEv2 annex A17.4); total is
// the IP total length. Returns the next byte.
uint8_t* write_ipv4_udp(uint8_t* p, const PacketSpec& s, size_t total) {
  auto& ip = at<Ipv4Hdr>(p);
  ip.version_ihl = 0x45;
  ip.tos = s.tos;
  ip.total_length = Be16(uint16_t(total));
  ip.id = Be16(s.ip_id);
  ip.frag = Be16(kIpv4FlagDf);
  ip.ttl = s.ttl;
  ip.protocol = kIpProtoUdp;
  ip.src = Be32(s.src_ip);
  ip.dst = Be32(s.dst_ip);
  // RFC 1071 sum of the ten 16-bit words, taken from the values rather than
  // read back from the header just stored (same result as ipv4_checksum).
  uint32_t sum = (uint32_t(0x45) << 8 | s.tos) + uint32_t(total) + s.ip_id + kIpv4FlagDf +
                 (uint32_t(s.ttl) << 8 | kIpProtoUdp) + (s.src_ip >> 16) + (s.src_ip & 0xFFFF) +
                 (s.dst_ip >> 16) + (s.dst_ip & 0xFFFF);
  sum = (sum & 0xFFFF) + (sum >> 16);
  sum = (sum & 0xFFFF) + (sum >> 16);
  ip.checksum = Be16(uint16_t(~sum));
  p += sizeof(Ipv4Hdr);

  auto& udp = at<UdpHdr>(p);
  udp.src_port = Be16(s.udp_src_port);
  udp.dst_port = Be16(kRoceV2Port);
  udp.length = Be16(uint16_t(total - sizeof(Ipv4Hdr)));
  udp.checksum = Be16(0);  // RoCEv2 leaves the UDP checksum unused
  return p + sizeof(UdpHdr);
}

// The BTH (IBTA 9.2) and the extended headers the opcode table lists for
// the opcode, each at its offset; returns the next byte (the payload).
uint8_t* write_transport(uint8_t* p, const PacketSpec& s, const OpcodeInfo& op, uint8_t pad) {
  auto& bth = at<Bth>(p);
  bth.opcode = s.opcode;
  bth.set_flags(s.se, s.migreq, pad);  // TVer 0
  bth.pkey = Be16(s.pkey);
  bth.fecn_dqpn = Be32(uint32_t(s.becn_fecn) << 24 | (s.dest_qp & kMask24));
  bth.ackreq_psn = Be32((s.ackreq ? uint32_t(Bth::kAckReq) << 24 : 0) | (s.psn & kMask24));
  uint8_t* ext = p + sizeof(Bth);
  if (op.has(kOpDeth)) {
    auto& d = at<Deth>(ext + op.deth_off);
    d.qkey = Be32(s.deth_qkey);
    d.set_src_qp(s.deth_src_qp);
  }
  if (op.has(kOpFeth)) at<Feth>(ext + op.feth_off).set(s.feth_placement, s.feth_selectivity);
  if (op.has(kOpReth)) {
    auto& r = at<Reth>(ext + op.reth_off);
    r.va = Be64(s.reth_va);
    r.rkey = Be32(s.reth_rkey);
    r.dma_length = Be32(s.reth_len);
  }
  if (op.has(kOpAeth)) at<Aeth>(ext + op.aeth_off).set(s.aeth_syndrome, s.aeth_msn);
  if (op.has(kOpAtomicEth)) {
    auto& a = at<AtomicEth>(ext + op.atomic_eth_off);
    a.va = Be64(s.atomic_va);
    a.rkey = Be32(s.atomic_rkey);
    a.swap_add = Be64(s.atomic_swap_add);
    a.compare = Be64(s.atomic_compare);
  }
  if (op.has(kOpAtomicAck))
    at<AtomicAckEth>(ext + op.atomic_ack_off).orig = Be64(s.atomic_ack_orig);
  if (op.has(kOpImm)) at<ImmDt>(ext + op.imm_off).imm.set_raw(s.imm_raw);
  if (op.has(kOpIeth)) at<Ieth>(ext + op.ieth_off).rkey = Be32(s.ieth_rkey);
  if (op.has(kOpCnpBody)) std::memset(ext + op.ext_len - sizeof(CnpBody), 0, sizeof(CnpBody));
  return ext + op.ext_len;
}

}  // namespace

namespace {
size_t write_headers_within(uint8_t* buf, size_t cap, size_t need, const PacketSpec& s) {
  const OpcodeInfo& op = opcode_info(s.opcode);
  if (!op.valid()) return 0;
  if (s.payload_len != 0 && !op.has(kOpPayload)) return 0;
  if (ip_total(s) > kMaxIpTotal || need > cap) return 0;
  const size_t total = ip_total(s);
  uint8_t* p = write_l2(buf, s);
  p = write_ipv4_udp(p, s, total);
  p = write_transport(p, s, op, pad_for(s.payload_len));
  return size_t(p - buf);
}
}  // namespace

size_t write_headers(uint8_t* buf, size_t cap, const PacketSpec& s) {
  return write_headers_within(buf, cap, frame_len(s), s);
}

size_t write_headers_only(uint8_t* buf, size_t cap, const PacketSpec& s) {
  return write_headers_within(buf, cap, header_len(s), s);
}

void zero_pad(uint8_t* buf, const PacketSpec& s) {
  std::memset(buf + header_len(s) + s.payload_len, 0, pad_for(s.payload_len));
}

void write_frame_icrc(uint8_t* frame, size_t frame_len) {
  const bool tagged = frame[12] == (kEtherTypeVlan >> 8) && frame[13] == (kEtherTypeVlan & 0xFF);
  const size_t l2 = sizeof(EthHdr) + (tagged ? sizeof(VlanTag) : 0);
  icrc_write(frame + l2, frame_len - l2 - kIcrcLen, /*ipv6=*/false);
}

void finish_frame(uint8_t* buf, const PacketSpec& s) {
  zero_pad(buf, s);
  write_frame_icrc(buf, frame_len(s));
}

size_t build_frame(uint8_t* buf, size_t cap, const PacketSpec& s, const void* payload) {
  const size_t off = write_headers(buf, cap, s);
  if (off == 0) return 0;
  if (s.payload_len != 0) {
    if (payload != nullptr) {
      std::memcpy(buf + off, payload, s.payload_len);
    } else {
      std::memset(buf + off, 0, s.payload_len);
    }
  }
  finish_frame(buf, s);
  return frame_len(s);
}

}  // namespace droce::wire
