// CLC codec: byte-for-byte layouts of reference/smc-v2-linux61.md (B1 Proposal,
// A8/B5 Accept and Confirm, A18 Decline), exact sizes, round trips, and every
// kind of malformed message (RFC 7609 section 3.5; Linux 6.1 smc_clc.c).
#include "smc/wire/clc.h"

#include <gtest/gtest.h>

#include <cstring>
#include <functional>
#include <string>
#include <vector>

#include "tests/smc/wire/golden.h"

namespace droce::smc::wire {
namespace {

using test::Bytes;
using test::Exact;
using test::kSmcr;
using test::put;
using test::put_be;
using test::put_bytes;
using test::put_text;

const SystemId kSysId{0x12, 0x34, 0x02, 0x00, 0x00, 0x00, 0x00, 0x01};
const Mac kMac{0x02, 0x00, 0x00, 0x00, 0x00, 0x01};
const Gid kGid = ipv4_mapped_gid(0x0A000001);  // ::ffff:10.0.0.1
const Gid kGid2 = ipv4_mapped_gid(0x0A000102);
constexpr const char* kUeid = "DROCE-TEST.1";

Bytes encode(const ClcProposal& p) {
  Bytes b(kClcMaxLen);
  b.resize(encode_proposal(p, b));
  return b;
}
Bytes encode(const ClcAcceptConfirm& m) {
  Bytes b(kClcMaxLen);
  b.resize(encode_accept_confirm(m, b));
  return b;
}
Bytes encode(const ClcDecline& d) {
  Bytes b(kClcMaxLen);
  b.resize(encode_decline(d, b));
  return b;
}

// ---------------------------------------------------------------------------
// Proposal

ClcProposal v2_only(uint8_t n) {  // what a 6.1 client over rxe sends (B1), lcl zero (A5)
  ClcProposal p;
  p.version = 2;
  p.typev1 = SmcType::kNone;
  p.typev2 = SmcType::kR;
  p.eid_cnt = n;
  for (uint8_t i = 0; i < n; ++i) p.eids[i] = test::eid_of(std::string(kUeid) + char('A' + i));
  p.roce_v2_gid = kGid;
  return p;
}

TEST(ClcProposal, V2OnlyIsByteForByteB1) {
  Bytes g(156);
  put(g, 0, kSmcr);
  put(g, 4, {0x01, 0x00, 156, 0x22});  // type, length BE, version 2 / typev2 R / typev1 N
  // 8-37 lcl zero, 38-39 iparea_offset 0, 40-49 ISM GID and CHID zero.
  put(g, 50, {0x00, 0x1C});  // v2_ext_offset 28, counted from 52
  put(g, 80,
      {1, 0, 0, 0x00, 0, 0, 0, 0});  // eid_cnt, ism_gid_cnt, rsvd, flag, rsvd, smcd_v2_ext_offset
  put(g, 88, {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF, 10, 0, 0, 1});  // RoCEv2 GID
  put_text(g, 120, std::string(kUeid) + "A", 32);
  put(g, 152, kSmcr);
  const Bytes b = encode(v2_only(1));
  EXPECT_EQ(b, g) << test::first_diff(b, g) << "\n" << test::hex(b);

  ClcProposal d;
  ASSERT_EQ(decode_proposal(Exact(g).span(), &d), ClcError::kOk);
  EXPECT_EQ(d, v2_only(1));
}

TEST(ClcProposal, V2OnlyLengthIs124Plus32n) {
  for (uint8_t n = 0; n <= kClcMaxEids; ++n) {
    const ClcProposal p = v2_only(n);
    EXPECT_EQ(proposal_length(p), 124u + 32u * n);
    const Bytes b = encode(p);
    ASSERT_EQ(b.size(), 124u + 32u * n);
    EXPECT_EQ(b[7], 0x22);
    EXPECT_EQ(b[50] << 8 | b[51], 0x1C);
    EXPECT_EQ(b[80], n);
    ClcProposal d;
    ASSERT_EQ(decode_proposal(b, &d), ClcError::kOk) << int(n);
    EXPECT_EQ(d, p);
  }
}

ClcProposal v1_v2(uint8_t ipv6, uint8_t n) {
  ClcProposal p = v2_only(n);
  p.typev1 = SmcType::kR;
  p.peer_id = kSysId;
  p.gid = kGid;
  p.mac = kMac;
  p.ipv4_prefix = 0x0A000000;
  p.ipv4_prefix_len = 24;
  p.ipv6_count = ipv6;
  for (uint8_t i = 0; i < ipv6; ++i) {
    p.ipv6[i].prefix = test::gid_of({0xFD, 0x00, 0, i});
    p.ipv6[i].len = 64;
  }
  return p;
}

TEST(ClcProposal, V1AndV2IpPrefixAreaB1) {
  // IPv4 only: 132 + 32 n; the prefix area at 80, the v2 extension at 88.
  Bytes g(164);
  put(g, 0, kSmcr);
  put(g, 4, {0x01, 0x00, 164, 0x20});  // version 2, typev2 R, typev1 R
  put_bytes(g, 8, kSysId);
  put_bytes(g, 16, kGid);
  put_bytes(g, 32, kMac);
  put(g, 38, {0x00, 40});                  // iparea_offset: the SMC-D area comes first
  put(g, 50, {0x00, 36});                  // v2_ext_offset 28 + 8
  put(g, 80, {10, 0, 0, 0, 24, 0, 0, 0});  // subnet, prefix length, rsvd, IPv6 count
  put(g, 88, {1});
  put_bytes(g, 96, kGid);
  put_text(g, 128, std::string(kUeid) + "A", 32);
  put(g, 160, kSmcr);
  const Bytes b = encode(v1_v2(0, 1));
  EXPECT_EQ(b, g) << test::first_diff(b, g) << "\n" << test::hex(b);
  for (uint8_t n = 0; n <= 8; ++n) EXPECT_EQ(proposal_length(v1_v2(0, n)), 132u + 32u * n);

  // One IPv6 prefix: 17 more bytes before the extension, v2_ext_offset 53.
  const Bytes b6 = encode(v1_v2(1, 1));
  ASSERT_EQ(b6.size(), 181u);
  EXPECT_EQ(b6[87], 1);
  EXPECT_EQ(b6[88], 0xFD);
  EXPECT_EQ(b6[104], 64);
  EXPECT_EQ(b6[51], 53);
  EXPECT_EQ(b6[105], 1);  // eid_cnt
  EXPECT_EQ(Bytes(b6.begin() + 113, b6.begin() + 129), Bytes(kGid.begin(), kGid.end()));
  for (uint8_t k = 0; k <= 8; ++k) {
    const ClcProposal p = v1_v2(k, 2);
    const Bytes e = encode(p);
    ASSERT_EQ(e.size(), 132u + 17u * k + 64u);
    ClcProposal d;
    ASSERT_EQ(decode_proposal(e, &d), ClcError::kOk);
    EXPECT_EQ(d, p);
  }
}

TEST(ClcProposal, Version1IsTheRfcLayout) {
  ClcProposal p = v1_v2(1, 0);
  p.version = 1;
  p.typev2 = SmcType::kNone;
  p.roce_v2_gid = {};
  Bytes g(69);  // 40 + 8 + 17 + 4
  put(g, 0, kSmcr);
  put(g, 4, {0x01, 0x00, 69, 0x10});
  put_bytes(g, 8, kSysId);
  put_bytes(g, 16, kGid);
  put_bytes(g, 32, kMac);
  put(g, 40, {10, 0, 0, 0, 24, 0, 0, 1, 0xFD});
  put(g, 64, {64});
  put(g, 65, kSmcr);
  const Bytes b = encode(p);
  EXPECT_EQ(b, g) << test::first_diff(b, g);
  ClcProposal d;
  ASSERT_EQ(decode_proposal(g, &d), ClcError::kOk);
  EXPECT_EQ(d, p);

  // A v1 Proposal with the SMC-D area (iparea_offset 40) decodes the same.
  Bytes g40(40 + 40 + 8 + 4);
  put(g40, 0, kSmcr);
  put(g40, 4, {0x01, 0x00, 92, 0x10});
  put(g40, 38, {0, 40});
  put(g40, 80, {192, 168, 1, 0, 24});
  put(g40, 88, kSmcr);
  ASSERT_EQ(decode_proposal(g40, &d), ClcError::kOk);
  EXPECT_EQ(d.ipv4_prefix, 0xC0A80100u);
  EXPECT_EQ(d.ipv4_prefix_len, 24);
}

TEST(ClcProposal, SmcdOfferDecodesAndRoundTrips) {
  // A v2 Proposal offering R and D: the SMC-Dv2 extension (48 + 10 m) counts.
  ClcProposal p = v1_v2(0, 1);
  p.typev2 = SmcType::kBoth;
  p.ism_gid_cnt = 2;
  const Bytes b = encode(p);
  ASSERT_EQ(b.size(), 164u + 48u + 20u);
  EXPECT_EQ(b[89], 2);                         // ism_gid_cnt
  EXPECT_EQ(b[94] << 8 | b[95], 40 - 8 + 32);  // smcd_v2_ext_offset
  ClcProposal d;
  ASSERT_EQ(decode_proposal(b, &d), ClcError::kOk);
  EXPECT_EQ(d, p);
}

// Flips one field of a valid v2-only proposal and expects `want`.
void expect_proposal_error(const std::function<void(Bytes&)>& edit, ClcError want,
                           const char* what) {
  Bytes b = encode(v2_only(1));
  edit(b);
  ClcProposal d;
  EXPECT_EQ(decode_proposal(Exact(b).span(), &d), want) << what;
}

TEST(ClcProposal, MalformedGivesTheRightError) {
  auto len = [](Bytes& b, int n) { put_be(b, 5, uint16_t(n), 2); };
  expect_proposal_error([](Bytes& b) { b[3] = 0xC5; }, ClcError::kEyecatcher, "eyecatcher");
  expect_proposal_error([](Bytes& b) { b[155] = 0; }, ClcError::kTrailer, "trailer");
  expect_proposal_error([](Bytes& b) { b[4] = 2; }, ClcError::kType, "type Accept");
  expect_proposal_error([](Bytes& b) { b[4] = 9; }, ClcError::kType, "type 9");
  expect_proposal_error([](Bytes& b) { b[7] = 0x02; }, ClcError::kVersion, "version 0");
  expect_proposal_error([](Bytes& b) { b[7] = 0x12; }, ClcError::kVersion, "version 1 typev1 N");
  expect_proposal_error([&](Bytes& b) { len(b, 155); }, ClcError::kLength, "length - 1");
  expect_proposal_error([&](Bytes& b) { len(b, 157); }, ClcError::kTruncated, "length + 1");
  expect_proposal_error([&](Bytes& b) { len(b, 11); }, ClcError::kLength, "length 11");
  expect_proposal_error([](Bytes& b) { b[39] = 41; }, ClcError::kLayout, "iparea_offset 41");
  expect_proposal_error([](Bytes& b) { b[47] = 9; }, ClcError::kLayout,
                        "IPv6 count 9 (read even for typev1 N)");
  expect_proposal_error([](Bytes& b) { b[51] = 0; }, ClcError::kLayout, "v2_ext_offset 0");
  expect_proposal_error([](Bytes& b) { put_be(b, 50, 173, 2); }, ClcError::kLayout,
                        "v2_ext_offset 173");
  expect_proposal_error([](Bytes& b) { put_be(b, 50, 100, 2); }, ClcError::kLayout,
                        "extension into trailer");
  expect_proposal_error([](Bytes& b) { b[80] = 9; }, ClcError::kLayout, "eid_cnt 9");
  expect_proposal_error([](Bytes& b) { b[80] = 2; }, ClcError::kLength,
                        "eid_cnt 2 in a 1-EID length");
  expect_proposal_error([](Bytes& b) { b[7] = 0x20; }, ClcError::kLength,
                        "typev1 R without prefix area");
  expect_proposal_error([](Bytes& b) { b[7] = 0x26; }, ClcError::kLength,
                        "typev2 D without SMC-Dv2 ext");
  expect_proposal_error([](Bytes& b) { b[7] = 0x23; }, ClcError::kLayout,
                        "typev1 D needs iparea 40");
  // Version 3 is read as version 2 (Linux: anything but 1); SMCD eyecatchers pass.
  expect_proposal_error([](Bytes& b) { b[7] = 0x32; }, ClcError::kOk, "version 3");
  expect_proposal_error(
      [](Bytes& b) {
        b[3] = 0xC4;
        b[155] = 0xC4;
      },
      ClcError::kOk, "SMCD eyecatchers");
  // A v2_ext_offset that is not the natural 28 but keeps the extension in
  // bounds is accepted, as by Linux: the extension one byte earlier.
  Bytes b = encode(v2_only(1));
  std::memmove(&b[79], &b[80], 72);
  b[151] = 0;
  b[51] = 27;
  ClcProposal d;
  ASSERT_EQ(decode_proposal(Exact(b).span(), &d), ClcError::kOk);
  EXPECT_EQ(d, v2_only(1));
}

TEST(ClcProposal, EveryTruncationIsRejected) {
  for (const ClcProposal& p : {v2_only(1), v1_v2(2, 3)}) {
    const Bytes b = encode(p);
    for (size_t n = 0; n < b.size(); ++n) {
      ClcProposal d;
      const ClcError e = decode_proposal(Exact(b.data(), n).span(), &d);
      EXPECT_TRUE(e == ClcError::kTruncated) << n << ": " << clc_error_name(e);
    }
  }
}

TEST(ClcProposal, EncodeRefusesWhatItCannotWrite) {
  Bytes out(kClcMaxLen);
  ClcProposal p = v2_only(1);
  EXPECT_EQ(encode_proposal(p, std::span(out).first(155)), 0u);
  p.eid_cnt = 9;
  EXPECT_EQ(encode_proposal(p, out), 0u);
  p = v1_v2(8, 1);
  p.ipv6_count = 9;
  EXPECT_EQ(encode_proposal(p, out), 0u);
  p = v2_only(1);
  p.version = 0;
  EXPECT_EQ(encode_proposal(p, out), 0u);
  p.version = 1;
  p.typev1 = SmcType::kNone;
  EXPECT_EQ(encode_proposal(p, out), 0u);
  // The largest valid message fits kClcMaxLen exactly.
  p = v1_v2(8, 8);
  p.typev2 = SmcType::kBoth;
  p.ism_gid_cnt = 8;
  EXPECT_EQ(proposal_length(p), kClcMaxLen);
  EXPECT_EQ(encode_proposal(p, out), kClcMaxLen);
}

// ---------------------------------------------------------------------------
// Accept / Confirm

ClcAcceptConfirm accept_v2(bool first_contact) {
  ClcAcceptConfirm m;
  m.type = ClcType::kAccept;
  m.version = 2;
  m.first_contact = first_contact;
  m.peer_id = kSysId;
  m.gid = kGid;
  m.mac = kMac;
  m.qpn = 0x000123;
  m.rkey = 0x11223344;
  m.rmbe_idx = 1;
  m.rmbe_alert_token = 0xA1B2C3D4;
  m.rmbe_size = 2;  // 64 KiB
  m.mtu = 3;        // IB_MTU_1024
  m.rmb_vaddr = 0x00007F0012345000;
  m.psn = 0xABCDEF;
  m.eid = test::eid_of(kUeid);
  if (first_contact) {
    m.fce.v2_direct = true;
    m.fce.os_type = 2;
    m.fce.hostname = test::eid_of("droce-host");
  }
  return m;
}

Bytes accept_golden(size_t len, int type, int byte7) {  // B5 offsets 0-103
  Bytes g(len);
  put(g, 0, kSmcr);
  put(g, 4, {type, int(len >> 8), int(len & 0xFF), byte7});
  put_bytes(g, 8, kSysId);
  put_bytes(g, 16, kGid);
  put_bytes(g, 32, kMac);
  put(g, 38, {0x00, 0x01, 0x23, 0x11, 0x22, 0x33, 0x44, 1, 0xA1, 0xB2, 0xC3, 0xD4, 0x23, 0x00});
  put(g, 52, {0x00, 0x00, 0x7F, 0x00, 0x12, 0x34, 0x50, 0x00, 0x00, 0xAB, 0xCD, 0xEF});
  if (len > 68) put_text(g, 64, kUeid, 32);
  put(g, len - 4, kSmcr);
  return g;
}

TEST(ClcAcceptConfirm, AcceptV2FirstContactIs160Bytes) {
  Bytes g = accept_golden(160, 2, 0x28);
  put(g, 104, {0x80, 0x20});  // v2_direct; os_type Linux, release 0
  put_text(g, 108, "droce-host", 32);
  // 140-155: the 16 reserved bytes (gle.reserved) that are always there.
  const Bytes b = encode(accept_v2(true));
  EXPECT_EQ(b, g) << test::first_diff(b, g) << "\n" << test::hex(b);
  EXPECT_EQ(accept_confirm_length(accept_v2(true)), kClcAcceptV2FirstContactLen);
  ClcAcceptConfirm d;
  ASSERT_EQ(decode_accept_confirm(Exact(g).span(), ClcType::kAccept, &d), ClcError::kOk);
  EXPECT_EQ(d, accept_v2(true));
}

TEST(ClcAcceptConfirm, ConfirmV2FirstContactIs164Plus16g) {
  for (uint8_t gcnt = 0; gcnt <= 2; ++gcnt) {
    ClcAcceptConfirm m = accept_v2(true);
    m.type = ClcType::kConfirm;
    m.gid_cnt = gcnt;
    m.gids[0] = kGid;
    m.gids[1] = kGid2;
    if (gcnt < 2) m.gids[1] = {};
    if (gcnt < 1) m.gids[0] = {};
    Bytes g = accept_golden(164 + 16 * gcnt, 3, 0x28);
    put(g, 104, {0x80, 0x20});
    put_text(g, 108, "droce-host", 32);
    put(g, 156, {gcnt, 0, 0, 0});
    if (gcnt >= 1) put_bytes(g, 160, kGid);
    if (gcnt >= 2) put_bytes(g, 176, kGid2);
    const Bytes b = encode(m);
    EXPECT_EQ(b, g) << int(gcnt) << ": " << test::first_diff(b, g);
    ClcAcceptConfirm d;
    ASSERT_EQ(decode_accept_confirm(Exact(g).span(), ClcType::kConfirm, &d), ClcError::kOk);
    EXPECT_EQ(d, m);
  }
}

TEST(ClcAcceptConfirm, NotFirstContactV2Is108AndV1Is68) {
  const Bytes b = encode(accept_v2(false));
  const Bytes g = accept_golden(108, 2, 0x20);
  EXPECT_EQ(b, g) << test::first_diff(b, g);
  ClcAcceptConfirm m = accept_v2(false);
  m.type = ClcType::kConfirm;
  EXPECT_EQ(encode(m), accept_golden(108, 3, 0x20));

  ClcAcceptConfirm v1 = accept_v2(true);
  v1.version = 1;
  v1.eid = {};
  v1.fce = {};
  const Bytes g1 = accept_golden(68, 2, 0x18);
  EXPECT_EQ(encode(v1), g1) << test::first_diff(encode(v1), g1);
  ClcAcceptConfirm d;
  ASSERT_EQ(decode_accept_confirm(g1, ClcType::kAccept, &d), ClcError::kOk);
  EXPECT_EQ(d, v1);
  v1.first_contact = false;
  EXPECT_EQ(encode(v1)[7], 0x10);
}

TEST(ClcAcceptConfirm, MalformedGivesTheRightError) {
  struct Case {
    const char* what;
    std::function<void(Bytes&)> edit;
    ClcError want;
    ClcType expected = ClcType::kAccept;
  };
  const std::vector<Case> cases = {
      {"eyecatcher", [](Bytes& b) { b[0] = 0; }, ClcError::kEyecatcher},
      {"trailer", [](Bytes& b) { b[159] = 0xD8; }, ClcError::kTrailer},
      {"type Confirm when Accept expected", [](Bytes&) {}, ClcError::kType, ClcType::kConfirm},
      {"typev1 N", [](Bytes& b) { b[7] = 0x2A; }, ClcError::kType},
      {"typev1 D", [](Bytes& b) { b[7] = 0x29; }, ClcError::kType},
      {"version 0", [](Bytes& b) { b[7] = 0x08; }, ClcError::kVersion},
      {"v2 length 107",
       [](Bytes& b) {
         put_be(b, 5, 107, 2);
         put(b, 103, kSmcr);
       },
       ClcError::kLength},
      {"v1 length 160", [](Bytes& b) { b[7] = 0x18; }, ClcError::kLength},
      {"first contact without room for the fce",
       [](Bytes& b) {
         put_be(b, 5, 140, 2);
         put(b, 136, kSmcr);
       },
       ClcError::kLength},
      {"rmbe size code 6", [](Bytes& b) { b[50] = 0x63; }, ClcError::kLayout},
      {"rmbe size code 15", [](Bytes& b) { b[50] = 0xF3; }, ClcError::kLayout},
      {"mtu 0", [](Bytes& b) { b[50] = 0x20; }, ClcError::kLayout},
      {"mtu 6", [](Bytes& b) { b[50] = 0x26; }, ClcError::kLayout},
      {"length beyond the bytes", [](Bytes& b) { put_be(b, 5, 161, 2); }, ClcError::kTruncated},
      {"version 3 reads as 2", [](Bytes& b) { b[7] = 0x38; }, ClcError::kOk},
      {"SMCD eyecatchers",
       [](Bytes& b) {
         b[3] = 0xC4;
         b[159] = 0xC4;
       },
       ClcError::kOk},
  };
  for (const Case& c : cases) {
    Bytes b = encode(accept_v2(true));
    c.edit(b);
    ClcAcceptConfirm d;
    EXPECT_EQ(decode_accept_confirm(Exact(b).span(), c.expected, &d), c.want) << c.what;
  }
  ClcAcceptConfirm d;
  const Bytes b = encode(accept_v2(true));
  EXPECT_EQ(decode_accept_confirm(b, ClcType::kDecline, &d), ClcError::kType);
}

TEST(ClcAcceptConfirm, ConfirmGidListBounds) {
  ClcAcceptConfirm m = accept_v2(true);
  m.type = ClcType::kConfirm;
  m.gid_cnt = 1;
  m.gids[0] = kGid;
  Bytes b = encode(m);  // 180 bytes
  ClcAcceptConfirm d;
  b[156] = 9;
  EXPECT_EQ(decode_accept_confirm(Exact(b).span(), ClcType::kConfirm, &d), ClcError::kLayout);
  b[156] = 2;  // two GIDs claimed, room for one
  EXPECT_EQ(decode_accept_confirm(Exact(b).span(), ClcType::kConfirm, &d), ClcError::kLength);
  // A longer-than-needed v2 message is fine (Linux: length >= 108).
  Bytes longer = encode(accept_v2(false));
  longer.resize(120);
  put_be(longer, 5, 120, 2);
  put(longer, 116, kSmcr);
  EXPECT_EQ(decode_accept_confirm(Exact(longer).span(), ClcType::kAccept, &d), ClcError::kOk);
  EXPECT_EQ(d, accept_v2(false));
  Bytes out(kClcMaxLen);
  m.gid_cnt = 9;
  EXPECT_EQ(encode_accept_confirm(m, out), 0u);
  m.gid_cnt = 8;
  EXPECT_EQ(encode_accept_confirm(m, out), 164u + 128u);
  m.type = ClcType::kDecline;
  EXPECT_EQ(encode_accept_confirm(m, out), 0u);
}

TEST(ClcAcceptConfirm, EveryTruncationIsRejected) {
  const Bytes b = encode(accept_v2(true));
  for (size_t n = 0; n < b.size(); ++n) {
    ClcAcceptConfirm d;
    EXPECT_EQ(decode_accept_confirm(Exact(b.data(), n).span(), ClcType::kAccept, &d),
              ClcError::kTruncated)
        << n;
  }
}

// ---------------------------------------------------------------------------
// Decline

TEST(ClcDecline, V2Is44BytesA18) {
  ClcDecline d;
  d.version = 2;
  d.peer_id = kSysId;
  d.diag = decline::kNoSmcRDev;
  Bytes g(44);
  put(g, 0, kSmcr);
  put(g, 4, {0x04, 0x00, 44, 0x20});
  put_bytes(g, 8, kSysId);
  put(g, 16, {0x03, 0x03, 0x00, 0x02, 0x20});  // diagnosis, os_type Linux
  put(g, 40, kSmcr);
  EXPECT_EQ(encode(d), g) << test::first_diff(encode(d), g);
  ClcDecline r;
  ASSERT_EQ(decode_decline(Exact(g).span(), &r), ClcError::kOk);
  EXPECT_EQ(r, d);

  d.out_of_sync = true;  // SYNCERR: the first-contact bit
  d.diag = decline::kSyncErr;
  const Bytes s = encode(d);
  EXPECT_EQ(s[7], 0x28);
  ASSERT_EQ(decode_decline(s, &r), ClcError::kOk);
  EXPECT_TRUE(r.out_of_sync);
  d.diag_ext = {1, 2, 3, 0xFFFFFFFF};
  ASSERT_EQ(decode_decline(encode(d), &r), ClcError::kOk);
  EXPECT_EQ(r, d);
}

TEST(ClcDecline, V1Is28Bytes) {
  ClcDecline d;
  d.version = 1;
  d.os_type = 0;  // as Linux writes a v1 Decline
  d.peer_id = kSysId;
  d.diag = decline::kNoSmcDev;
  Bytes g(28);
  put(g, 0, kSmcr);
  put(g, 4, {0x04, 0x00, 28, 0x10});
  put_bytes(g, 8, kSysId);
  put(g, 16, {0x03, 0x03, 0x00, 0x00});
  put(g, 24, kSmcr);
  EXPECT_EQ(encode(d), g) << test::first_diff(encode(d), g);
  ClcDecline r;
  ASSERT_EQ(decode_decline(g, &r), ClcError::kOk);
  EXPECT_EQ(r, d);
}

TEST(ClcDecline, MalformedGivesTheRightError) {
  ClcDecline d;
  Bytes b = encode(d);
  ClcDecline r;
  b[40] = 0;  // the trailer is not checked (A14)
  EXPECT_EQ(decode_decline(Exact(b).span(), &r), ClcError::kOk);
  b[7] = 0x10;  // version 1 wants 28 bytes
  EXPECT_EQ(decode_decline(Exact(b).span(), &r), ClcError::kLength);
  b[7] = 0x20;
  put_be(b, 5, 43, 2);
  EXPECT_EQ(decode_decline(Exact(b).span(), &r), ClcError::kLength);
  put_be(b, 5, 44, 2);
  b[4] = 1;
  EXPECT_EQ(decode_decline(Exact(b).span(), &r), ClcError::kType);
  b[4] = 4;
  b[2] = 0;
  EXPECT_EQ(decode_decline(Exact(b).span(), &r), ClcError::kEyecatcher);
  b = encode(d);
  for (size_t n = 0; n < b.size(); ++n)
    EXPECT_EQ(decode_decline(Exact(b.data(), n).span(), &r), ClcError::kTruncated) << n;
}

}  // namespace
}  // namespace droce::smc::wire
