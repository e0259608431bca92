// The opcode table (IBTA vol. 1, 9.2 table 35; annex A17 CNP) against the
// opcode table of shared/reference/roce-wire.md, and the header sizes of 6.2.
#include "nic/wire/opcodes.h"

#include <gtest/gtest.h>

#include <cstring>
#include <map>
#include <set>
#include <string>

#include "nic/wire/bth.h"
#include "nic/wire/eth.h"
#include "nic/wire/ipv4.h"
#include "nic/wire/udp.h"

namespace droce::wire {
namespace {

constexpr uint32_t kHeaderFlags =
    kOpReth | kOpAeth | kOpAtomicEth | kOpAtomicAck | kOpImm | kOpIeth | kOpDeth | kOpCnpBody |
    kOpFeth;

// roce-wire.md 6.3, "headers after BTH", per opcode that droce implements.
const std::map<uint8_t, uint32_t> kExpectedHeaders = [] {
  std::map<uint8_t, uint32_t> m;
  const uint32_t rc_uc[12] = {0,       0, 0, kOpImm, 0,       kOpImm,
                              kOpReth, 0, 0, kOpImm, kOpReth, kOpReth | kOpImm};
  for (int i = 0; i < 12; ++i) {
    m[uint8_t(0x00 + i)] = rc_uc[i];
    m[uint8_t(0x20 + i)] = rc_uc[i];
  }
  m[0x0C] = kOpReth;                 // RDMA_READ_REQUEST
  m[0x0D] = kOpAeth;                 // READ_RESPONSE_FIRST
  m[0x0E] = 0;                       // READ_RESPONSE_MIDDLE
  m[0x0F] = kOpAeth;                 // READ_RESPONSE_LAST
  m[0x10] = kOpAeth;                 // READ_RESPONSE_ONLY
  m[0x11] = kOpAeth;                 // ACKNOWLEDGE
  m[0x12] = kOpAeth | kOpAtomicAck;  // ATOMIC_ACKNOWLEDGE
  m[0x13] = kOpAtomicEth;            // COMPARE_SWAP
  m[0x14] = kOpAtomicEth;            // FETCH_ADD
  m[0x16] = kOpIeth;                 // SEND_LAST_WITH_INVALIDATE
  m[0x17] = kOpIeth;                 // SEND_ONLY_WITH_INVALIDATE
  m[0x1C] = kOpFeth | kOpReth;       // FLUSH (A19)
  m[0x1D] = kOpReth;                 // ATOMIC_WRITE (A19): RETH + 8-byte payload
  m[0x64] = kOpDeth;                 // UD SEND_ONLY
  m[0x65] = kOpDeth | kOpImm;        // UD SEND_ONLY_WITH_IMMEDIATE
  m[0x81] = kOpCnpBody;              // CNP: 16 reserved bytes
  return m;
}();

TEST(WireOpcodes, ValidSetIsExactlyTheReferenceTable) {
  for (int i = 0; i < 256; ++i) {
    SCOPED_TRACE(i);
    const OpcodeInfo& o = opcode_info(uint8_t(i));
    const bool expected = kExpectedHeaders.count(uint8_t(i)) != 0;
    EXPECT_EQ(o.valid(), expected);
  }
}

TEST(WireOpcodes, TransportSets) {
  std::set<int> rc, uc, ud, cnp;
  for (int i = 0; i < 256; ++i) {
    switch (opcode_info(uint8_t(i)).transport) {
      case Transport::kRc:
        rc.insert(i);
        break;
      case Transport::kUc:
        uc.insert(i);
        break;
      case Transport::kUd:
        ud.insert(i);
        break;
      case Transport::kCnp:
        cnp.insert(i);
        break;
      case Transport::kNone:
        EXPECT_FALSE(opcode_info(uint8_t(i)).valid()) << i;
        break;
    }
  }
  std::set<int> want_rc;
  for (int i = 0x00; i <= 0x14; ++i) want_rc.insert(i);
  want_rc.insert(0x16);
  want_rc.insert(0x17);
  want_rc.insert(0x1C);
  want_rc.insert(0x1D);
  std::set<int> want_uc;
  for (int i = 0x20; i <= 0x2B; ++i) want_uc.insert(i);
  EXPECT_EQ(rc, want_rc);
  EXPECT_EQ(uc, want_uc);
  EXPECT_EQ(ud, (std::set<int>{0x64, 0x65}));
  EXPECT_EQ(cnp, (std::set<int>{0x81}));
}

TEST(WireOpcodes, HeadersMatchReferenceAndExtLenIsTheirSum) {
  for (const auto& [code, headers] : kExpectedHeaders) {
    SCOPED_TRACE(int(code));
    const OpcodeInfo& o = opcode_info(code);
    ASSERT_TRUE(o.valid());
    EXPECT_EQ(o.flags & kHeaderFlags, headers);
    size_t sum = 0;
    if (o.has(kOpDeth)) sum += sizeof(Deth);
    if (o.has(kOpFeth)) sum += sizeof(Feth);
    if (o.has(kOpReth)) sum += sizeof(Reth);
    if (o.has(kOpAeth)) sum += sizeof(Aeth);
    if (o.has(kOpAtomicEth)) sum += sizeof(AtomicEth);
    if (o.has(kOpAtomicAck)) sum += sizeof(AtomicAckEth);
    if (o.has(kOpImm)) sum += sizeof(ImmDt);
    if (o.has(kOpIeth)) sum += sizeof(Ieth);
    if (o.has(kOpCnpBody)) sum += sizeof(CnpBody);
    EXPECT_EQ(o.ext_len, sum);
  }
}

TEST(WireOpcodes, OffsetsAreInIbtaOrderAndDoNotOverlap) {
  // IBTA order: DETH, FETH, RETH, AETH, AtomicETH, AtomicAckETH, ImmDt, IETH.
  for (const auto& [code, headers] : kExpectedHeaders) {
    SCOPED_TRACE(int(code));
    const OpcodeInfo& o = opcode_info(code);
    size_t next = 0;
    auto check = [&](uint32_t flag, uint8_t off, size_t size) {
      if (!o.has(flag)) return;
      EXPECT_EQ(off, next);
      next += size;
    };
    check(kOpDeth, o.deth_off, sizeof(Deth));
    check(kOpFeth, o.feth_off, sizeof(Feth));
    check(kOpReth, o.reth_off, sizeof(Reth));
    check(kOpAeth, o.aeth_off, sizeof(Aeth));
    check(kOpAtomicEth, o.atomic_eth_off, sizeof(AtomicEth));
    check(kOpAtomicAck, o.atomic_ack_off, sizeof(AtomicAckEth));
    check(kOpImm, o.imm_off, sizeof(ImmDt));
    check(kOpIeth, o.ieth_off, sizeof(Ieth));
    if (o.has(kOpCnpBody)) next += sizeof(CnpBody);
    EXPECT_EQ(next, o.ext_len);
  }
}

TEST(WireOpcodes, Names) {
  EXPECT_STREQ(opcode_name(0x04), "RC_SEND_ONLY");
  EXPECT_STREQ(opcode_name(0x0A), "RC_RDMA_WRITE_ONLY");
  EXPECT_STREQ(opcode_name(0x0C), "RC_RDMA_READ_REQUEST");
  EXPECT_STREQ(opcode_name(0x11), "RC_ACKNOWLEDGE");
  EXPECT_STREQ(opcode_name(0x12), "RC_ATOMIC_ACKNOWLEDGE");
  EXPECT_STREQ(opcode_name(0x17), "RC_SEND_ONLY_WITH_INVALIDATE");
  EXPECT_STREQ(opcode_name(0x24), "UC_SEND_ONLY");
  EXPECT_STREQ(opcode_name(0x2B), "UC_RDMA_WRITE_ONLY_WITH_IMMEDIATE");
  EXPECT_STREQ(opcode_name(0x64), "UD_SEND_ONLY");
  EXPECT_STREQ(opcode_name(0x65), "UD_SEND_ONLY_WITH_IMMEDIATE");
  EXPECT_STREQ(opcode_name(0x81), "CNP");
  EXPECT_STREQ(opcode_name(0x15), "UNKNOWN");
  EXPECT_STREQ(opcode_name(0x1C), "RC_FLUSH");
  EXPECT_STREQ(opcode_name(0x1D), "RC_ATOMIC_WRITE");
  EXPECT_STREQ(opcode_name(0x1E), "UNKNOWN");
  EXPECT_STREQ(opcode_name(0xFF), "UNKNOWN");
  std::set<std::string> names;
  for (int i = 0; i < 256; ++i) {
    const OpcodeInfo& o = opcode_info(uint8_t(i));
    if (!o.valid()) {
      EXPECT_EQ(o.name, nullptr) << i;
      continue;
    }
    ASSERT_NE(o.name, nullptr) << i;
    const char* prefix = o.transport == Transport::kRc   ? "RC_"
                         : o.transport == Transport::kUc ? "UC_"
                         : o.transport == Transport::kUd ? "UD_"
                                                         : "CNP";
    EXPECT_EQ(std::strncmp(o.name, prefix, std::strlen(prefix)), 0) << o.name;
    EXPECT_TRUE(names.insert(o.name).second) << "duplicate name " << o.name;
    // RC and UC share operation codes and names.
    if (o.transport == Transport::kUc) {
      EXPECT_STREQ(o.name + 3, opcode_info(uint8_t(i - 0x20)).name + 3);
    }
  }
}

TEST(WireOpcodes, RoleFlags) {
  for (int i = 0; i < 256; ++i) {
    const OpcodeInfo& o = opcode_info(uint8_t(i));
    if (!o.valid()) continue;
    SCOPED_TRACE(o.name);
    // Exactly one position in a message.
    const int pos = o.has(kOpFirst) + o.has(kOpMiddle) + o.has(kOpLast) + o.has(kOpOnly);
    EXPECT_EQ(pos, 1);
    EXPECT_EQ(o.has(kOpStart), o.has(kOpFirst) || o.has(kOpOnly));
    EXPECT_EQ(o.has(kOpEnd), o.has(kOpLast) || o.has(kOpOnly));
    if (o.transport != Transport::kCnp) {
      EXPECT_NE(o.has(kOpRequest), o.has(kOpResponse));
    }
  }
  EXPECT_FALSE(opcode_info(op::kReadRequest).has(kOpPayload));
  EXPECT_FALSE(opcode_info(op::kAck).has(kOpPayload));
  EXPECT_FALSE(opcode_info(op::kAtomicAck).has(kOpPayload));
  EXPECT_FALSE(opcode_info(op::kCmpSwap).has(kOpPayload));
  EXPECT_FALSE(opcode_info(op::kCnp).has(kOpPayload));
  EXPECT_FALSE(opcode_info(op::kFlush).has(kOpPayload));
  EXPECT_TRUE(opcode_info(op::kFlush).has(kOpRequest | kOpFlush | kOpOnly));
  EXPECT_TRUE(opcode_info(op::kAtomicWrite).has(kOpPayload));
  EXPECT_TRUE(opcode_info(op::kAtomicWrite).has(kOpRequest | kOpAtomicWrite | kOpOnly));
  // Neither is a WRITE, READ or atomic for the responder's generic paths.
  for (uint8_t c : {op::kFlush, op::kAtomicWrite}) {
    EXPECT_FALSE(opcode_info(c).flags & (kOpWrite | kOpRead | kOpAtomic | kOpSend)) << int(c);
  }
  EXPECT_TRUE(opcode_info(op::kReadRespMiddle).has(kOpPayload));
  EXPECT_TRUE(opcode_info(op::kWriteLastImm).has(kOpComp));
  EXPECT_FALSE(opcode_info(op::kWriteLast).has(kOpComp));
}

TEST(WireHeaders, SizesEqualTheSpec) {
  EXPECT_EQ(sizeof(EthHdr), 14u);
  EXPECT_EQ(sizeof(VlanTag), 4u);
  EXPECT_EQ(sizeof(Ipv4Hdr), 20u);
  EXPECT_EQ(sizeof(Ipv6Hdr), 40u);
  EXPECT_EQ(sizeof(UdpHdr), 8u);
  EXPECT_EQ(sizeof(Bth), 12u);
  EXPECT_EQ(sizeof(Reth), 16u);
  EXPECT_EQ(sizeof(Aeth), 4u);
  EXPECT_EQ(sizeof(AtomicEth), 28u);
  EXPECT_EQ(sizeof(AtomicAckEth), 8u);
  EXPECT_EQ(sizeof(ImmDt), 4u);
  EXPECT_EQ(sizeof(Ieth), 4u);
  EXPECT_EQ(sizeof(Deth), 8u);
  EXPECT_EQ(sizeof(CnpBody), 16u);
  EXPECT_EQ(sizeof(Feth), 4u);
}

TEST(WireHeaders, MaskedAccessorsKeepNeighbouringBits) {
  Bth b{};
  b.set_byte4(0xC0);
  b.set_dest_qp(0x1ABCDEF);  // 25 bits: only the low 24 are kept
  EXPECT_EQ(b.dest_qp(), 0xABCDEFu);
  EXPECT_EQ(b.byte4(), 0xC0);
  EXPECT_TRUE(b.becn());
  b.set_ackreq(true);
  b.set_psn(0xFFFFFF);
  EXPECT_TRUE(b.ackreq());
  b.set_psn(0x1000000);
  EXPECT_EQ(b.psn(), 0u);
  EXPECT_TRUE(b.ackreq());
  b.set_flags(true, false, 3);
  EXPECT_TRUE(b.se());
  EXPECT_FALSE(b.migreq());
  EXPECT_EQ(b.pad(), 3);
  EXPECT_EQ(b.tver(), 0);

  Aeth a{};
  a.set(Aeth::make_syndrome(AethType::kNak, uint8_t(NakCode::kRemoteAccessError)), 0x1234567);
  EXPECT_EQ(a.syndrome(), 0x62);
  EXPECT_EQ(a.type(), AethType::kNak);
  EXPECT_EQ(a.value(), 2);
  EXPECT_EQ(a.msn(), 0x234567u);

  // FETH (A19.4.1): placement type bits 3:0, selectivity level bits 5:4.
  Feth f{};
  f.set(kFlushGlobal | kFlushPersistent, kFlushMr);
  EXPECT_EQ(f.bits.get(), 0x13u);
  EXPECT_EQ(f.placement(), 3);
  EXPECT_EQ(f.selectivity(), kFlushMr);
  f.bits.set(0xFFFFFFC1);  // reserved bits set by a peer are ignored
  EXPECT_EQ(f.placement(), kFlushGlobal);
  EXPECT_EQ(f.selectivity(), 0);

  Deth d{};
  d.set_src_qp(0xFF000001);
  EXPECT_EQ(d.src_qp(), 1u);
  EXPECT_EQ(d.rsvd_srcqp.get(), 1u);  // reserved byte written as zero
}

TEST(WireUdp, SourcePortIsInRangeDeterministicAndSpread) {
  std::set<uint16_t> ports;
  for (uint32_t src = 1; src <= 64; ++src) {
    for (uint32_t dst = 1; dst <= 64; ++dst) {
      const uint16_t p = roce_udp_src_port(src, dst);
      EXPECT_GE(p, 0xC000);
      EXPECT_EQ(p, roce_udp_src_port(src, dst));
      ports.insert(p);
    }
  }
  // 4096 QP pairs into 16384 ports: a reasonable hash leaves few collisions.
  EXPECT_GT(ports.size(), 3000u);
  EXPECT_NE(roce_udp_src_port(17, 18), roce_udp_src_port(18, 17));
}

}  // namespace
}  // namespace droce::wire
