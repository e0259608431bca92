// CM MAD codec: every message round-trips with every field at a distinctive
// value, sub-byte fields land on the bits IBTA vol. 1 chapter 12 gives them
// (golden bytes), and malformed or truncated input is refused with its reason.
#include <gtest/gtest.h>

#include <cstring>
#include <vector>

#include "nic/cm/ip_hdr.h"
#include "nic/cm/mad.h"

namespace droce::cm {
namespace {

template <size_t N>
void fill_pattern(std::array<uint8_t, N>* a, uint8_t seed) {
  for (size_t i = 0; i < N; ++i) (*a)[i] = uint8_t(seed + i * 7);
}

Req sample_req() {
  Req r;
  r.local_comm_id = 0x11223344;
  r.vendor_id = 0xABCDEF;
  r.service_id = 0x0000000001061C06;
  r.local_ca_guid = 0x0250'56FF'FEA7'7D03;
  r.local_qkey = 0x01234567;
  r.local_qpn = 0xABCDEF;
  r.responder_resources = 0x12;
  r.local_eecn = 0x345678;
  r.initiator_depth = 0x9A;
  r.remote_eecn = 0xBCDEF0;
  r.remote_cm_response_timeout = 0x15;
  r.transport_type = kTransportXrc;
  r.e2e_flow_control = true;
  r.starting_psn = 0xFEDCBA;
  r.local_cm_response_timeout = 0x0B;
  r.retry_count = 5;
  r.pkey = 0x8001;
  r.path_mtu = 5;
  r.rdc_exists = true;
  r.rnr_retry_count = 6;
  r.max_cm_retries = 0xE;
  r.srq = true;
  r.extended_transport_type = 3;
  for (CmPath* p : {&r.primary, &r.alternate}) {
    p->local_lid = 0x1234;
    p->remote_lid = 0x5678;
    fill_pattern(&p->local_gid, 0x10);
    fill_pattern(&p->remote_gid, 0x20);
    p->flow_label = 0xABCDE;
    p->packet_rate = 0x2A;
    p->traffic_class = 0xB8;
    p->hop_limit = 63;
    p->sl = 0xC;
    p->subnet_local = true;
    p->local_ack_timeout = 0x13;
  }
  r.alternate.flow_label = 0x12345;
  r.sap_supported = true;
  fill_pattern(&r.private_data, 0x30);
  return r;
}

Rep sample_rep() {
  Rep r;
  r.local_comm_id = 0xA1B2C3D4;
  r.remote_comm_id = 0x11223344;
  r.local_qkey = 0x76543210;
  r.local_qpn = 0x00102B;
  r.local_eecn = 0x0A0B0C;
  r.starting_psn = 0xFEBD3D;
  r.vendor_id = 0x123456;
  r.responder_resources = 4;
  r.initiator_depth = 8;
  r.target_ack_delay = 0x0F;
  r.failover_accepted = 2;
  r.e2e_flow_control = true;
  r.rnr_retry_count = 5;
  r.srq = true;
  r.local_ca_guid = 0x0250'56FF'FEA7'129F;
  fill_pattern(&r.private_data, 0x40);
  return r;
}

std::vector<CmMsg> samples() {
  std::vector<CmMsg> v;
  v.push_back(sample_req());
  Mra mra{0x01020304, 0x05060708, kMsgRep, 24, {}};
  fill_pattern(&mra.private_data, 1);
  v.push_back(mra);
  Rej rej{0x0A0B0C0D, 0x0E0F1011, kMsgOther, 72, uint16_t(RejReason::kConsumerDefined), {}, {}};
  fill_pattern(&rej.ari, 2);
  fill_pattern(&rej.private_data, 3);
  v.push_back(rej);
  v.push_back(sample_rep());
  Rtu rtu{0x21222324, 0x25262728, {}};
  fill_pattern(&rtu.private_data, 4);
  v.push_back(rtu);
  Dreq dreq{0x31323334, 0x35363738, 0x00ABCD, {}};
  fill_pattern(&dreq.private_data, 5);
  v.push_back(dreq);
  Drep drep{0x41424344, 0x45464748, {}};
  fill_pattern(&drep.private_data, 6);
  v.push_back(drep);
  SidrReq sreq{0x51525354, 0xFFFF, 0x0000000001110FA0, {}};
  fill_pattern(&sreq.private_data, 7);
  v.push_back(sreq);
  SidrRep srep{0x61626364, kSidrReject, 72, 0x778899, 0x00C0FF, 0x0000000001110FA0, 0x01234567, {}, {}};
  fill_pattern(&srep.info, 8);
  fill_pattern(&srep.private_data, 9);
  v.push_back(srep);
  return v;
}

CmMad with_hdr(const CmMsg& msg) {
  CmMad m;
  m.hdr.tid = 0x0000000226DC5C06;
  m.hdr.attr_mod = 0;
  m.msg = msg;
  return m;
}

TEST(CmMad, EveryMessageRoundTrips) {
  for (const CmMsg& msg : samples()) {
    SCOPED_TRACE(attr_name(attr_id_of(msg)));
    const CmMad m = with_hdr(msg);
    uint8_t buf[kMadLen];
    encode_cm_mad(m, buf);
    EXPECT_EQ(buf[0], 1);
    EXPECT_EQ(buf[1], 0x07);
    EXPECT_EQ(buf[2], 2);
    EXPECT_EQ(buf[3], 0x03);
    EXPECT_EQ(uint16_t(buf[16] << 8 | buf[17]), attr_id_of(msg));
    CmMad back;
    ASSERT_EQ(decode_cm_mad(buf, &back), MadError::kOk);
    EXPECT_EQ(back.hdr.attr_id, attr_id_of(msg));
    EXPECT_TRUE(back.msg == m.msg);
    uint8_t again[kMadLen];
    encode_cm_mad(back, again);
    EXPECT_EQ(0, std::memcmp(buf, again, kMadLen));
  }
}

// Sub-byte fields at the bit positions of ibta_vol1_c12.h (bits counted from
// the MSB there; here as masks of the MAD byte at 24 + CM offset).
TEST(CmMad, ReqGoldenBits) {
  Req r;
  r.remote_cm_response_timeout = 0x1F;
  CmMad m = with_hdr(r);
  uint8_t b[kMadLen];
  encode_cm_mad(m, b);
  EXPECT_EQ(b[24 + 43], 0xF8);

  r = Req{};
  r.transport_type = 3;
  encode_cm_mad(with_hdr(r), b);
  EXPECT_EQ(b[24 + 43], 0x06);
  r = Req{};
  r.e2e_flow_control = true;
  encode_cm_mad(with_hdr(r), b);
  EXPECT_EQ(b[24 + 43], 0x01);

  r = Req{};
  r.local_cm_response_timeout = 20;
  r.retry_count = 7;
  r.path_mtu = 3;
  r.rnr_retry_count = 7;
  r.max_cm_retries = 15;
  encode_cm_mad(with_hdr(r), b);
  EXPECT_EQ(b[24 + 47], 0xA7);  // as in rping.pcap's REQ
  EXPECT_EQ(b[24 + 50], 0x37);
  EXPECT_EQ(b[24 + 51], 0xF0);

  r = Req{};
  r.srq = true;
  r.primary.sl = 0xF;
  r.primary.local_ack_timeout = 0x11;
  r.primary.flow_label = 0xFFFFF;
  r.primary.packet_rate = 0x3F;
  r.alternate.subnet_local = true;
  r.sap_supported = true;
  encode_cm_mad(with_hdr(r), b);
  EXPECT_EQ(b[24 + 51], 0x08);
  EXPECT_EQ(b[24 + 94], 0xF0);
  EXPECT_EQ(b[24 + 95], 0x88);
  EXPECT_EQ(b[24 + 88], 0xFF);
  EXPECT_EQ(b[24 + 89], 0xFF);
  EXPECT_EQ(b[24 + 90], 0xF0);
  EXPECT_EQ(b[24 + 91], 0x3F);
  EXPECT_EQ(b[24 + 138], 0x08);
  EXPECT_EQ(b[24 + 139], 0x04);
}

TEST(CmMad, RepAndShortMessagesGoldenBits) {
  Rep rep;
  rep.target_ack_delay = 15;
  rep.rnr_retry_count = 7;
  rep.vendor_id = 0xA1B2C3;
  uint8_t b[kMadLen];
  encode_cm_mad(with_hdr(rep), b);
  EXPECT_EQ(b[24 + 26], 0x78);  // as in rping.pcap's REP
  EXPECT_EQ(b[24 + 27], 0xE0);
  EXPECT_EQ(b[24 + 15], 0xA1);
  EXPECT_EQ(b[24 + 19], 0xB2);
  EXPECT_EQ(b[24 + 23], 0xC3);
  rep = Rep{};
  rep.srq = true;
  rep.failover_accepted = 3;
  encode_cm_mad(with_hdr(rep), b);
  EXPECT_EQ(b[24 + 27], 0x10);
  EXPECT_EQ(b[24 + 26], 0x06);

  Rej rej;
  rej.message_rejected = kMsgOther;
  rej.reject_info_len = 72;
  rej.reason = 28;
  encode_cm_mad(with_hdr(rej), b);
  EXPECT_EQ(b[24 + 8], 0x80);
  EXPECT_EQ(b[24 + 9], 72 << 1);
  EXPECT_EQ(b[24 + 10], 0);
  EXPECT_EQ(b[24 + 11], 28);

  Mra mra;
  mra.message_mraed = kMsgRep;
  mra.service_timeout = 24;
  encode_cm_mad(with_hdr(mra), b);
  EXPECT_EQ(b[24 + 8], 0x40);
  EXPECT_EQ(b[24 + 9], 24 << 3);

  SidrRep srep;
  srep.vendor_id = 0xA1B2C3;
  srep.qpn = 0x123456;
  encode_cm_mad(with_hdr(srep), b);
  EXPECT_EQ(b[24 + 6], 0xA1);
  EXPECT_EQ(b[24 + 7], 0xB2);
  EXPECT_EQ(b[24 + 8], 0x12);
  EXPECT_EQ(b[24 + 10], 0x56);
  EXPECT_EQ(b[24 + 11], 0xC3);

  Dreq dreq;
  dreq.remote_qpn = 0x00002B;
  encode_cm_mad(with_hdr(dreq), b);
  EXPECT_EQ(b[24 + 10], 0x2B);
  EXPECT_EQ(b[24 + 11], 0);
}

TEST(CmMad, ReservedBitsAreNotKept) {
  uint8_t b[kMadLen];
  encode_cm_mad(with_hdr(sample_rep()), b);
  b[24 + 27] |= 0x0F;  // REP byte 27 b3..b0 reserved
  CmMad m;
  ASSERT_EQ(decode_cm_mad(b, &m), MadError::kOk);
  EXPECT_TRUE(std::get<Rep>(m.msg) == sample_rep());
}

TEST(CmMad, TruncatedAndOverlongAreRefused) {
  uint8_t b[kMadLen + 1];
  encode_cm_mad(with_hdr(sample_req()), std::span<uint8_t, kMadLen>(b, kMadLen));
  for (size_t n = 0; n < kMadLen; ++n) {
    CmMad m;
    EXPECT_EQ(decode_cm_mad(std::span<const uint8_t>(b, n), &m), MadError::kTruncated) << n;
  }
  CmMad m;
  EXPECT_EQ(decode_cm_mad(std::span<const uint8_t>(b, kMadLen + 1), &m), MadError::kLength);
  MadHdr h;
  EXPECT_EQ(decode_mad_hdr(std::span<const uint8_t>(b, kMadHdrLen - 1), &h), MadError::kTruncated);
  EXPECT_EQ(decode_mad_hdr(std::span<const uint8_t>(b, kMadHdrLen), &h), MadError::kOk);
  EXPECT_EQ(h.attr_id, kAttrReq);
}

TEST(CmMad, WrongHeaderIsRefusedWithItsReason) {
  struct Case {
    size_t off;
    uint8_t value;
    MadError want;
  } cases[] = {
      {0, 2, MadError::kBaseVersion}, {0, 0, MadError::kBaseVersion},
      {1, 0x01, MadError::kClass},    {1, 0x81, MadError::kClass},  // SMP, vendor class
      {2, 1, MadError::kClassVersion}, {2, 3, MadError::kClassVersion},
      {3, 0x01, MadError::kMethod},   {3, 0x81, MadError::kMethod},  // GET, GetResp
  };
  for (const Case& c : cases) {
    uint8_t b[kMadLen];
    encode_cm_mad(with_hdr(Rtu{}), b);
    b[c.off] = c.value;
    CmMad m;
    EXPECT_EQ(decode_cm_mad(b, &m), c.want) << "byte " << c.off << " = " << int(c.value);
  }
}

TEST(CmMad, UnknownAttributesAreRefused) {
  for (uint16_t attr : {uint16_t(0), uint16_t(0x000F), kAttrLap, kAttrApr, uint16_t(0x001B), uint16_t(0xFFFF)}) {
    uint8_t b[kMadLen];
    encode_cm_mad(with_hdr(Rtu{}), b);
    b[16] = uint8_t(attr >> 8);
    b[17] = uint8_t(attr);
    CmMad m;
    EXPECT_EQ(decode_cm_mad(b, &m), MadError::kAttribute) << attr;
  }
}

TEST(CmMad, LengthFieldsBeyondTheirAreaAreRefused) {
  uint8_t b[kMadLen];
  Rej rej;
  rej.reject_info_len = 72;
  encode_cm_mad(with_hdr(rej), b);
  CmMad m;
  EXPECT_EQ(decode_cm_mad(b, &m), MadError::kOk);
  b[24 + 9] = 73 << 1;
  EXPECT_EQ(decode_cm_mad(b, &m), MadError::kField);
  b[24 + 9] = 0xFE;
  EXPECT_EQ(decode_cm_mad(b, &m), MadError::kField);

  SidrRep srep;
  srep.info_len = 72;
  encode_cm_mad(with_hdr(srep), b);
  EXPECT_EQ(decode_cm_mad(b, &m), MadError::kOk);
  b[24 + 5] = 73;
  EXPECT_EQ(decode_cm_mad(b, &m), MadError::kField);
  b[24 + 5] = 0xFF;
  EXPECT_EQ(decode_cm_mad(b, &m), MadError::kField);
}

TEST(CmMad, ErrorAndAttributeNames) {
  EXPECT_STREQ(mad_error_name(MadError::kMethod), "method");
  EXPECT_STREQ(attr_name(kAttrSidrRep), "SIDR_REP");
  EXPECT_STREQ(attr_name(kAttrLap), "LAP");
  EXPECT_STREQ(attr_name(0x1234), "unknown");
}

TEST(CmIpHdr, RoundTripAndGoldenBytes) {
  IpHdr h;
  h.port = 0xBD69;
  h.set_ipv4(0x0A01103E, 0x0A01103D);
  uint8_t b[kIpHdrLen];
  encode_ip_hdr(h, b);
  const uint8_t want[kIpHdrLen] = {0x00, 0x40, 0xBD, 0x69, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 10, 1, 16, 62,
                                   0,    0,    0,    0,    0, 0, 0, 0, 0, 0, 0, 0, 10, 1, 16, 61};
  EXPECT_EQ(0, std::memcmp(b, want, kIpHdrLen));
  IpHdr back;
  ASSERT_EQ(decode_ip_hdr(b, &back), IpHdrError::kOk);
  EXPECT_EQ(back, h);
  EXPECT_EQ(back.src_ipv4(), 0x0A01103Eu);
  EXPECT_EQ(back.dst_ipv4(), 0x0A01103Du);
}

TEST(CmIpHdr, BadInputIsRefused) {
  IpHdr h;
  h.set_ipv4(1, 2);
  uint8_t b[kIpHdrLen];
  encode_ip_hdr(h, b);
  IpHdr out;
  for (size_t n = 0; n < kIpHdrLen; ++n)
    EXPECT_EQ(decode_ip_hdr(std::span<const uint8_t>(b, n), &out), IpHdrError::kTruncated) << n;
  b[0] = 1;
  EXPECT_EQ(decode_ip_hdr(b, &out), IpHdrError::kVersion);
  b[0] = 0;
  b[1] = 0x50;
  EXPECT_EQ(decode_ip_hdr(b, &out), IpHdrError::kIpVersion);
  b[1] = 0x60;
  EXPECT_EQ(decode_ip_hdr(b, &out), IpHdrError::kOk);
  EXPECT_EQ(out.ip_version, 6);
  EXPECT_STREQ(ip_hdr_error_name(IpHdrError::kIpVersion), "ip_version");
}

TEST(CmServiceId, SplitAndJoin) {
  EXPECT_EQ(service_id(kPsTcp, 7174), 0x0000000001061C06ull);
  EXPECT_EQ(service_id(kPsUdp, 4000), 0x0000000001110FA0ull);
  EXPECT_EQ(service_id(kPsIb, 1), 0x00000000013F0001ull);
  auto s = split_service_id(0x0000000001061C06);
  ASSERT_TRUE(s.has_value());
  EXPECT_EQ(s->ps, kPsTcp);
  EXPECT_EQ(s->port, 7174);
  EXPECT_FALSE(split_service_id(0x0000000101061C06).has_value());  // top bits set
  EXPECT_FALSE(split_service_id(0x0000000001071C06).has_value());  // no such port space
}

}  // namespace
}  // namespace droce::cm
