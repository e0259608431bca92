// Parsing a received frame into a PacketView (never reading past the frame and
// never trusting a length field before checking it), and the reasons a frame
// is rejected. Ethernet [802.1Q] / IPv4|IPv6 / UDP 4791 / BTH / ETHs / payload / pad / ICRC.
#pragma once

#include <cstddef>
#include <cstdint>

#include "nic/wire/bth.h"
#include "nic/wire/eth.h"
#include "nic/wire/ipv4.h"
#include "nic/wire/opcodes.h"
#include "nic/wire/udp.h"

namespace droce::wire {

// Why a frame is not an acceptable RoCEv2 packet. The first group means "not
// RoCEv2 at all" (other traffic), the rest "RoCEv2 but malformed".
enum class ParseError : uint8_t {
  kOk = 0,
  // Not RoCEv2:
  kTooShortEth,     // shorter than an Ethernet header (+ VLAN tag)
  kNotIp,           // EtherType neither IPv4 nor IPv6 (ARP, LLDP ...)
  kNotUdp,          // IP protocol / next header is not UDP
  kNotRocePort,     // UDP destination port is not 4791
  kIpFragment,      // IPv4 fragment (RoCEv2 never fragments)
  // Malformed IP / UDP:
  kTooShortIp,      // frame ends inside the IP header
  kBadIpVersion,    // IP version does not match the EtherType
  kBadIpHeaderLen,  // IPv4 IHL < 5
  kBadIpLength,     // IP total/payload length beyond the frame or below the headers
  kTooShortUdp,     // IP payload shorter than a UDP header
  kBadUdpLength,    // UDP length disagrees with the IP length
  // Malformed RoCEv2:
  kTooShortBth,     // UDP payload shorter than BTH + ICRC
  kUnknownOpcode,   // opcode not in the table
  kBadTver,         // BTH transport version is not 0
  kHeaderLength,    // UDP payload shorter than BTH + extension headers + ICRC
  kPadBeyondPayload,// pad count larger than the payload
  kPayloadNotAllowed,// payload on an opcode that carries none
  kBadIcrc,         // ICRC mismatch
  kBadIpChecksum,   // IPv4 header checksum mismatch (checked with the ICRC)
  kCount
};

inline constexpr size_t kParseErrorCount = size_t(ParseError::kCount);

const char* parse_error_name(ParseError e);  // e.g. "bad ICRC"

// True for the errors that mean "this is not RoCEv2 traffic" rather than "malformed".
constexpr bool is_not_roce(ParseError e) {
  return e >= ParseError::kTooShortEth && e <= ParseError::kIpFragment;
}

// A parsed RoCEv2 packet. Offsets are from the start of the frame; the
// pointers point into the frame the view was parsed from.
struct PacketView {
  uint8_t* frame = nullptr;
  uint32_t frame_len = 0;   // bytes captured (may include Ethernet padding)
  uint16_t l3_off = 0;      // IP header
  uint16_t bth_off = 0;     // BTH
  uint32_t payload_off = 0; // first payload byte
  uint32_t payload_len = 0; // payload bytes, without pad
  uint32_t icrc_off = 0;    // ICRC (end of the RoCEv2 packet is icrc_off + 4)
  uint8_t pad = 0;
  bool ipv6 = false;
  bool has_vlan = false;
  uint16_t vlan_tci = 0;
  const OpcodeInfo* op = nullptr;
  // Where the payload is when it is not at frame + payload_off: a received
  // chained frame whose payload segment is another buffer (the headers are
  // still at `frame`; nic/port.cc). nullptr: at frame + payload_off.
  uint8_t* payload_at = nullptr;

  const EthHdr& eth() const { return *reinterpret_cast<const EthHdr*>(frame); }
  const Ipv4Hdr& ipv4() const { return *reinterpret_cast<const Ipv4Hdr*>(frame + l3_off); }
  const Ipv6Hdr& ipv6_hdr() const { return *reinterpret_cast<const Ipv6Hdr*>(frame + l3_off); }
  const UdpHdr& udp() const { return *reinterpret_cast<const UdpHdr*>(frame + bth_off - sizeof(UdpHdr)); }
  const Bth& bth() const { return *reinterpret_cast<const Bth*>(frame + bth_off); }
  uint8_t* ext() const { return frame + bth_off + sizeof(Bth); }
  template <typename H>
  const H& ext_at(uint8_t off) const { return *reinterpret_cast<const H*>(ext() + off); }
  const Reth& reth() const { return ext_at<Reth>(op->reth_off); }
  const Aeth& aeth() const { return ext_at<Aeth>(op->aeth_off); }
  const AtomicEth& atomic_eth() const { return ext_at<AtomicEth>(op->atomic_eth_off); }
  const AtomicAckEth& atomic_ack() const { return ext_at<AtomicAckEth>(op->atomic_ack_off); }
  const ImmDt& immdt() const { return ext_at<ImmDt>(op->imm_off); }
  const Ieth& ieth() const { return ext_at<Ieth>(op->ieth_off); }
  const Deth& deth() const { return ext_at<Deth>(op->deth_off); }
  const Feth& feth() const { return ext_at<Feth>(op->feth_off); }
  uint8_t* payload() const { return payload_at != nullptr ? payload_at : frame + payload_off; }
};

struct ParseOptions {
  // Checking the ICRC masks fields in place and restores them; with it the
  // IPv4 header checksum, which the ICRC does not cover, is checked too.
  bool verify_icrc = true;
};

// Parses `frame[0..len)`. On success fills *out and returns kOk. With
// verify_icrc the frame must be writable (fields are masked and restored).
ParseError parse_frame(uint8_t* frame, size_t len, PacketView* out, ParseOptions opts = {});

}  // namespace droce::wire
