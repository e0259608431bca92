// Every single-byte change of valid CLC, LLC and CDC messages, and every
// truncation, decoded from exactly sized copies: under the ASan build any
// read outside the input fails the test; a decode that succeeds must
// re-encode to bytes that decode to the same message. (The libFuzzer targets
// in tests/fuzz go further; this is the deterministic part that ctest runs.)
#include <gtest/gtest.h>

#include <functional>
#include <vector>

#include "smc/wire/cdc.h"
#include "smc/wire/clc.h"
#include "smc/wire/llc.h"
#include "tests/smc/wire/golden.h"

namespace droce::smc::wire {
namespace {

using test::Bytes;
using test::Exact;

// Calls check(bytes) for every truncation and every single-byte value at every offset.
void sweep(const Bytes& valid, const std::function<void(const Bytes&)>& check) {
  for (size_t n = 0; n <= valid.size(); ++n) check(Bytes(valid.begin(), valid.begin() + n));
  Bytes b = valid;
  for (size_t i = 0; i < b.size(); ++i) {
    const uint8_t keep = b[i];
    for (int v = 0; v < 256; ++v) {
      b[i] = uint8_t(v);
      check(b);
    }
    b[i] = keep;
  }
}

template <class Msg, class Decode, class Encode>
std::function<void(const Bytes&)> clc_check(Decode decode, Encode encode, size_t* ok) {
  return [=](const Bytes& in) {
    Msg m;
    if (decode(Exact(in).span(), &m) != ClcError::kOk) return;
    ++*ok;
    Bytes out(kClcMaxLen);
    out.resize(encode(m, out));
    ASSERT_FALSE(out.empty()) << test::hex(in);
    Msg m2;
    ASSERT_EQ(decode(Exact(out).span(), &m2), ClcError::kOk) << test::hex(in);
    ASSERT_TRUE(m2 == m) << test::hex(in);
  };
}

TEST(Sweep, ClcMessages) {
  ClcProposal p;
  p.typev1 = SmcType::kR;
  p.ipv6_count = 1;
  p.eid_cnt = 2;
  p.roce_v2_gid = ipv4_mapped_gid(0x0A000001);
  ClcAcceptConfirm a;
  a.first_contact = true;
  a.mtu = 3;
  ClcAcceptConfirm c = a;
  c.type = ClcType::kConfirm;
  c.gid_cnt = 2;
  ClcDecline d;
  Bytes buf(kClcMaxLen);
  size_t ok = 0;
  Bytes pb(buf.begin(), buf.begin() + encode_proposal(p, buf));
  sweep(pb, clc_check<ClcProposal>(decode_proposal, encode_proposal, &ok));
  auto acc = [](std::span<const uint8_t> s, ClcAcceptConfirm* m) {
    return decode_accept_confirm(s, ClcType::kAccept, m);
  };
  auto conf = [](std::span<const uint8_t> s, ClcAcceptConfirm* m) {
    return decode_accept_confirm(s, ClcType::kConfirm, m);
  };
  Bytes ab(buf.begin(), buf.begin() + encode_accept_confirm(a, buf));
  sweep(ab, clc_check<ClcAcceptConfirm>(acc, encode_accept_confirm, &ok));
  Bytes cb(buf.begin(), buf.begin() + encode_accept_confirm(c, buf));
  sweep(cb, clc_check<ClcAcceptConfirm>(conf, encode_accept_confirm, &ok));
  Bytes db(buf.begin(), buf.begin() + encode_decline(d, buf));
  sweep(db, clc_check<ClcDecline>(decode_decline, encode_decline, &ok));
  ASSERT_EQ(pb.size(), 40u + 40 + 25 + 40 + 64 + 4);
  ASSERT_EQ(cb.size(), 164u + 32);
  EXPECT_GT(ok, 4u * 100) << "most single-byte changes of reserved or data bytes still decode";
}

TEST(Sweep, LlcMessages) {
  std::vector<LlcMsg> msgs;
  LlcAddLink al;
  al.hdr.v2 = true;
  al.has_v2_ext = true;
  al.rkeys = {{1, 2, 3}, {4, 5, 6}};
  msgs.push_back(al);
  LlcConfirmLink cl;
  msgs.push_back(cl);
  LlcReqAddLink rq;
  rq.hdr.v2 = true;
  rq.gids.resize(2);
  msgs.push_back(rq);
  LlcDeleteRkey dr;
  dr.hdr.v2 = true;
  dr.num_rkeys = 9;
  dr.rkeys.assign(9, 7);
  msgs.push_back(dr);
  LlcAddLinkCont ac;
  ac.num_rkeys = 2;
  msgs.push_back(ac);
  size_t ok = 0;
  for (const LlcMsg& m : msgs) {
    Bytes b(kLlcV2MaxLen);
    b.resize(encode_llc(m, b));
    ASSERT_FALSE(b.empty());
    sweep(b, [&](const Bytes& in) {
      LlcMsg d;
      if (decode_llc(Exact(in).span(), &d) != LlcError::kOk) return;
      ++ok;
      Bytes out(kLlcV2MaxLen);
      out.resize(encode_llc(d, out));
      ASSERT_FALSE(out.empty()) << test::hex(in);
      LlcMsg d2;
      ASSERT_EQ(decode_llc(Exact(out).span(), &d2), LlcError::kOk) << test::hex(in);
      Bytes out2(kLlcV2MaxLen);
      out2.resize(encode_llc(d2, out2));
      ASSERT_EQ(out2, out) << test::hex(in);
    });
  }
  EXPECT_GT(ok, 1000u);
}

TEST(Sweep, CdcMessage) {
  CdcMsg m;
  m.seqno = 7;
  m.prod = {1, 2};
  Bytes b(kCdcMsgLen);
  encode_cdc(m, std::span<uint8_t, kCdcMsgLen>(b.data(), kCdcMsgLen));
  size_t ok = 0, bad = 0;
  sweep(b, [&](const Bytes& in) {
    CdcMsg d;
    if (decode_cdc(Exact(in).span(), &d) != CdcError::kOk) {
      ++bad;
      return;
    }
    ++ok;
    Bytes out(kCdcMsgLen);
    encode_cdc(d, std::span<uint8_t, kCdcMsgLen>(out.data(), kCdcMsgLen));
    CdcMsg d2;
    ASSERT_EQ(decode_cdc(out, &d2), CdcError::kOk);
    ASSERT_EQ(d2, d);
  });
  // 26 truncations and 2 * 255 wrong type/length bytes are refused.
  EXPECT_EQ(bad, 26u + 2 * 255);
  EXPECT_EQ(ok, 45u - 26 + 44 * 256 - 2 * 255);
}

}  // namespace
}  // namespace droce::smc::wire
