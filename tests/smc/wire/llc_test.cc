// LLC codec: the 44-byte layouts of RFC 7609 section 3.6 / smc-wire.md 2.6,
// SMC-Rv2 as x86 Linux 6.1 writes it (little-endian length_v2 and ADD LINK
// num_rkeys: smc-v2-linux61.md A1-A3, A12, B7), round trips, hostile input.
#include "smc/wire/llc.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "tests/smc/wire/golden.h"

namespace droce::smc::wire {
namespace {

using test::Bytes;
using test::Exact;
using test::put;
using test::put_be;
using test::put_bytes;

const Mac kMac{0x02, 0x00, 0x00, 0x00, 0x00, 0x01};
const Gid kGid = ipv4_mapped_gid(0x0A000001);
const Gid kGid2 = ipv4_mapped_gid(0x0A000002);

Bytes encode(const LlcMsg& m) {
  Bytes b(kLlcV2MaxLen);
  b.resize(encode_llc(m, b));
  return b;
}

LlcMsg decode_ok(const Bytes& b) {
  LlcMsg m;
  const LlcError e = decode_llc(Exact(b).span(), &m);
  EXPECT_EQ(e, LlcError::kOk) << llc_error_name(e) << "\n" << test::hex(b);
  return m;
}

// Encodes m, compares with the golden image, decodes the image back to m
// (apart from the header's length, which decode reports as found).
template <class T>
void expect_golden(const T& m, const Bytes& golden) {
  const Bytes b = encode(m);
  EXPECT_EQ(b, golden) << test::first_diff(b, golden) << "\n" << test::hex(b);
  EXPECT_EQ(llc_length(m), golden.size());
  const LlcMsg d = decode_ok(golden);
  ASSERT_TRUE(std::holds_alternative<T>(d));
  T want = m;
  want.hdr.type = LlcType(golden[0] & 0x0F);  // decode names the type it found
  want.hdr.length = uint16_t(golden.size());
  EXPECT_EQ(std::get<T>(d), want);
}

LlcHeader hdr(bool v2, uint8_t flags) {
  LlcHeader h;
  h.v2 = v2;
  h.flags = flags;
  return h;
}

LlcConfirmLink confirm_link(bool v2, uint8_t flags) {
  LlcConfirmLink m;
  m.hdr = hdr(v2, flags);
  m.sender_mac = kMac;
  m.sender_gid = kGid;
  m.sender_qpn = 0x000011;
  m.link_num = 1;
  m.link_uid = {0xDE, 0xAD, 0xBE, 0xEF};
  m.max_links = kLlcMaxLinks;
  return m;
}

Bytes confirm_link_golden(int type, int flags) {
  Bytes g(44);
  put(g, 0, {type, 0x2C, 0x00, flags});  // v2: LE16 44 = 2C 00 (A1)
  put_bytes(g, 4, kMac);
  put_bytes(g, 10, kGid);
  put(g, 26, {0x00, 0x00, 0x11, 1, 0xDE, 0xAD, 0xBE, 0xEF, 2});
  return g;
}

TEST(LlcGolden, ConfirmLinkV1AndV2) {
  expect_golden(confirm_link(false, 0x03), confirm_link_golden(0x01, 0x03));
  expect_golden(confirm_link(false, 0x83), confirm_link_golden(0x01, 0x83));
  expect_golden(confirm_link(true, 0x03), confirm_link_golden(0x21, 0x03));
  expect_golden(confirm_link(true, 0x83), confirm_link_golden(0x21, 0x83));
}

LlcAddLink add_link(bool v2, size_t nrkeys) {
  LlcAddLink m;
  m.hdr = hdr(v2, 0);
  m.sender_mac = kMac;
  m.sender_gid = kGid;
  m.sender_qpn = 0x000012;
  m.link_num = 2;
  m.mtu = 3;
  m.psn = 0x123456;
  if (v2) {
    m.has_v2_ext = true;
    m.v2_direct = true;
    m.client_target_gid = kGid2;
    for (size_t i = 0; i < nrkeys; ++i)
      m.rkeys.push_back({uint32_t(0x100 + i), uint32_t(0x200 + i), 0x7F0000001000ull + i});
  }
  return m;
}

Bytes add_link_golden(int type, int b1, int b2, int flags, size_t len) {
  Bytes g(len);
  put(g, 0, {type, b1, b2, flags});
  put_bytes(g, 4, kMac);
  put_bytes(g, 12, kGid);
  put(g, 28, {0x00, 0x00, 0x12, 2, 0x03, 0x12, 0x34, 0x56});
  return g;
}

TEST(LlcGolden, AddLinkV2WithLittleEndianCounts) {
  // 72 + 16 n; length_v2 and num_rkeys host order (A3): 88 = 58 00, count 01 00.
  Bytes g = add_link_golden(0x22, 0x58, 0x00, 0x00, 88);
  put(g, 44, {0x80, 0x00});  // v2_direct
  put_bytes(g, 46, kGid2);   // client_target_gid
  put(g, 70, {0x01, 0x00});
  put(g, 72, {0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x02, 0x00});
  put(g, 80, {0x00, 0x00, 0x7F, 0x00, 0x00, 0x00, 0x10, 0x00});
  expect_golden(add_link(true, 1), g);

  // Three RMBs: 120 bytes, the third triple at 104.
  const Bytes b3 = encode(add_link(true, 3));
  ASSERT_EQ(b3.size(), 120u);
  EXPECT_EQ(b3[1], 120);
  EXPECT_EQ(b3[2], 0);
  EXPECT_EQ(b3[70], 3);
  EXPECT_EQ(b3[71], 0);
  EXPECT_EQ(b3[107], 0x02);  // rkey_existing 0x102
  // No RMBs yet: the extension alone, 72 bytes.
  EXPECT_EQ(encode(add_link(true, 0)).size(), 72u);
  // The largest: 255 rkeys, 4152 bytes (B7), length 38 10 little-endian.
  const Bytes big = encode(add_link(true, 255));
  ASSERT_EQ(big.size(), 4152u);
  EXPECT_EQ(big[1], 0x38);
  EXPECT_EQ(big[2], 0x10);
  LlcMsg d = decode_ok(big);
  EXPECT_EQ(std::get<LlcAddLink>(d).rkeys.size(), 255u);
  EXPECT_EQ(encode(add_link(true, 256)).size(), 0u);
}

TEST(LlcGolden, AddLinkRejectV2CarriesReason0) {
  // Linux copies the request, sets flags 0x80|0x40 and reason 1, then
  // re-inits the header: on x86 byte 2 becomes 00 (A2).
  LlcAddLink rej = add_link(true, 0);
  rej.has_v2_ext = false;
  rej.v2_direct = false;
  rej.client_target_gid = {};
  rej.hdr.flags = kLlcFlagResp | kLlcAddLinkRejected;
  rej.hdr.add_link_rej_rsn = kLlcAddLinkRejNoAltPath;
  const Bytes b = encode(rej);
  ASSERT_EQ(b.size(), 44u);
  EXPECT_EQ(Bytes(b.begin(), b.begin() + 4), (Bytes{0x22, 0x2C, 0x00, 0xC0}));
  rej.hdr.add_link_rej_rsn = 0;
  expect_golden(rej, add_link_golden(0x22, 0x2C, 0x00, 0xC0, 44));
  // In v1 the nibble is there: 02 2C 01 C0.
  LlcAddLink v1 = add_link(false, 0);
  v1.hdr.flags = 0xC0;
  v1.hdr.add_link_rej_rsn = 1;
  expect_golden(v1, add_link_golden(0x02, 0x2C, 0x01, 0xC0, 44));
}

TEST(LlcGolden, AddLinkContV1) {
  LlcAddLinkCont m;
  m.hdr = hdr(false, kLlcFlagResp);
  m.link_num = 2;
  m.num_rkeys = 5;  // five still to come: this message carries two
  m.rkeys[0] = {1, 2, 3};
  m.rkeys[1] = {4, 5, 0x0102030405060708};
  Bytes g(44);
  put(g, 0, {0x03, 0x2C, 0x00, 0x80, 2, 5});
  put(g, 8, {0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 3});
  put(g, 24, {0, 0, 0, 4, 0, 0, 0, 5, 1, 2, 3, 4, 5, 6, 7, 8});
  expect_golden(m, g);
  m.num_rkeys = 1;  // the last one: only the first pair is written or read
  const Bytes one = encode(m);
  EXPECT_EQ(one[24 + 3], 0);
  EXPECT_EQ(std::get<LlcAddLinkCont>(decode_ok(one)).rkeys[1], LlcRkeyPair{});
  m.hdr.v2 = true;  // 0x23 does not exist
  EXPECT_EQ(encode(m).size(), 0u);
}

TEST(LlcGolden, ReqAddLinkV2) {
  LlcReqAddLink m;
  m.hdr = hdr(true, 0);
  m.gids = {kGid, kGid2};
  Bytes g(60);  // 28 + 16 g
  put(g, 0, {0x25, 60, 0x00, 0x00});
  put(g, 24, {2});
  put_bytes(g, 28, kGid);
  put_bytes(g, 44, kGid2);
  expect_golden(m, g);
  // The negative response: 44 bytes, data zeroed, flag 0x80.
  LlcReqAddLink neg;
  neg.hdr = hdr(true, kLlcFlagResp);
  Bytes n(44);
  put(n, 0, {0x25, 0x2C, 0x00, 0x80});
  expect_golden(neg, n);
  m.hdr.v2 = false;  // 0x05 has no receive handler (A12)
  EXPECT_EQ(encode(m).size(), 0u);
}

TEST(LlcGolden, DeleteLink) {
  LlcDeleteLink m;
  m.hdr = hdr(true, kLlcDeleteLinkAll | kLlcDeleteLinkOrderly);
  m.link_num = 0;
  m.reason = kLlcDelProgInitTerm;
  Bytes g(44);
  put(g, 0, {0x24, 0x2C, 0x00, 0x60, 0x00, 0x00, 0x03, 0x00, 0x00});
  expect_golden(m, g);
  m.hdr = hdr(false, kLlcFlagResp);
  m.link_num = 3;
  m.reason = kLlcDelUnknownLink;
  put(g, 0, {0x04, 0x2C, 0x00, 0x80, 0x03, 0x00, 0x10, 0x00, 0x00});
  expect_golden(m, g);
}

TEST(LlcGolden, ConfirmRkey) {
  LlcConfirmRkey m;
  m.hdr = hdr(true, 0);
  m.rtoken[0] = {1, 0xAABBCCDD, 0x1122334455667788};
  m.rtoken[1] = {2, 0x01020304, 0x0A0B0C0D0E0F1011};
  Bytes g(44);
  put(g, 0, {0x26, 0x2C, 0x00, 0x00});
  put(g, 4, {1, 0xAA, 0xBB, 0xCC, 0xDD, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88});
  put(g, 17, {2, 1, 2, 3, 4, 0x0A, 0x0B, 0x0C, 0x0D, 0x0E, 0x0F, 0x10, 0x11});
  expect_golden(m, g);
  m.hdr = hdr(false, kLlcFlagResp | kLlcConfirmRkeyNegative | kLlcConfirmRkeyRetry);
  put(g, 0, {0x06, 0x2C, 0x00, 0xB0});
  expect_golden(m, g);
}

TEST(LlcGolden, TestLink) {
  LlcTestLink m;
  m.hdr = hdr(true, kLlcFlagResp);
  for (uint8_t i = 0; i < 16; ++i) m.user_data[i] = uint8_t(0xF0 + i);
  Bytes g(44);
  put(g, 0, {0x27, 0x2C, 0x00, 0x80});
  for (int i = 0; i < 16; ++i) g[4 + i] = uint8_t(0xF0 + i);
  expect_golden(m, g);
  m.hdr.v2 = false;
  g[0] = 0x07;
  expect_golden(m, g);
}

TEST(LlcGolden, DeleteRkey) {
  LlcDeleteRkey m;
  m.hdr = hdr(true, 0);
  m.num_rkeys = 1;
  m.rkeys = {0xCAFEF00D};
  Bytes g(44);
  put(g, 0, {0x29, 0x2C, 0x00, 0x00, 1, 0, 0, 0, 0xCA, 0xFE, 0xF0, 0x0D});
  expect_golden(m, g);
  // v1 response with an error mask (bit 7 = first rkey invalid).
  m.hdr = hdr(false, kLlcFlagResp | kLlcConfirmRkeyNegative);
  m.err_mask = 0x80;
  put(g, 0, {0x09, 0x2C, 0x00, 0xA0, 1, 0x80});
  expect_golden(m, g);
  // v1 holds 8; v2 holds 9 in 44 bytes and more in a longer message.
  m = LlcDeleteRkey{};
  m.hdr = hdr(false, 0);
  for (uint32_t i = 0; i < 9; ++i) m.rkeys.push_back(i + 1);
  m.num_rkeys = 9;
  EXPECT_EQ(encode(m).size(), 0u);
  m.hdr.v2 = true;
  EXPECT_EQ(encode(m).size(), 44u);
  for (uint32_t i = 9; i < 12; ++i) m.rkeys.push_back(i + 1);
  m.num_rkeys = 12;
  const Bytes b = encode(m);
  ASSERT_EQ(b.size(), 56u);
  EXPECT_EQ(b[1], 56);
  EXPECT_EQ(b[55], 12);
  EXPECT_EQ(std::get<LlcDeleteRkey>(decode_ok(b)).rkeys, m.rkeys);
  m.num_rkeys = 11;  // count and list disagree
  EXPECT_EQ(encode(m).size(), 0u);
}

TEST(LlcGolden, ConfirmRkeyContIsParsedAsOther) {
  Bytes g(44);
  put(g, 0, {0x08, 0x2C, 0x00, 0x80, 1});
  const LlcMsg d = decode_ok(g);
  ASSERT_TRUE(std::holds_alternative<LlcOther>(d));
  EXPECT_EQ(std::get<LlcOther>(d).hdr.type, LlcType::kConfirmRkeyCont);
  EXPECT_EQ(std::get<LlcOther>(d).hdr.flags, 0x80);
}

TEST(LlcHeader, ReceiveTableAndLengthRules) {
  Bytes b = confirm_link_golden(0x01, 0x03);
  LlcHeader h;
  LlcMsg m;
  for (int t = 0; t < 256; ++t) {
    b[0] = uint8_t(t);
    b[1] = 44;
    b[2] = 0;
    const bool v1 = (t >= 0x01 && t <= 0x04) || (t >= 0x06 && t <= 0x09);
    const bool v2 = t == 0x21 || t == 0x22 || (t >= 0x24 && t <= 0x27) || t == 0x29;
    const LlcError want = v1 || v2 ? LlcError::kOk : LlcError::kType;
    EXPECT_EQ(decode_llc_header(b, &h), want) << std::hex << t;
    if (want == LlcError::kOk && t != 0x22 && t != 0x25 && t != 0x29) {
      EXPECT_EQ(decode_llc(Exact(b).span(), &m), LlcError::kOk) << std::hex << t;
      EXPECT_EQ(h.v2, v2);
      EXPECT_EQ(uint8_t(h.type), t & 0x0F);
    }
  }
  b[0] = 0x01;
  for (int len : {0, 43, 45, 255}) {
    b[1] = uint8_t(len);
    EXPECT_EQ(decode_llc_header(b, &h), LlcError::kLength) << len;
  }
  b[0] = 0x21;
  put(b, 1, {43, 0});  // LE 43
  EXPECT_EQ(decode_llc_header(b, &h), LlcError::kLength);
  put(b, 1, {0x00, 0x01});  // LE 256: accepted, the length is not trusted (A1)
  EXPECT_EQ(decode_llc_header(b, &h), LlcError::kOk);
  EXPECT_EQ(h.length, 256);
  // What a big-endian sender writes: 00 2C reads as 0x2C00 >= 44, accepted.
  put(b, 1, {0x00, 0x2C});
  ASSERT_EQ(decode_llc_header(b, &h), LlcError::kOk);
  EXPECT_EQ(h.length, 0x2C00);
  // ... while 256 big-endian (01 00) is 1 little-endian: dropped.
  put(b, 1, {0x01, 0x00});
  EXPECT_EQ(decode_llc_header(b, &h), LlcError::kLength);
  // A v1 message's nibble in byte 2 is the reject reason; v2 has none.
  b = add_link_golden(0x02, 0x2C, 0xF1, 0xC0, 44);
  ASSERT_EQ(decode_llc_header(b, &h), LlcError::kOk);
  EXPECT_EQ(h.add_link_rej_rsn, 1);
  for (size_t n = 0; n < 44; ++n)
    EXPECT_EQ(decode_llc_header(Exact(b.data(), n).span(), &h), LlcError::kTruncated);
}

TEST(LlcHostile, CountsBeyondTheMessage) {
  LlcMsg m;
  // ADD LINK v2 longer than 44 but without the whole extension.
  Bytes b = encode(add_link(true, 2));
  for (size_t n = 45; n < b.size(); ++n)
    EXPECT_EQ(decode_llc(Exact(b.data(), n).span(), &m), LlcError::kTruncated) << n;
  // num_rkeys 3 with room for 2.
  b[70] = 3;
  EXPECT_EQ(decode_llc(Exact(b).span(), &m), LlcError::kTruncated);
  // A big-endian count 00 02: Linux keeps the low byte, 0 rkeys (A3).
  put(b, 70, {0x00, 0x02});
  m = decode_ok(b);
  EXPECT_TRUE(std::get<LlcAddLink>(m).rkeys.empty());
  EXPECT_TRUE(std::get<LlcAddLink>(m).has_v2_ext);
  // 0x0101: the low byte, 1.
  put(b, 70, {0x01, 0x01});
  EXPECT_EQ(std::get<LlcAddLink>(decode_ok(b)).rkeys.size(), 1u);
  // A 44-byte v2 ADD LINK has no extension; a v1 one ignores bytes past 44.
  b.resize(44);
  EXPECT_FALSE(std::get<LlcAddLink>(decode_ok(b)).has_v2_ext);
  Bytes v1 = encode(add_link(false, 0));
  v1.resize(100, 0xEE);
  EXPECT_FALSE(std::get<LlcAddLink>(decode_ok(v1)).has_v2_ext);

  // DELETE RKEY: v1 more than 8, v2 more than the message holds.
  Bytes d(44);
  put(d, 0, {0x09, 0x2C, 0x00, 0x00, 9});
  EXPECT_EQ(decode_llc(Exact(d).span(), &m), LlcError::kLayout);
  d[0] = 0x29;
  EXPECT_EQ(decode_llc(Exact(d).span(), &m), LlcError::kOk);  // 9 fit in a v2 44-byte message
  d[4] = 10;
  EXPECT_EQ(decode_llc(Exact(d).span(), &m), LlcError::kTruncated);
  d[4] = 255;
  EXPECT_EQ(decode_llc(Exact(d).span(), &m), LlcError::kTruncated);

  // REQ ADD LINK: two GIDs claimed in 44 bytes.
  Bytes r(44);
  put(r, 0, {0x25, 0x2C, 0x00, 0x00});
  r[24] = 2;
  EXPECT_EQ(decode_llc(Exact(r).span(), &m), LlcError::kTruncated);
  r[24] = 1;
  EXPECT_EQ(std::get<LlcReqAddLink>(decode_ok(r)).gids.size(), 1u);
}

TEST(LlcRoundTrip, EveryMessageDecodesToWhatWasEncoded) {
  std::vector<LlcMsg> all = {confirm_link(false, 3), confirm_link(true, 0x83), add_link(false, 0),
                             add_link(true, 0), add_link(true, 7)};
  LlcAddLinkCont c;
  c.num_rkeys = 2;
  c.rkeys[1] = {9, 8, 7};
  all.push_back(c);
  LlcReqAddLink r;
  r.hdr.v2 = true;
  r.gids = {kGid, kGid2, kGid};
  all.push_back(r);
  LlcDeleteLink dl;
  dl.hdr.v2 = true;
  dl.reason = kLlcDelLostPath;
  all.push_back(dl);
  LlcConfirmRkey cr;
  cr.rtoken[2] = {3, 4, 5};
  all.push_back(cr);
  LlcTestLink tl;
  tl.user_data[15] = 1;
  all.push_back(tl);
  LlcDeleteRkey dr;
  dr.hdr.v2 = true;
  dr.num_rkeys = 30;
  dr.rkeys.assign(30, 0x11111111);
  all.push_back(dr);
  LlcOther o;
  o.hdr.type = LlcType::kConfirmRkeyCont;
  all.push_back(o);
  for (const LlcMsg& m : all) {
    const Bytes b = encode(m);
    ASSERT_EQ(b.size(), llc_length(m)) << m.index();
    ASSERT_GE(b.size(), kLlcMsgLen);
    LlcMsg d = decode_ok(b);
    ASSERT_EQ(d.index(), m.index());
    EXPECT_EQ(encode(d), b) << m.index();
  }
  Bytes small(43);
  EXPECT_EQ(encode_llc(confirm_link(false, 3), small), 0u);
  for (LlcError e :
       {LlcError::kOk, LlcError::kTruncated, LlcError::kType, LlcError::kLength, LlcError::kLayout})
    EXPECT_STRNE(llc_error_name(e), "unknown");
}

}  // namespace
}  // namespace droce::smc::wire
