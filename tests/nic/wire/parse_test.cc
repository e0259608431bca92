// Parser rejection reasons (packet.h ParseError): one crafted frame per reason
// gets exactly that reason; IPv6, VLAN and Ethernet padding are accepted.
#include <gtest/gtest.h>

#include <functional>
#include <set>
#include <string>

#include "nic/wire/icrc.h"
#include "nic/wire/packet.h"
#include "tests/nic/wire/test_util.h"

namespace droce::wire {
namespace {

constexpr size_t kL3 = 14, kL4 = 34, kBth = 42;  // offsets in a frame without VLAN, IPv4

void set16(test::Frame& f, size_t off, uint16_t v) {
  f[off] = uint8_t(v >> 8);
  f[off + 1] = uint8_t(v);
}

// Rewrites the IPv4 total length and UDP length for a frame cut at `n` bytes.
void cut(test::Frame& f, size_t n) {
  f.resize(n);
  set16(f, kL3 + 2, uint16_t(n - kL3));
  set16(f, kL4 + 4, uint16_t(n - kL4));
}

void reicrc(test::Frame& f) { icrc_write(f.data() + kL3, f.size() - kL3 - 4, false); }

struct Case {
  const char* what;
  ParseError want;
  uint8_t opcode;
  uint32_t payload;
  std::function<void(test::Frame&)> mutate;
};

const Case kCases[] = {
    {"empty frame", ParseError::kTooShortEth, op::kSendOnly, 0, [](test::Frame& f) { f.clear(); }},
    {"13 bytes", ParseError::kTooShortEth, op::kSendOnly, 0, [](test::Frame& f) { f.resize(13); }},
    {"VLAN tag cut", ParseError::kTooShortEth, op::kSendOnly, 0,
     [](test::Frame& f) {
       set16(f, 12, kEtherTypeVlan);
       f.resize(17);
     }},
    {"ARP", ParseError::kNotIp, op::kSendOnly, 0,
     [](test::Frame& f) { set16(f, 12, kEtherTypeArp); }},
    {"LLDP behind a VLAN tag", ParseError::kNotIp, op::kSendOnly, 0,
     [](test::Frame& f) {
       set16(f, 12, kEtherTypeVlan);
       set16(f, 16, 0x88CC);
     }},
    {"TCP", ParseError::kNotUdp, op::kSendOnly, 0, [](test::Frame& f) { f[kL3 + 9] = 6; }},
    {"UDP to port 4792", ParseError::kNotRocePort, op::kSendOnly, 0,
     [](test::Frame& f) { set16(f, kL4 + 2, 4792); }},
    {"UDP to the RoCEv2 port as source only", ParseError::kNotRocePort, op::kSendOnly, 0,
     [](test::Frame& f) {
       set16(f, kL4, kRoceV2Port);
       set16(f, kL4 + 2, 0xC000);
     }},
    {"more fragments", ParseError::kIpFragment, op::kSendOnly, 0,
     [](test::Frame& f) { set16(f, kL3 + 6, kIpv4FlagDf | kIpv4FlagMf); }},
    {"fragment offset", ParseError::kIpFragment, op::kSendOnly, 0,
     [](test::Frame& f) { set16(f, kL3 + 6, 0x0010); }},
    {"IPv4 cut at 19 bytes", ParseError::kTooShortIp, op::kSendOnly, 0,
     [](test::Frame& f) { f.resize(kL3 + 19); }},
    {"IHL 15 beyond the frame", ParseError::kTooShortIp, op::kSendOnly, 0,
     [](test::Frame& f) {
       f[kL3] = 0x4F;
       f.resize(kL3 + 59);
     }},
    {"IPv6 cut at 39 bytes", ParseError::kTooShortIp, op::kSendOnly, 0,
     [](test::Frame& f) {
       set16(f, 12, kEtherTypeIpv6);
       f.resize(kL3 + 39);
     }},
    {"version 6 in an IPv4 EtherType", ParseError::kBadIpVersion, op::kSendOnly, 0,
     [](test::Frame& f) { f[kL3] = 0x65; }},
    {"version 4 in an IPv6 EtherType", ParseError::kBadIpVersion, op::kSendOnly, 0,
     [](test::Frame& f) { set16(f, 12, kEtherTypeIpv6); }},
    {"IHL 4", ParseError::kBadIpHeaderLen, op::kSendOnly, 0, [](test::Frame& f) { f[kL3] = 0x44; }},
    {"total length beyond the frame", ParseError::kBadIpLength, op::kSendOnly, 0,
     [](test::Frame& f) { set16(f, kL3 + 2, uint16_t(f.size() - kL3 + 1)); }},
    {"total length below the IP header", ParseError::kBadIpLength, op::kSendOnly, 0,
     [](test::Frame& f) { set16(f, kL3 + 2, 19); }},
    {"IPv6 payload length beyond the frame", ParseError::kBadIpLength, op::kSendOnly, 0,
     [](test::Frame& f) {
       f = test::to_ipv6(f);
       set16(f, kL3 + 4, uint16_t(f.size() - kL3 - 40 + 1));
     }},
    {"IP payload of 7 bytes", ParseError::kTooShortUdp, op::kSendOnly, 0,
     [](test::Frame& f) { set16(f, kL3 + 2, 27); }},
    {"UDP length one more than IP says", ParseError::kBadUdpLength, op::kSendOnly, 0,
     [](test::Frame& f) { set16(f, kL4 + 4, uint16_t(f.size() - kL4 + 1)); }},
    {"UDP length one less than IP says", ParseError::kBadUdpLength, op::kSendOnly, 0,
     [](test::Frame& f) { set16(f, kL4 + 4, uint16_t(f.size() - kL4 - 1)); }},
    {"UDP payload of 15 bytes", ParseError::kTooShortBth, op::kSendOnly, 0,
     [](test::Frame& f) { cut(f, kBth + 15); }},
    {"UDP payload of 0 bytes", ParseError::kTooShortBth, op::kSendOnly, 0,
     [](test::Frame& f) { cut(f, kBth); }},
    {"reserved opcode 0x15", ParseError::kUnknownOpcode, op::kSendOnly, 0,
     [](test::Frame& f) { f[kBth] = 0x15; }},
    {"opcode 0x1E (after ATOMIC_WRITE)", ParseError::kUnknownOpcode, op::kSendOnly, 0,
     [](test::Frame& f) { f[kBth] = 0x1E; }},
    {"FLUSH carrying a payload", ParseError::kPayloadNotAllowed, op::kAtomicWrite, 8,
     [](test::Frame& f) { f[kBth] = op::kFlush; }},
    {"ATOMIC_WRITE relabelled FLUSH, too short for FETH+RETH", ParseError::kHeaderLength,
     op::kAtomicWrite, 0, [](test::Frame& f) { f[kBth] = op::kFlush; }},
    {"RD opcode", ParseError::kUnknownOpcode, op::kSendOnly, 0,
     [](test::Frame& f) { f[kBth] = 0x44; }},
    {"TVer 1", ParseError::kBadTver, op::kSendOnly, 0, [](test::Frame& f) { f[kBth + 1] |= 1; }},
    {"ACK relabelled WRITE_ONLY (needs a RETH)", ParseError::kHeaderLength, op::kAck, 0,
     [](test::Frame& f) { f[kBth] = op::kWriteOnly; }},
    {"ACK cut inside its AETH", ParseError::kHeaderLength, op::kAck, 0,
     [](test::Frame& f) { cut(f, kBth + 12 + 3 + 4); }},
    {"pad 1 with no payload", ParseError::kPadBeyondPayload, op::kSendOnly, 0,
     [](test::Frame& f) {
       f[kBth + 1] = uint8_t((f[kBth + 1] & ~Bth::kPadMask) | 1 << Bth::kPadShift);
     }},
    {"pad 3 with 2 bytes of payload + pad", ParseError::kPadBeyondPayload, op::kSendOnly, 1,
     [](test::Frame& f) {
       f[kBth + 1] = uint8_t(f[kBth + 1] | Bth::kPadMask);
       const size_t end = f.size();
       f.erase(f.end() - 6, f.end() - 4);  // 4 bytes (payload 1 + pad 3) down to 2
       cut(f, end - 2);
     }},
    {"SEND_ONLY with 8 bytes relabelled ACK", ParseError::kPayloadNotAllowed, op::kSendOnly, 8,
     [](test::Frame& f) { f[kBth] = op::kAck; }},
    {"READ request with 4 extra bytes", ParseError::kPayloadNotAllowed, op::kReadRequest, 0,
     [](test::Frame& f) {
       const size_t n = f.size() + 4;
       f.insert(f.end() - 4, 4, 0);
       cut(f, n);
       reicrc(f);
     }},
    {"CNP with 4 extra bytes", ParseError::kPayloadNotAllowed, op::kCnp, 0,
     [](test::Frame& f) {
       const size_t n = f.size() + 4;
       f.insert(f.end() - 4, 4, 0);
       cut(f, n);
       reicrc(f);
     }},
    {"payload bit flipped", ParseError::kBadIcrc, op::kSendOnly, 8,
     [](test::Frame& f) { f[f.size() - 6] ^= 0x10; }},
    {"ICRC bit flipped", ParseError::kBadIcrc, op::kSendOnly, 0,
     [](test::Frame& f) { f.back() ^= 0x80; }},
    {"PSN changed", ParseError::kBadIcrc, op::kAck, 0, [](test::Frame& f) { f[kBth + 11] ^= 1; }},
    // The checksum (like TTL and TOS) is outside the ICRC: only the header
    // checksum catches it.
    {"IPv4 checksum wrong", ParseError::kBadIpChecksum, op::kSendOnly, 0,
     [](test::Frame& f) { f[kL3 + 10] ^= 0x01; }},
    {"TTL changed, checksum not", ParseError::kBadIpChecksum, op::kSendOnly, 0,
     [](test::Frame& f) { f[kL3 + 8] ^= 0x40; }},
};

TEST(WireParse, EachReasonFromACraftedFrame) {
  std::set<ParseError> covered;
  for (const Case& c : kCases) {
    SCOPED_TRACE(c.what);
    test::Frame f = test::build(test::sample_spec(c.opcode, c.payload, false));
    ASSERT_FALSE(f.empty());
    PacketView v;
    {
      test::Frame ok = f;
      ASSERT_EQ(parse_frame(ok.data(), ok.size(), &v), ParseError::kOk);
    }
    c.mutate(f);
    // Exactly-sized heap copy: an out-of-bounds read shows up under ASan.
    std::unique_ptr<uint8_t[]> buf(new uint8_t[f.size()]);
    std::copy(f.begin(), f.end(), buf.get());
    const ParseError r = parse_frame(buf.get(), f.size(), &v);
    EXPECT_EQ(r, c.want) << "got " << parse_error_name(r) << ", want " << parse_error_name(c.want);
    covered.insert(c.want);
  }
  for (size_t e = 1; e < kParseErrorCount; ++e) {
    EXPECT_TRUE(covered.count(ParseError(e))) << "no case for " << parse_error_name(ParseError(e));
  }
}

TEST(WireParse, ErrorNamesAreDistinctAndClassified) {
  std::set<std::string> names;
  for (size_t e = 0; e <= kParseErrorCount; ++e) {
    const char* n = parse_error_name(ParseError(e));
    ASSERT_NE(n, nullptr);
    EXPECT_GT(std::strlen(n), 0u);
    if (e < kParseErrorCount) {
      EXPECT_TRUE(names.insert(n).second) << n;
    }
  }
  EXPECT_STREQ(parse_error_name(ParseError::kBadIcrc), "bad ICRC");
  EXPECT_FALSE(is_not_roce(ParseError::kOk));
  EXPECT_TRUE(is_not_roce(ParseError::kNotIp));
  EXPECT_TRUE(is_not_roce(ParseError::kNotRocePort));
  EXPECT_TRUE(is_not_roce(ParseError::kIpFragment));
  EXPECT_FALSE(is_not_roce(ParseError::kTooShortIp));
  EXPECT_FALSE(is_not_roce(ParseError::kBadIcrc));
}

TEST(WireParse, Ipv6FrameParses) {
  const PacketSpec s = test::sample_spec(op::kWriteOnlyImm, 9, false);
  test::Frame f = test::to_ipv6(test::build(s));
  PacketView v;
  ASSERT_EQ(parse_frame(f.data(), f.size(), &v), ParseError::kOk);
  EXPECT_TRUE(v.ipv6);
  EXPECT_EQ(v.l3_off, 14);
  EXPECT_EQ(v.bth_off, 14 + 40 + 8);
  EXPECT_EQ(v.ipv6_hdr().next_header, kIpProtoUdp);
  EXPECT_EQ(v.ipv6_hdr().src[15], uint8_t(s.src_ip));
  EXPECT_EQ(v.bth().psn(), s.psn);
  EXPECT_EQ(v.reth().rkey.get(), s.reth_rkey);
  EXPECT_EQ(v.immdt().imm.raw(), s.imm_raw);
  EXPECT_EQ(v.payload_len, 9u);
  EXPECT_EQ(v.pad, 3);
  EXPECT_EQ(v.icrc_off + 4u, f.size());
  EXPECT_EQ(test::load_icrc(f.data() + v.icrc_off),
            test::reference_icrc(f.data() + 14, v.icrc_off - 14, true));
}

TEST(WireParse, VlanAndEthernetPadding) {
  const PacketSpec s = test::sample_spec(op::kAck, 0, true);
  test::Frame f = test::build(s);
  ASSERT_EQ(f.size(), 18u + 48);
  f.resize(80, 0xA5);  // trailing bytes after the IP packet: padding / FCS
  PacketView v;
  ASSERT_EQ(parse_frame(f.data(), f.size(), &v), ParseError::kOk);
  EXPECT_TRUE(v.has_vlan);
  EXPECT_EQ(v.vlan_tci, s.vlan_tci);
  EXPECT_EQ(v.l3_off, 18);
  EXPECT_EQ(v.frame_len, 80u);
  EXPECT_EQ(v.icrc_off + 4u, 66u);
}

TEST(WireParse, WithoutIcrcCheckAFrameWithBadIcrcParses) {
  test::Frame f = test::build(test::sample_spec(op::kSendOnly, 4, false));
  f.back() ^= 1;
  PacketView v;
  EXPECT_EQ(parse_frame(f.data(), f.size(), &v), ParseError::kBadIcrc);
  EXPECT_EQ(parse_frame(f.data(), f.size(), &v, ParseOptions{.verify_icrc = false}),
            ParseError::kOk);
  EXPECT_EQ(v.payload_len, 4u);
}

TEST(WireParse, FailedParseLeavesViewUntouched) {
  test::Frame f = test::build(test::sample_spec(op::kSendOnly, 4, false));
  f.back() ^= 1;
  PacketView v;
  v.payload_len = 12345;
  EXPECT_NE(parse_frame(f.data(), f.size(), &v), ParseError::kOk);
  EXPECT_EQ(v.payload_len, 12345u);
  EXPECT_EQ(v.frame, nullptr);
}

// Memory Placement Extensions (A19), laid out as rxe_opcode.c does: FLUSH is
// BTH, FETH, RETH; ATOMIC_WRITE is BTH, RETH and the 8-byte value.
TEST(WireParse, FlushAndAtomicWriteLayout) {
  PacketSpec s = test::sample_spec(op::kFlush, 0, false);
  s.feth_placement = kFlushGlobal;
  s.feth_selectivity = kFlushRange;
  test::Frame f = test::build(s);
  ASSERT_EQ(f.size(), kBth + 12 + 4 + 16 + 4);
  EXPECT_EQ(f[kBth], 0x1C);
  EXPECT_EQ(f[kBth + 12], 0);
  EXPECT_EQ(f[kBth + 15], 0x01);  // FETH: placement global, selectivity range
  EXPECT_EQ(f[kBth + 16], uint8_t(s.reth_va >> 56));  // RETH right after the FETH
  PacketView v;
  ASSERT_EQ(parse_frame(f.data(), f.size(), &v), ParseError::kOk);
  EXPECT_EQ(v.feth().placement(), kFlushGlobal);
  EXPECT_EQ(v.feth().selectivity(), kFlushRange);
  EXPECT_EQ(v.reth().va.get(), s.reth_va);
  EXPECT_EQ(v.reth().rkey.get(), s.reth_rkey);
  EXPECT_EQ(v.payload_len, 0u);

  s = test::sample_spec(op::kAtomicWrite, 8, false);
  f = test::build(s);
  ASSERT_EQ(f.size(), kBth + 12 + 16 + 8 + 4);
  ASSERT_EQ(parse_frame(f.data(), f.size(), &v), ParseError::kOk);
  EXPECT_EQ(v.payload_off, kBth + 28);
  EXPECT_EQ(v.payload_len, 8u);
  EXPECT_EQ(v.pad, 0);
  EXPECT_EQ(v.reth().dma_length.get(), s.reth_len);
}

}  // namespace
}  // namespace droce::wire
