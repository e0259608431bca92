// The CM MADs of the real rdma_rxe captures rping.pcap and rdma_cm.pcap
// (tests/data/rxe-captures): every one decodes, re-encodes to the same 256
// bytes, and carries the values TShark 4.0 shows for it.
#include <gtest/gtest.h>

#include <cstring>
#include <map>
#include <string>
#include <vector>

#include "nic/cm/ip_hdr.h"
#include "nic/cm/mad.h"
#include "nic/wire/packet.h"
#include "tests/nic/wire/test_util.h"

namespace droce::cm {
namespace {

struct CapturedMad {
  size_t frame;  // 1-based, as tshark numbers frames
  std::vector<uint8_t> bytes;
};

// Every UD SEND to QP1 of a capture, its 256-byte payload.
std::vector<CapturedMad> cm_mads(const char* file) {
  std::string err;
  auto frames = wire::test::read_pcap(wire::test::captures_dir() / file, &err);
  EXPECT_TRUE(err.empty()) << err;
  std::vector<CapturedMad> out;
  for (size_t i = 0; i < frames.size(); ++i) {
    wire::PacketView v;
    if (wire::parse_frame(frames[i].data(), frames[i].size(), &v) != wire::ParseError::kOk) continue;
    if (v.bth().dest_qp() != 1) continue;
    EXPECT_EQ(v.bth().opcode, (wire::op::kUd | wire::op::kSendOnly)) << "frame " << i + 1;
    EXPECT_EQ(v.deth().qkey.get(), wire::kGsiQkey) << "frame " << i + 1;
    EXPECT_EQ(v.deth().src_qp(), 1u) << "frame " << i + 1;
    out.push_back({i + 1, std::vector<uint8_t>(v.payload(), v.payload() + v.payload_len)});
  }
  return out;
}

// Frame number -> attribute, from `tshark -r F -Y infiniband.bth.destqp==1`.
const std::map<size_t, uint16_t> kRping = {
    {1, kAttrReq}, {2, kAttrRep}, {3, kAttrRtu}, {64, kAttrDreq}, {65, kAttrDrep}};
const std::map<size_t, uint16_t> kRdmaCm = {
    {1, kAttrReq},   {2, kAttrRep},   {3, kAttrRtu},   {24, kAttrReq},  {25, kAttrRep},  {30, kAttrRtu},
    {91, kAttrDreq}, {92, kAttrDreq}, {93, kAttrDrep}, {94, kAttrDrep}, {95, kAttrDreq}, {96, kAttrDrep}};

void check_round_trips(const char* file, const std::map<size_t, uint16_t>& expected) {
  SCOPED_TRACE(file);
  const auto mads = cm_mads(file);
  ASSERT_EQ(mads.size(), expected.size());
  for (const CapturedMad& m : mads) {
    SCOPED_TRACE("frame " + std::to_string(m.frame));
    ASSERT_EQ(m.bytes.size(), kMadLen);
    CmMad mad;
    ASSERT_EQ(decode_cm_mad(m.bytes, &mad), MadError::kOk);
    ASSERT_TRUE(expected.count(m.frame));
    EXPECT_EQ(mad.hdr.attr_id, expected.at(m.frame));
    EXPECT_EQ(attr_id_of(mad.msg), mad.hdr.attr_id);
    uint8_t again[kMadLen];
    encode_cm_mad(mad, again);
    for (size_t i = 0; i < kMadLen; ++i) EXPECT_EQ(again[i], m.bytes[i]) << "byte " << i;
    CmMad twice;
    ASSERT_EQ(decode_cm_mad(again, &twice), MadError::kOk);
    EXPECT_TRUE(twice == mad);
  }
}

TEST(CmCaptures, RpingMadsRoundTrip) { check_round_trips("rping.pcap", kRping); }

template <typename T>
T decode_as(const CapturedMad& m, MadHdr* hdr = nullptr) {
  CmMad mad;
  EXPECT_EQ(decode_cm_mad(m.bytes, &mad), MadError::kOk);
  if (hdr) *hdr = mad.hdr;
  EXPECT_TRUE(std::holds_alternative<T>(mad.msg));
  return std::holds_alternative<T>(mad.msg) ? std::get<T>(mad.msg) : T{};
}

Gid v4_gid(uint8_t a, uint8_t b, uint8_t c, uint8_t d) {
  return Gid{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF, a, b, c, d};
}

// Field values as `tshark -r rping.pcap -V` (TShark 4.0.17) shows them.
TEST(CmCaptures, RpingValuesMatchTshark) {
  const auto mads = cm_mads("rping.pcap");
  ASSERT_EQ(mads.size(), 5u);
  MadHdr h;
  const Req req = decode_as<Req>(mads[0], &h);
  EXPECT_EQ(h.tid, 0x000000026dc5c06eull);
  EXPECT_EQ(h.attr_mod, 0u);
  EXPECT_EQ(req.local_comm_id, 0x6ec0c56du);
  EXPECT_EQ(req.service_id, service_id(kPsTcp, 7174));
  EXPECT_EQ(req.service_id, 0x0000000001061c06ull);
  EXPECT_EQ(req.local_ca_guid, 0x025056fffea77d03ull);
  EXPECT_EQ(req.local_qkey, 0u);
  EXPECT_EQ(req.local_qpn, 0x2cu);
  EXPECT_EQ(req.responder_resources, 1);
  EXPECT_EQ(req.initiator_depth, 1);
  EXPECT_EQ(req.remote_cm_response_timeout, 20);
  EXPECT_EQ(req.transport_type, kTransportRc);
  EXPECT_FALSE(req.e2e_flow_control);
  EXPECT_EQ(req.starting_psn, 0x3da6u);
  EXPECT_EQ(req.local_cm_response_timeout, 20);
  EXPECT_EQ(req.retry_count, 7);
  EXPECT_EQ(req.pkey, 0xFFFF);
  EXPECT_EQ(req.path_mtu, 3);  // 1024
  EXPECT_EQ(req.rnr_retry_count, 7);
  EXPECT_EQ(req.max_cm_retries, 15);
  EXPECT_FALSE(req.srq);
  EXPECT_EQ(req.primary.local_lid, 0xFFFF);
  EXPECT_EQ(req.primary.remote_lid, 0xFFFF);
  EXPECT_EQ(req.primary.local_gid, v4_gid(10, 1, 16, 62));
  EXPECT_EQ(req.primary.remote_gid, v4_gid(10, 1, 16, 61));
  // TShark 4.0 shows 0x0070b and a packet rate of 0x30, reading a byte early:
  // the bytes at REQ offset 88 are 70 bb d0 00, the top 20 bits of which are
  // rdma_cm's flow label (sport * 31 + dport) & 0xFFFFF = (48489 * 31 + 7174)
  // & 0xFFFFF = 0x70BBD (reference/rdma-cm.md 2.5, from the kernel's cma.c).
  EXPECT_EQ(req.primary.flow_label, (0xbd69u * 31 + 7174) & 0xFFFFF);
  EXPECT_EQ(req.primary.flow_label, 0x70BBDu);
  EXPECT_EQ(req.primary.packet_rate, 0);
  EXPECT_EQ(req.primary.traffic_class, 0);
  EXPECT_EQ(req.primary.hop_limit, 64);
  EXPECT_EQ(req.primary.sl, 0);
  EXPECT_FALSE(req.primary.subnet_local);
  EXPECT_EQ(req.primary.local_ack_timeout, 0x11);
  EXPECT_EQ(req.alternate, CmPath{});

  IpHdr ip;
  ASSERT_EQ(decode_ip_hdr(req.private_data, &ip), IpHdrError::kOk);
  EXPECT_EQ(ip.ip_version, 4);
  EXPECT_EQ(ip.port, 0xbd69);
  EXPECT_EQ(ip.src_ipv4(), 0x0A01103Eu);  // 10.1.16.62
  EXPECT_EQ(ip.dst_ipv4(), 0x0A01103Du);  // 10.1.16.61
  uint8_t again[kIpHdrLen];
  encode_ip_hdr(ip, again);
  EXPECT_EQ(0, std::memcmp(again, req.private_data.data(), kIpHdrLen));

  const Rep rep = decode_as<Rep>(mads[1], &h);
  EXPECT_EQ(h.tid, 0x000000026dc5c06eull);  // the REQ's, echoed
  EXPECT_EQ(rep.local_comm_id, 0x9d88f456u);
  EXPECT_EQ(rep.remote_comm_id, 0x6ec0c56du);
  EXPECT_EQ(rep.local_qkey, 0u);
  EXPECT_EQ(rep.local_qpn, 0x2bu);
  EXPECT_EQ(rep.starting_psn, 0xfebd3du);
  EXPECT_EQ(rep.responder_resources, 1);
  EXPECT_EQ(rep.initiator_depth, 1);
  EXPECT_EQ(rep.target_ack_delay, 15);
  EXPECT_EQ(rep.failover_accepted, 0);
  EXPECT_EQ(rep.rnr_retry_count, 7);
  EXPECT_FALSE(rep.srq);
  EXPECT_EQ(rep.local_ca_guid, 0x025056fffea7129full);

  const Rtu rtu = decode_as<Rtu>(mads[2]);
  EXPECT_EQ(rtu.local_comm_id, 0x6ec0c56du);
  EXPECT_EQ(rtu.remote_comm_id, 0x9d88f456u);

  const Dreq dreq = decode_as<Dreq>(mads[3]);
  EXPECT_EQ(dreq.local_comm_id, 0x6ec0c56du);
  EXPECT_EQ(dreq.remote_comm_id, 0x9d88f456u);
  EXPECT_EQ(dreq.remote_qpn, 0x2bu);  // the receiver's (passive side's) QPN

  const Drep drep = decode_as<Drep>(mads[4]);
  EXPECT_EQ(drep.local_comm_id, 0x9d88f456u);
  EXPECT_EQ(drep.remote_comm_id, 0x6ec0c56du);
}
TEST(CmCaptures, RdmaCmMadsRoundTrip) { check_round_trips("rdma_cm.pcap", kRdmaCm); }

}  // namespace
}  // namespace droce::cm
