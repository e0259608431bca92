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

// RFC 1071 sum of the IPv4 header's words that are the same for every
// packet of one destination, taken from the values rather than read back
// from the header (same result as ipv4_checksum).
uint32_t ipv4_fixed_sum(const PacketSpec& s) {
  return (uint32_t(0x45) << 8 | s.tos) + kIpv4FlagDf + (uint32_t(s.ttl) << 8 | kIpProtoUdp) +
         (s.src_ip >> 16) + (s.src_ip & 0xFFFF) + (s.dst_ip >> 16) + (s.dst_ip & 0xFFFF);
}

// Folds a sum of 16-bit words (fewer than 2^16 of them) and complements it.
uint16_t ipv4_sum_finish(uint32_t sum) {
  sum = (sum & 0xFFFF) + (sum >> 16);
  sum = (sum & 0xFFFF) + (sum >> 16);
  return uint16_t(~sum);
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
  ip.checksum = Be16(ipv4_sum_finish(ipv4_fixed_sum(s) + uint32_t(total) + s.ip_id));
  p += sizeof(Ipv4Hdr);

  auto& udp = at<UdpHdr>(p);
  udp.src_port = Be16(s.udp_src_port);
  udp.dst_port = Be16(kRoceV2Port);
  udp.length = Be16(uint16_t(total - sizeof(Ipv4Hdr)));
  udp.checksum = Be16(0);  // RoCEv2 leaves the UDP checksum unused
  return p + sizeof(UdpHdr);
}

// The BTH fields that change per packet (a template holds the others).
void write_bth_variant(Bth& bth, const PacketSpec& s, uint8_t pad) {
  bth.opcode = s.opcode;
  bth.set_flags(s.se, s.migreq, pad);  // TVer 0
  bth.ackreq_psn = Be32((s.ackreq ? uint32_t(Bth::kAckReq) << 24 : 0) | (s.psn & kMask24));
}

void write_bth_fixed(Bth& bth, const PacketSpec& s) {
  bth.pkey = Be16(s.pkey);
  bth.fecn_dqpn = Be32(uint32_t(s.becn_fecn) << 24 | (s.dest_qp & kMask24));
}

uint8_t* write_ext(uint8_t* ext, const PacketSpec& s, const OpcodeInfo& op);

// The BTH (IBTA 9.2) and the extended headers the opcode table lists for
// the opcode; returns the next byte (the payload).
uint8_t* write_transport(uint8_t* p, const PacketSpec& s, const OpcodeInfo& op, uint8_t pad) {
  auto& bth = at<Bth>(p);
  write_bth_variant(bth, s, pad);
  write_bth_fixed(bth, s);
  return write_ext(p + sizeof(Bth), s, op);
}

// The extended headers the opcode table lists, each at its offset; returns
// the next byte (the payload).
uint8_t* write_ext(uint8_t* ext, const PacketSpec& s, const OpcodeInfo& op) {
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

// The spec's fixed fields equal the template's: 34 bytes in five loads.
bool same_fixed(const HeaderTemplate& t, const PacketSpec& s) {
  static_assert(PacketSpec::kFixedBytes == 34 && sizeof(t.key) >= 34);
  const auto* p = reinterpret_cast<const uint8_t*>(&s);
  uint64_t a[4], b[4];
  uint16_t c, d;
  std::memcpy(a, p, 32);
  std::memcpy(b, t.key, 32);
  std::memcpy(&c, p + 32, 2);
  std::memcpy(&d, t.key + 32, 2);
  return ((a[0] ^ b[0]) | (a[1] ^ b[1]) | (a[2] ^ b[2]) | (a[3] ^ b[3]) | uint64_t(c ^ d)) == 0;
}

// The template's 64 bytes: the headers of a packet to s's destination with
// the per-packet fields left zero (they are written over for every packet).
void make_template(HeaderTemplate& t, const PacketSpec& s) {
  std::memset(t.bytes, 0, sizeof(t.bytes));
  uint8_t* p = write_l2(t.bytes, s);
  auto& ip = at<Ipv4Hdr>(p);
  ip.version_ihl = 0x45;
  ip.tos = s.tos;
  ip.frag = Be16(kIpv4FlagDf);
  ip.ttl = s.ttl;
  ip.protocol = kIpProtoUdp;
  ip.src = Be32(s.src_ip);
  ip.dst = Be32(s.dst_ip);
  auto& udp = at<UdpHdr>(p + sizeof(Ipv4Hdr));
  udp.src_port = Be16(s.udp_src_port);
  udp.dst_port = Be16(kRoceV2Port);
  write_bth_fixed(at<Bth>(p + sizeof(Ipv4Hdr) + sizeof(UdpHdr)), s);
  std::memcpy(t.key, &s, PacketSpec::kFixedBytes);
  t.ip_sum = ipv4_fixed_sum(s);
  t.valid = true;
  ++t.rebuilds;
}

static_assert(sizeof(EthHdr) + sizeof(VlanTag) + sizeof(Ipv4Hdr) + sizeof(UdpHdr) + sizeof(Bth) <=
              HeaderTemplate::kBytes);

// The template's bytes, then the fields that change per packet.
uint8_t* write_from_template(uint8_t* buf, HeaderTemplate& t, const PacketSpec& s,
                             const OpcodeInfo& op, size_t total) {
  if (!t.valid || !same_fixed(t, s)) make_template(t, s);
  std::memcpy(buf, t.bytes, HeaderTemplate::kBytes);
  uint8_t* p = buf + l2_len(s);
  auto& ip = at<Ipv4Hdr>(p);
  ip.total_length = Be16(uint16_t(total));
  ip.id = Be16(s.ip_id);
  ip.checksum = Be16(ipv4_sum_finish(t.ip_sum + uint32_t(total) + s.ip_id));
  p += sizeof(Ipv4Hdr);
  at<UdpHdr>(p).length = Be16(uint16_t(total - sizeof(Ipv4Hdr)));
  p += sizeof(UdpHdr);
  write_bth_variant(at<Bth>(p), s, pad_for(s.payload_len));
  return write_ext(p + sizeof(Bth), s, op);
}

size_t write_headers_within(uint8_t* buf, size_t cap, size_t need, const PacketSpec& s,
                            HeaderTemplate* t) {
  const OpcodeInfo& op = opcode_info(s.opcode);
  if (!op.valid()) return 0;
  if (s.payload_len != 0 && !op.has(kOpPayload)) return 0;
  if (ip_total(s) > kMaxIpTotal || need > cap) return 0;
  const size_t total = ip_total(s);
  if (t != nullptr && cap >= HeaderTemplate::kBytes) {
    return size_t(write_from_template(buf, *t, s, op, total) - buf);
  }
  uint8_t* p = write_l2(buf, s);
  p = write_ipv4_udp(p, s, total);
  p = write_transport(p, s, op, pad_for(s.payload_len));
  return size_t(p - buf);
}
}  // namespace

size_t write_headers(uint8_t* buf, size_t cap, const PacketSpec& s) {
  return write_headers_within(buf, cap, frame_len(s), s, nullptr);
}

size_t write_headers_only(uint8_t* buf, size_t cap, const PacketSpec& s) {
  return write_headers_within(buf, cap, header_len(s), s, nullptr);
}

size_t write_headers(uint8_t* buf, size_t cap, const PacketSpec& s, HeaderTemplate* t) {
  return write_headers_within(buf, cap, frame_len(s), s, t);
}

size_t write_headers_only(uint8_t* buf, size_t cap, const PacketSpec& s, HeaderTemplate* t) {
  return write_headers_within(buf, cap, header_len(s), s, t);
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
