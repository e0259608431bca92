// RoCEv2 frame parser (IBTA vol. 1 ch. 9, annex A17): Ethernet [802.1Q] / IPv4|IPv6 /
// UDP 4791 / BTH / ETHs / payload / pad / ICRC. Every length is checked before it is used.
#include <cstring>

#include "nic/wire/icrc.h"
#include "nic/wire/packet.h"

namespace droce::wire {

const char* parse_error_name(ParseError e) {
  switch (e) {
    case ParseError::kOk:
      return "ok";
    case ParseError::kTooShortEth:
      return "too short for Ethernet";
    case ParseError::kNotIp:
      return "not IP";
    case ParseError::kNotUdp:
      return "not UDP";
    case ParseError::kNotRocePort:
      return "not UDP port 4791";
    case ParseError::kIpFragment:
      return "IP fragment";
    case ParseError::kTooShortIp:
      return "too short for IP header";
    case ParseError::kBadIpVersion:
      return "bad IP version";
    case ParseError::kBadIpHeaderLen:
      return "bad IP header length";
    case ParseError::kBadIpLength:
      return "bad IP length";
    case ParseError::kTooShortUdp:
      return "too short for UDP header";
    case ParseError::kBadUdpLength:
      return "bad UDP length";
    case ParseError::kTooShortBth:
      return "too short for BTH";
    case ParseError::kUnknownOpcode:
      return "unknown opcode";
    case ParseError::kBadTver:
      return "bad BTH transport version";
    case ParseError::kHeaderLength:
      return "too short for extension headers";
    case ParseError::kPadBeyondPayload:
      return "pad count beyond payload";
    case ParseError::kPayloadNotAllowed:
      return "payload on opcode without payload";
    case ParseError::kBadIpChecksum:
      return "bad IPv4 header checksum";
    case ParseError::kBadIcrc:
      return "bad ICRC";
    case ParseError::kCount:
      break;
  }
  return "unknown parse error";
}

namespace {

inline uint16_t load_be16(const uint8_t* p) { return uint16_t(p[0] << 8 | p[1]); }

constexpr size_t kIcrcLen = 4;

// L2: Ethernet, optionally one 802.1Q tag. *l3: offset of the IP header.
ParseError parse_l2(const uint8_t* frame, size_t len, size_t* l3, uint16_t* ether_type,
                    bool* has_vlan, uint16_t* tci) {
  if (len < sizeof(EthHdr)) return ParseError::kTooShortEth;
  *l3 = sizeof(EthHdr);
  *ether_type = load_be16(frame + 12);
  if (*ether_type == kEtherTypeVlan) {
    if (len < sizeof(EthHdr) + sizeof(VlanTag)) return ParseError::kTooShortEth;
    *has_vlan = true;
    *tci = load_be16(frame + 14);
    *ether_type = load_be16(frame + 16);
    *l3 += sizeof(VlanTag);
  }
  return ParseError::kOk;
}

// L3 (RoCEv2 annex A17.4: IPv4 or IPv6, UDP next, no fragments): the IP
// payload (UDP header onward) is [*l4, *l4 + *ip_payload). avail: bytes from
// the IP header to the end of the frame.
ParseError parse_ip(const uint8_t* frame, size_t l3, size_t avail, uint16_t ether_type,
                    size_t* l4, size_t* ip_payload, bool* ipv6) {
  if (ether_type == kEtherTypeIpv4) {
    if (avail < sizeof(Ipv4Hdr)) return ParseError::kTooShortIp;
    const auto& ip = *reinterpret_cast<const Ipv4Hdr*>(frame + l3);
    if (ip.version() != 4) return ParseError::kBadIpVersion;
    const size_t ihl = ip.ihl_bytes();
    if (ihl < sizeof(Ipv4Hdr)) return ParseError::kBadIpHeaderLen;
    if (ip.protocol != kIpProtoUdp) return ParseError::kNotUdp;
    if (ip.frag.get() & (kIpv4FlagMf | kIpv4FragOffsetMask)) return ParseError::kIpFragment;
    if (avail < ihl) return ParseError::kTooShortIp;
    const size_t total = ip.total_length.get();
    // Bytes after total_length are Ethernet padding (minimum frame size) and ignored.
    if (total < ihl || total > avail) return ParseError::kBadIpLength;
    *l4 = l3 + ihl;
    *ip_payload = total - ihl;
    return ParseError::kOk;
  }
  if (ether_type == kEtherTypeIpv6) {
    if (avail < sizeof(Ipv6Hdr)) return ParseError::kTooShortIp;
    const auto& ip = *reinterpret_cast<const Ipv6Hdr*>(frame + l3);
    if ((frame[l3] >> 4) != 6) return ParseError::kBadIpVersion;
    // Extension headers are not used by RoCEv2; anything but UDP next is other traffic.
    if (ip.next_header != kIpProtoUdp) return ParseError::kNotUdp;
    const size_t payload = ip.payload_length.get();
    if (payload > avail - sizeof(Ipv6Hdr)) return ParseError::kBadIpLength;
    *l4 = l3 + sizeof(Ipv6Hdr);
    *ip_payload = payload;
    *ipv6 = true;
    return ParseError::kOk;
  }
  return ParseError::kNotIp;
}

}  // namespace

ParseError parse_frame(uint8_t* frame, size_t len, PacketView* out, ParseOptions opts) {
  size_t l3 = 0;
  uint16_t ether_type = 0;
  bool has_vlan = false;
  uint16_t tci = 0;
  ParseError e = parse_l2(frame, len, &l3, &ether_type, &has_vlan, &tci);
  if (e != ParseError::kOk) return e;
  size_t l4 = 0, ip_payload = 0;
  bool ipv6 = false;
  e = parse_ip(frame, l3, len - l3, ether_type, &l4, &ip_payload, &ipv6);
  if (e != ParseError::kOk) return e;

  // L4: UDP to port 4791, its length equal to the IP payload.
  if (ip_payload < sizeof(UdpHdr)) return ParseError::kTooShortUdp;
  const auto& udp = *reinterpret_cast<const UdpHdr*>(frame + l4);
  if (udp.dst_port.get() != kRoceV2Port) return ParseError::kNotRocePort;
  if (udp.length.get() != ip_payload) return ParseError::kBadUdpLength;
  const size_t bth_off = l4 + sizeof(UdpHdr);
  const size_t roce_len = ip_payload - sizeof(UdpHdr);  // BTH .. ICRC inclusive

  // BTH and the opcode table.
  if (roce_len < sizeof(Bth) + kIcrcLen) return ParseError::kTooShortBth;
  const auto& bth = *reinterpret_cast<const Bth*>(frame + bth_off);
  const OpcodeInfo& op = opcode_info(bth.opcode);
  if (!op.valid()) return ParseError::kUnknownOpcode;
  if (bth.tver() != 0) return ParseError::kBadTver;
  const size_t hdrs = sizeof(Bth) + op.ext_len;
  if (roce_len < hdrs + kIcrcLen) return ParseError::kHeaderLength;
  const size_t payload_and_pad = roce_len - hdrs - kIcrcLen;
  const uint8_t pad = bth.pad();
  if (pad > payload_and_pad) return ParseError::kPadBeyondPayload;
  if (payload_and_pad != 0 && !op.has(kOpPayload)) return ParseError::kPayloadNotAllowed;

  const size_t icrc_off = bth_off + roce_len - kIcrcLen;
  if (opts.verify_icrc && !icrc_verify(frame + l3, icrc_off - l3, ipv6)) {
    return ParseError::kBadIcrc;
  }
  // The ICRC leaves out the IPv4 checksum (and TTL, TOS), so a frame whose
  // header a router or a peer got wrong passes it: a NIC drops it here.
  if (opts.verify_icrc && !ipv6 && !ipv4_header_valid(frame + l3, l4 - l3)) {
    return ParseError::kBadIpChecksum;
  }

  out->frame = frame;
  out->frame_len = len > UINT32_MAX ? UINT32_MAX : uint32_t(len);
  out->l3_off = uint16_t(l3);
  out->bth_off = uint16_t(bth_off);
  out->payload_off = uint32_t(bth_off + hdrs);
  out->payload_len = uint32_t(payload_and_pad - pad);
  out->icrc_off = uint32_t(icrc_off);
  out->pad = pad;
  out->ipv6 = ipv6;
  out->has_vlan = has_vlan;
  out->vlan_tci = tci;
  out->op = &op;
  out->payload_at = nullptr;
  return ParseError::kOk;
}

}  // namespace droce::wire
