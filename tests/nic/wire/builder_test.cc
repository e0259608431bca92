// Builder -> parser round trips for every opcode in the table (IBTA vol. 1 ch. 9;
// annex A17 encapsulation), and the builder's refusals.
#include "nic/wire/builder.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <memory>
#include <string>

#include "nic/wire/packet.h"
#include "tests/nic/wire/test_util.h"

namespace droce::wire {
namespace {

void expect_fields(const PacketView& v, const PacketSpec& s, const test::Frame& f) {
  EXPECT_EQ(v.eth().dst, s.dst_mac);
  EXPECT_EQ(v.eth().src, s.src_mac);
  EXPECT_EQ(v.has_vlan, s.vlan);
  if (s.vlan) {
    EXPECT_EQ(v.vlan_tci, s.vlan_tci);
    EXPECT_EQ(v.eth().ether_type.get(), kEtherTypeVlan);
  }
  EXPECT_FALSE(v.ipv6);
  const Ipv4Hdr& ip = v.ipv4();
  EXPECT_EQ(ip.version_ihl, 0x45);
  EXPECT_EQ(ip.tos, s.tos);
  EXPECT_EQ(ip.ttl, s.ttl);
  EXPECT_EQ(ip.id.get(), s.ip_id);
  EXPECT_EQ(ip.frag.get(), kIpv4FlagDf);
  EXPECT_EQ(ip.protocol, kIpProtoUdp);
  EXPECT_EQ(ip.src.get(), s.src_ip);
  EXPECT_EQ(ip.dst.get(), s.dst_ip);
  EXPECT_EQ(ip.total_length.get(), frame_len(s) - v.l3_off);
  EXPECT_EQ(ipv4_checksum(ip), 0) << "IPv4 header checksum does not verify";
  EXPECT_EQ(v.udp().src_port.get(), s.udp_src_port);
  EXPECT_EQ(v.udp().dst_port.get(), kRoceV2Port);
  EXPECT_EQ(v.udp().length.get(), ip.total_length.get() - sizeof(Ipv4Hdr));
  EXPECT_EQ(v.udp().checksum.get(), 0);

  const Bth& b = v.bth();
  EXPECT_EQ(b.opcode, s.opcode);
  EXPECT_EQ(b.se(), s.se);
  EXPECT_EQ(b.migreq(), s.migreq);
  EXPECT_EQ(b.pad(), pad_for(s.payload_len));
  EXPECT_EQ(b.tver(), 0);
  EXPECT_EQ(b.pkey.get(), s.pkey);
  EXPECT_EQ(b.byte4(), s.becn_fecn);
  EXPECT_EQ(b.dest_qp(), s.dest_qp & kMask24);
  EXPECT_EQ(b.ackreq(), s.ackreq);
  EXPECT_EQ(b.psn(), s.psn & kMask24);

  const OpcodeInfo& o = *v.op;
  EXPECT_EQ(&o, &opcode_info(s.opcode));
  if (o.has(kOpReth)) {
    EXPECT_EQ(v.reth().va.get(), s.reth_va);
    EXPECT_EQ(v.reth().rkey.get(), s.reth_rkey);
    EXPECT_EQ(v.reth().dma_length.get(), s.reth_len);
  }
  if (o.has(kOpAeth)) {
    EXPECT_EQ(v.aeth().syndrome(), s.aeth_syndrome);
    EXPECT_EQ(v.aeth().msn(), s.aeth_msn & kMask24);
  }
  if (o.has(kOpAtomicEth)) {
    EXPECT_EQ(v.atomic_eth().va.get(), s.atomic_va);
    EXPECT_EQ(v.atomic_eth().rkey.get(), s.atomic_rkey);
    EXPECT_EQ(v.atomic_eth().swap_add.get(), s.atomic_swap_add);
    EXPECT_EQ(v.atomic_eth().compare.get(), s.atomic_compare);
  }
  if (o.has(kOpAtomicAck)) {
    EXPECT_EQ(v.atomic_ack().orig.get(), s.atomic_ack_orig);
  }
  if (o.has(kOpImm)) {
    EXPECT_EQ(v.immdt().imm.raw(), s.imm_raw);
  }
  if (o.has(kOpIeth)) {
    EXPECT_EQ(v.ieth().rkey.get(), s.ieth_rkey);
  }
  if (o.has(kOpFeth)) {
    EXPECT_EQ(v.feth().placement(), s.feth_placement);
    EXPECT_EQ(v.feth().selectivity(), s.feth_selectivity);
  }
  if (o.has(kOpDeth)) {
    EXPECT_EQ(v.deth().qkey.get(), s.deth_qkey);
    EXPECT_EQ(v.deth().src_qp(), s.deth_src_qp);
  }
  if (o.has(kOpCnpBody)) {
    for (size_t i = 0; i < sizeof(CnpBody); ++i) EXPECT_EQ(v.ext()[i], 0) << "CNP byte " << i;
  }

  // Layout: header_len is the payload offset; payload, zeroed pad, ICRC, end.
  EXPECT_EQ(v.payload_off, header_len(s));
  EXPECT_EQ(v.payload_len, s.payload_len);
  EXPECT_EQ(v.pad, pad_for(s.payload_len));
  EXPECT_EQ(v.icrc_off + 4u, frame_len(s));
  EXPECT_EQ(v.frame_len, f.size());
  EXPECT_EQ((v.payload_len + v.pad) % 4, 0u);
  for (uint32_t i = 0; i < v.payload_len; ++i) {
    ASSERT_EQ(v.payload()[i], uint8_t(i * 7 + 1)) << "payload byte " << i;
  }
  for (uint32_t i = 0; i < v.pad; ++i) EXPECT_EQ(v.payload()[v.payload_len + i], 0) << "pad " << i;
  EXPECT_EQ(test::load_icrc(f.data() + v.icrc_off),
            test::reference_icrc(f.data() + v.l3_off, v.icrc_off - v.l3_off, false));
}

TEST(WireBuilder, RoundTripEveryOpcode) {
  size_t built = 0;
  for (int code = 0; code < 256; ++code) {
    const OpcodeInfo& o = opcode_info(uint8_t(code));
    if (!o.valid()) continue;
    std::vector<uint32_t> sizes = {0};
    if (o.has(kOpPayload)) sizes = {0, 1, 3, 4, 1024};
    for (uint32_t n : sizes) {
      for (bool vlan : {false, true}) {
        SCOPED_TRACE(std::string(o.name) + " payload " + std::to_string(n) + (vlan ? " vlan" : ""));
        const PacketSpec s = test::sample_spec(uint8_t(code), n, vlan);
        EXPECT_EQ(header_len(s), (vlan ? 18u : 14u) + 20 + 8 + 12 + o.ext_len);
        EXPECT_EQ(frame_len(s), header_len(s) + n + pad_for(n) + 4);
        // Built into an exactly-sized heap block, so ASan sees any overrun.
        std::unique_ptr<uint8_t[]> buf(new uint8_t[frame_len(s)]);
        test::Frame payload(n);
        for (uint32_t i = 0; i < n; ++i) payload[i] = uint8_t(i * 7 + 1);
        ASSERT_EQ(build_frame(buf.get(), frame_len(s), s, payload.data()), frame_len(s));
        test::Frame f(buf.get(), buf.get() + frame_len(s));
        PacketView v;
        ASSERT_EQ(parse_frame(f.data(), f.size(), &v), ParseError::kOk);
        expect_fields(v, s, f);
        ++built;
      }
    }
  }
  // 40 opcodes: 33 carry payload (5 sizes); READ request, ACK, atomic ACK, CMP_SWAP,
  // FETCH_ADD, FLUSH and CNP do not. Each with and without VLAN.
  EXPECT_EQ(built, (33u * 5 + 7) * 2);
}

TEST(WireBuilder, FlagsAndSmallValues) {
  PacketSpec s = test::sample_spec(op::kWriteOnly, 16, false);
  s.se = s.migreq = s.ackreq = false;
  s.becn_fecn = 0;
  s.dest_qp = 0x1000001;  // only 24 bits go on the wire
  s.psn = 0x1FFFFFF;
  const test::Frame f = test::build(s);
  test::Frame g = f;
  PacketView v;
  ASSERT_EQ(parse_frame(g.data(), g.size(), &v), ParseError::kOk);
  EXPECT_FALSE(v.bth().se());
  EXPECT_FALSE(v.bth().migreq());
  EXPECT_FALSE(v.bth().ackreq());
  EXPECT_EQ(v.bth().byte4(), 0);
  EXPECT_EQ(v.bth().dest_qp(), 1u);
  EXPECT_EQ(v.bth().psn(), 0xFFFFFFu);
}

TEST(WireBuilder, WriteHeadersThenFinishEqualsBuildFrame) {
  const PacketSpec s = test::sample_spec(op::kSendOnly, 13, true);
  const test::Frame whole = test::build(s);
  test::Frame f(frame_len(s), 0xEE);  // pad bytes start dirty: finish_frame zeroes them
  const size_t off = write_headers(f.data(), f.size(), s);
  ASSERT_EQ(off, header_len(s));
  for (uint32_t i = 0; i < s.payload_len; ++i) f[off + i] = uint8_t(i * 7 + 1);
  finish_frame(f.data(), s);
  EXPECT_EQ(f, whole);
}

TEST(WireBuilder, NullPayloadIsZeroes) {
  const PacketSpec s = test::sample_spec(op::kSendOnly, 8, false);
  test::Frame f(frame_len(s), 0xEE);
  ASSERT_EQ(build_frame(f.data(), f.size(), s, nullptr), f.size());
  PacketView v;
  ASSERT_EQ(parse_frame(f.data(), f.size(), &v), ParseError::kOk);
  for (uint32_t i = 0; i < 8; ++i) EXPECT_EQ(v.payload()[i], 0);
}

TEST(WireBuilder, Refusals) {
  test::Frame f(70000);
  PacketSpec s = test::sample_spec(0x15, 0, false);  // reserved opcode
  EXPECT_EQ(write_headers(f.data(), f.size(), s), 0u);
  EXPECT_EQ(build_frame(f.data(), f.size(), s, nullptr), 0u);
  s = test::sample_spec(op::kAck, 4, false);  // payload on an ACK
  EXPECT_EQ(build_frame(f.data(), f.size(), s, f.data()), 0u);
  s = test::sample_spec(op::kCnp, 1, false);
  EXPECT_EQ(build_frame(f.data(), f.size(), s, f.data()), 0u);
  s = test::sample_spec(op::kSendOnly, 100, false);  // one byte short of room
  EXPECT_EQ(write_headers(f.data(), frame_len(s) - 1, s), 0u);
  EXPECT_EQ(build_frame(f.data(), frame_len(s), s, nullptr), frame_len(s));
  // IP total length limit: 20 + 8 + 12 + payload + pad + 4 <= 65535, a multiple of 4 here.
  s = test::sample_spec(op::kSendOnly, 65532 - 44, false);  // + pad 0 = 65532
  EXPECT_EQ(build_frame(f.data(), f.size(), s, nullptr), frame_len(s));
  s.payload_len += 1;
  EXPECT_EQ(build_frame(f.data(), f.size(), s, nullptr), 0u);
}

// The per-QP header template writes what write_headers writes, byte for
// byte, for every opcode, payload size and VLAN choice, while the per-packet
// fields change every time and the fixed ones (peer MAC, addresses, QPN,
// TOS, TTL, UDP port, P_Key, FECN/BECN, VLAN) change now and then; the
// template is made again exactly when a fixed field changed.
TEST(WireBuilder, HeaderTemplateMatchesWriteHeaders) {
  HeaderTemplate t;
  uint32_t rng = 12345, packets = 0, changes = 0;
  auto next = [&rng] { return rng = rng * 1103515245u + 12345u; };
  PacketSpec fixed = test::sample_spec(op::kWriteOnly, 0, false);
  for (int round = 0; round < 2000; ++round) {
    if (round % 37 == 0 || round % 53 == 0) {  // a new destination or attribute
      const uint32_t r = next();
      switch (r % 8) {
        case 0: fixed.dst_mac[5] = uint8_t(r >> 8); break;
        case 1: fixed.dst_ip = r; break;
        case 2: fixed.dest_qp = r >> 4; break;
        case 3: fixed.tos = uint8_t(r >> 8); fixed.ttl = uint8_t(r >> 16); break;
        case 4: fixed.udp_src_port = uint16_t(r >> 8); break;
        case 5: fixed.pkey = uint16_t(r >> 8); fixed.becn_fecn = uint8_t(r >> 16) & 0xC0; break;
        case 6: fixed.vlan = !fixed.vlan; fixed.vlan_tci = uint16_t(r >> 8); break;
        default: fixed.src_mac[0] = uint8_t(r >> 8) & 0xFE; fixed.src_ip = r >> 1; break;
      }
      ++changes;
    }
    uint8_t code;
    do code = uint8_t(next() >> 8); while (!opcode_info(code).valid());
    const OpcodeInfo& o = opcode_info(code);
    PacketSpec s = test::sample_spec(code, o.has(kOpPayload) ? next() % 1500 : 0, fixed.vlan);
    s.src_mac = fixed.src_mac;
    s.dst_mac = fixed.dst_mac;
    s.vlan_tci = fixed.vlan_tci;
    s.src_ip = fixed.src_ip;
    s.dst_ip = fixed.dst_ip;
    s.dest_qp = fixed.dest_qp;
    s.tos = fixed.tos;
    s.ttl = fixed.ttl;
    s.udp_src_port = fixed.udp_src_port;
    s.pkey = fixed.pkey;
    s.becn_fecn = fixed.becn_fecn;
    s.ip_id = uint16_t(next() >> 8);
    s.psn = next();
    s.se = next() & 0x100;
    s.migreq = next() & 0x100;
    s.ackreq = next() & 0x100;
    SCOPED_TRACE(std::string(o.name) + " round " + std::to_string(round));
    test::Frame want(frame_len(s), 0xEE), got(frame_len(s), 0xEE);
    const size_t off = write_headers(want.data(), want.size(), s);
    ASSERT_EQ(off, header_len(s));
    ASSERT_EQ(write_headers(got.data(), got.size(), s, &t), off);
    ASSERT_TRUE(std::equal(want.begin(), want.begin() + off, got.begin()))
        << "the templated headers differ from write_headers'";
    std::fill(got.begin(), got.end(), 0xEE);
    ASSERT_EQ(write_headers_only(got.data(), off, s, &t), off) << "cap = header length";
    ASSERT_TRUE(std::equal(want.begin(), want.begin() + off, got.begin()));
    ++packets;
  }
  EXPECT_EQ(packets, 2000u);
  // Made once at first and once per change that altered a fixed field (a
  // few draws repeat a value): never per packet.
  EXPECT_GE(t.rebuilds, 2u);
  EXPECT_LE(t.rebuilds, changes + 1);
}

// A template never writes past cap: under 64 bytes it is not used, and the
// refusals are write_headers' own.
TEST(WireBuilder, HeaderTemplateKeepsWithinCapAndRefuses) {
  HeaderTemplate t;
  const PacketSpec s = test::sample_spec(op::kAck, 0, false);  // 58-byte frame
  ASSERT_LT(frame_len(s), HeaderTemplate::kBytes);
  std::unique_ptr<uint8_t[]> exact(new uint8_t[frame_len(s)]);  // ASan sees an overrun
  ASSERT_EQ(write_headers(exact.get(), frame_len(s), s, &t), header_len(s));
  EXPECT_EQ(t.rebuilds, 0u) << "a cap under 64 bytes is written without the template";
  test::Frame f(70000);
  PacketSpec bad = test::sample_spec(0x15, 0, false);  // reserved opcode
  EXPECT_EQ(write_headers(f.data(), f.size(), bad, &t), 0u);
  bad = test::sample_spec(op::kAck, 4, false);  // payload on an ACK
  EXPECT_EQ(write_headers(f.data(), f.size(), bad, &t), 0u);
  bad = test::sample_spec(op::kSendOnly, 100, false);
  EXPECT_EQ(write_headers(f.data(), frame_len(bad) - 1, bad, &t), 0u);
}

TEST(WireBuilder, RxeStyleAckMatchesGoldenVector) {
  // roce-wire.md golden vector "RC ACK, rxe (pingpong_rc frame 13)", rebuilt field by field.
  PacketSpec s;
  s.src_ip = 0x0A01103D;
  s.dst_ip = 0x0A01103E;
  s.ip_id = 0x69C5;
  s.udp_src_port = 0xC420;
  s.opcode = op::kAck;
  s.pkey = 0xFFFF;
  s.dest_qp = 0x000021;
  s.psn = 0x59DFD7;
  s.aeth_syndrome = 0x1F;
  s.aeth_msn = 1;
  test::Frame f(frame_len(s));
  ASSERT_EQ(build_frame(f.data(), f.size(), s, nullptr), f.size());
  const uint8_t want[] = {0x45, 0x00, 0x00, 0x30, 0x69, 0xc5, 0x40, 0x00, 0x40, 0x11, 0x9c, 0x7b,
                          0x0a, 0x01, 0x10, 0x3d, 0x0a, 0x01, 0x10, 0x3e, 0xc4, 0x20, 0x12, 0xb7,
                          0x00, 0x1c, 0x00, 0x00, 0x11, 0x00, 0xff, 0xff, 0x00, 0x00, 0x00, 0x21,
                          0x00, 0x59, 0xdf, 0xd7, 0x1f, 0x00, 0x00, 0x01, 0xe6, 0x1d, 0x88, 0x92};
  ASSERT_EQ(f.size(), 14 + sizeof(want));
  EXPECT_EQ(test::Frame(f.begin() + 14, f.end()), test::Frame(want, want + sizeof(want)));
}

}  // namespace
}  // namespace droce::wire
