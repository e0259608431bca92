// The CM agent between two peers on a fake wire and a fake clock: the
// exchanges of IBTA vol. 1 chapter 12 as Linux runs them (REQ/REP/RTU,
// REJ 8 and 28, MRA, DREQ/DREP and their crossing, retransmission and
// UNREACHABLE, duplicates, DREQ for another QP, SIDR), checked on the MADs
// that cross the wire and on the events each side hears.
#include <gtest/gtest.h>

#include <algorithm>
#include <deque>
#include <vector>

#include "nic/cm/agent.h"

namespace droce::cm {
namespace {

constexpr uint32_t kIpA = 0x0A000001;
constexpr uint32_t kIpB = 0x0A000002;
constexpr uint64_t kSid = 0x0000000001061C06;  // TCP port 7174
constexpr AgentNanos kMs = 1000000;

struct Wire;

struct Side : AgentOutput {
  Wire* wire = nullptr;
  uint32_t ip = 0;
  std::vector<AgentEvent> events;
  std::vector<CmMsg> event_msgs;
  void send_mad(uint32_t dst_ip, const uint8_t* mad) override;
  void on_event(const AgentEvent& ev) override {
    events.push_back(ev);
    event_msgs.push_back(*ev.msg);
  }
  AgentEventType last() const { return events.back().type; }
};

struct Frame {
  uint32_t src, dst;
  std::vector<uint8_t> mad;
  uint16_t attr() const { return uint16_t(mad[16] << 8 | mad[17]); }
};

struct Wire {
  std::deque<Frame> frames;
  std::vector<uint16_t> log;  // attribute of every MAD sent, in order
};

void Side::send_mad(uint32_t dst_ip, const uint8_t* mad) {
  wire->frames.push_back({ip, dst_ip, std::vector<uint8_t>(mad, mad + kMadLen)});
  wire->log.push_back(wire->frames.back().attr());
}

AgentConfig config(uint32_t ip, uint64_t seed) {
  AgentConfig c;
  c.local_ip = ip;
  c.ca_guid = 0x0200000000000000ull | ip;
  c.seed = seed;
  return c;
}

struct Pair : ::testing::Test {
  Wire wire;
  Side sa, sb;
  Agent a{config(kIpA, 0x1234567887654321ull), &sa};
  Agent b{config(kIpB, 0x0BADC0FFEE123457ull), &sb};
  AgentNanos now = 1000 * kMs;
  int cookie_listener = 0, cookie_a = 0, cookie_b = 0;

  void SetUp() override {
    sa.wire = sb.wire = &wire;
    sa.ip = kIpA;
    sb.ip = kIpB;
  }
  // Delivers every frame on the wire (and the ones they cause); returns how many.
  int deliver(int drop_first = 0) {
    int n = 0;
    while (!wire.frames.empty()) {
      Frame f = wire.frames.front();
      wire.frames.pop_front();
      if (drop_first-- > 0) continue;
      (f.dst == kIpA ? a : b).on_mad(f.src, f.mad, now);
      ++n;
    }
    return n;
  }
  CmMad last_mad() {
    CmMad m;
    EXPECT_EQ(decode_cm_mad(wire.frames.back().mad, &m), MadError::kOk);
    return m;
  }
  ConnectParams params() {
    ConnectParams p;
    p.peer_ip = kIpB;
    p.service_id = kSid;
    p.qpn = 0x11;
    p.starting_psn = 0x123456;
    p.responder_resources = 1;
    p.initiator_depth = 2;
    p.private_data[36] = 0x5A;
    p.cookie = &cookie_a;
    return p;
  }
  // A connection up to kEstablished on both sides; returns (a's, b's) handles.
  std::pair<uint32_t, uint32_t> establish() {
    EXPECT_TRUE(b.listen(kSid, 0, &cookie_listener));
    const uint32_t ca = a.connect(params(), now);
    deliver();
    EXPECT_EQ(sb.last(), AgentEventType::kReqReceived);
    const uint32_t cb = sb.events.back().conn;
    b.set_cookie(cb, &cookie_b);
    AcceptParams ap;
    ap.qpn = 0x22;
    ap.starting_psn = 0xABCDEF;
    ap.responder_resources = 2;
    ap.initiator_depth = 1;
    EXPECT_TRUE(b.accept(cb, ap, now));
    deliver();
    EXPECT_EQ(sa.last(), AgentEventType::kRepReceived);
    EXPECT_TRUE(a.send_rtu(ca, now));
    deliver();
    EXPECT_EQ(sb.last(), AgentEventType::kEstablished);
    return {ca, cb};
  }
};

TEST_F(Pair, ConnectAcceptRtu) {
  ASSERT_TRUE(b.listen(kSid, 0, &cookie_listener));
  EXPECT_FALSE(b.listen(kSid, 0, &cookie_listener));  // one listener per service ID
  const uint32_t ca = a.connect(params(), now);
  ASSERT_EQ(wire.frames.size(), 1u);
  const CmMad req_mad = last_mad();
  const Req& req = std::get<Req>(req_mad.msg);
  EXPECT_EQ(req.local_comm_id, ca);
  EXPECT_EQ(req_mad.hdr.tid & 0xFFFFFFFF, ca);  // originator's TID carries its comm ID
  EXPECT_EQ(req.service_id, kSid);
  EXPECT_EQ(req.local_qpn, 0x11u);
  EXPECT_EQ(req.starting_psn, 0x123456u);
  EXPECT_EQ(req.responder_resources, 1);
  EXPECT_EQ(req.initiator_depth, 2);
  EXPECT_EQ(req.remote_cm_response_timeout, 20);
  EXPECT_EQ(req.local_cm_response_timeout, 20);
  EXPECT_EQ(req.max_cm_retries, 15);
  EXPECT_EQ(req.pkey, 0xFFFF);
  EXPECT_EQ(req.path_mtu, 3);
  EXPECT_EQ(req.primary.local_lid, 0xFFFF);
  EXPECT_EQ(req.primary.local_gid[15], 1);
  EXPECT_EQ(req.primary.remote_gid[15], 2);
  EXPECT_EQ(req.primary.remote_gid[10], 0xFF);
  EXPECT_EQ(req.primary.hop_limit, 64);
  EXPECT_EQ(req.private_data[36], 0x5A);
  deliver();
  ASSERT_EQ(sb.events.size(), 1u);
  EXPECT_EQ(sb.events[0].type, AgentEventType::kReqReceived);
  EXPECT_EQ(sb.events[0].cookie, &cookie_listener);
  EXPECT_EQ(sb.events[0].peer_ip, kIpA);
  const uint32_t cb = sb.events[0].conn;
  EXPECT_NE(cb, 0u);
  EXPECT_EQ(std::get<Req>(sb.event_msgs[0]).local_comm_id, ca);

  AcceptParams ap;
  ap.qpn = 0x22;
  ap.starting_psn = 0xABCDEF;
  ASSERT_TRUE(b.accept(cb, ap, now));
  const CmMad rep_mad = last_mad();
  const Rep& rep = std::get<Rep>(rep_mad.msg);
  EXPECT_EQ(rep_mad.hdr.tid, req_mad.hdr.tid);  // replies echo the REQ's TID
  EXPECT_EQ(rep.local_comm_id, cb);
  EXPECT_EQ(rep.remote_comm_id, ca);
  EXPECT_EQ(rep.local_qpn, 0x22u);
  EXPECT_EQ(rep.starting_psn, 0xABCDEFu);
  EXPECT_EQ(rep.target_ack_delay, 15);
  deliver();
  ASSERT_EQ(sa.events.size(), 1u);
  EXPECT_EQ(sa.events[0].type, AgentEventType::kRepReceived);
  EXPECT_EQ(sa.events[0].cookie, &cookie_a);
  ASSERT_TRUE(a.send_rtu(ca, now));
  const CmMad rtu_mad = last_mad();
  EXPECT_EQ(rtu_mad.hdr.tid, req_mad.hdr.tid);
  EXPECT_EQ(std::get<Rtu>(rtu_mad.msg).remote_comm_id, cb);
  deliver();
  EXPECT_EQ(sb.last(), AgentEventType::kEstablished);
  EXPECT_EQ((std::vector<uint16_t>{kAttrReq, kAttrRep, kAttrRtu}), wire.log);
}

TEST_F(Pair, NoListenerGetsRej8) {
  const uint32_t ca = a.connect(params(), now);
  deliver();
  ASSERT_EQ(wire.log.size(), 2u);
  EXPECT_EQ(wire.log[1], kAttrRej);
  ASSERT_EQ(sa.events.size(), 1u);
  EXPECT_EQ(sa.events[0].type, AgentEventType::kRejected);
  EXPECT_EQ(sa.events[0].conn, ca);
  const Rej& rej = std::get<Rej>(sa.event_msgs[0]);
  EXPECT_EQ(rej.reason, uint16_t(RejReason::kInvalidServiceId));
  EXPECT_EQ(rej.local_comm_id, 0u);
  EXPECT_EQ(rej.remote_comm_id, ca);
  EXPECT_EQ(b.counters().rej_no_listener, 1u);
  EXPECT_EQ(b.connections(), 0u);
  // No retransmission after the REJ.
  now += 200 * 1000 * kMs;
  a.on_timer(now);
  EXPECT_TRUE(wire.frames.empty());
}

TEST_F(Pair, ConsumerRejectCarriesPrivateData) {
  ASSERT_TRUE(b.listen(kSid, 0, &cookie_listener));
  a.connect(params(), now);
  deliver();
  const uint32_t cb = sb.events.back().conn;
  const uint8_t pd[3] = {1, 2, 3};
  ASSERT_TRUE(b.reject(cb, uint16_t(RejReason::kConsumerDefined), pd, sizeof(pd), now));
  deliver();
  ASSERT_EQ(sa.last(), AgentEventType::kRejected);
  const Rej& rej = std::get<Rej>(sa.event_msgs.back());
  EXPECT_EQ(rej.reason, 28);
  EXPECT_EQ(rej.local_comm_id, cb);
  EXPECT_EQ(rej.private_data[2], 3);
  EXPECT_EQ(rej.message_rejected, kMsgReq);
}

TEST_F(Pair, LostReqIsRetransmittedThenUnreachable) {
  const uint32_t ca = a.connect(params(), now);
  ASSERT_EQ(wire.frames.size(), 1u);
  const std::vector<uint8_t> first = wire.frames.front().mad;
  wire.frames.clear();
  // 2 * ms(18) + ms(20) = 6144 ms per try.
  now += 6143 * kMs;
  a.on_timer(now);
  EXPECT_TRUE(wire.frames.empty());
  now += 1 * kMs;
  a.on_timer(now);
  ASSERT_EQ(wire.frames.size(), 1u);
  EXPECT_EQ(wire.frames.front().mad, first);  // the same MAD, same TID
  wire.frames.clear();
  for (int i = 0; i < 14; ++i) {
    now += 6144 * kMs;
    a.on_timer(now);
  }
  EXPECT_EQ(wire.frames.size(), 14u);
  EXPECT_TRUE(sa.events.empty());
  now += 6144 * kMs;
  a.on_timer(now);
  ASSERT_EQ(sa.events.size(), 1u);
  EXPECT_EQ(sa.events[0].type, AgentEventType::kUnreachable);
  EXPECT_EQ(sa.events[0].conn, ca);
  EXPECT_EQ(a.counters().retransmits, 15u);
}

TEST_F(Pair, DuplicateReqGetsMraThenRep) {
  ASSERT_TRUE(b.listen(kSid, 0, &cookie_listener));
  a.connect(params(), now);
  const std::vector<uint8_t> req = wire.frames.front().mad;
  deliver();
  const uint32_t cb = sb.events.back().conn;
  // The consumer is slow: the REQ comes again and is answered with an MRA.
  b.on_mad(kIpA, req, now);
  ASSERT_EQ(wire.frames.size(), 1u);
  const CmMad mra = last_mad();
  ASSERT_TRUE(std::holds_alternative<Mra>(mra.msg));
  EXPECT_EQ(std::get<Mra>(mra.msg).service_timeout, 24);
  EXPECT_EQ(std::get<Mra>(mra.msg).message_mraed, kMsgReq);
  deliver();
  EXPECT_EQ(sb.events.size(), 1u);  // no second connection
  // The MRA stretches the active side's timer: no retransmission at 6144 ms.
  now += 6144 * kMs;
  a.on_timer(now);
  EXPECT_TRUE(wire.frames.empty());
  AcceptParams ap;
  ap.qpn = 0x22;
  ASSERT_TRUE(b.accept(cb, ap, now));
  const std::vector<uint8_t> rep = wire.frames.back().mad;
  deliver();
  // The REQ again after the REP: the same REP again.
  b.on_mad(kIpA, req, now);
  ASSERT_EQ(wire.frames.size(), 1u);
  EXPECT_EQ(wire.frames.front().mad, rep);
  EXPECT_EQ(b.counters().rx_duplicates, 2u);
}

TEST_F(Pair, LostRtuIsSentAgainOnDuplicateRep) {
  ASSERT_TRUE(b.listen(kSid, 0, &cookie_listener));
  const uint32_t ca = a.connect(params(), now);
  deliver();
  AcceptParams ap;
  ASSERT_TRUE(b.accept(sb.events.back().conn, ap, now));
  const std::vector<uint8_t> rep = wire.frames.back().mad;
  deliver();
  // Before the consumer's RTU, a duplicate REP is only counted.
  a.on_mad(kIpB, rep, now);
  EXPECT_TRUE(wire.frames.empty());
  ASSERT_TRUE(a.send_rtu(ca, now));
  const std::vector<uint8_t> rtu = wire.frames.back().mad;
  wire.frames.clear();  // the RTU is lost; b sends its REP again
  a.on_mad(kIpB, rep, now);
  ASSERT_EQ(wire.frames.size(), 1u);
  EXPECT_EQ(wire.frames.back().mad, rtu);
  deliver();
  EXPECT_EQ(sb.last(), AgentEventType::kEstablished);
}

TEST_F(Pair, DisconnectDreqDrep) {
  auto [ca, cb] = establish();
  ASSERT_TRUE(a.disconnect(ca, now));
  const CmMad dreq = last_mad();
  EXPECT_EQ(std::get<Dreq>(dreq.msg).remote_qpn, 0x22u);  // the peer's QPN
  deliver();
  EXPECT_EQ(sb.last(), AgentEventType::kDreqReceived);
  EXPECT_EQ(sb.events.back().cookie, &cookie_b);
  EXPECT_EQ(sa.last(), AgentEventType::kDisconnected);
  EXPECT_EQ(wire.log.back(), kAttrDrep);
  EXPECT_TRUE(b.disconnect(cb, now));  // the peer's DREQ came first: nothing to send
  EXPECT_TRUE(wire.frames.empty());
  // A duplicate DREQ in timewait gets the DREP again.
  uint8_t buf[kMadLen];
  encode_cm_mad(dreq, buf);
  b.on_mad(kIpA, buf, now);
  ASSERT_EQ(wire.frames.size(), 1u);
  EXPECT_EQ(wire.frames.back().attr(), kAttrDrep);
  deliver();
  // Timewait ends (ms(19) ~ 2 s): the entries go.
  now += 3000 * kMs;
  a.on_timer(now);
  b.on_timer(now);
  a.destroy(ca, now);
  b.destroy(cb, now);
  EXPECT_EQ(a.connections(), 0u);
  EXPECT_EQ(b.connections(), 0u);
  EXPECT_TRUE(wire.frames.empty());
}

TEST_F(Pair, CrossingDreqs) {
  auto [ca, cb] = establish();
  ASSERT_TRUE(a.disconnect(ca, now));
  ASSERT_TRUE(b.disconnect(cb, now));
  deliver();
  // Each answers the other's DREQ with a DREP and hears DISCONNECTED once.
  int a_disc = 0, b_disc = 0;
  for (const AgentEvent& e : sa.events) a_disc += e.type == AgentEventType::kDisconnected;
  for (const AgentEvent& e : sb.events) b_disc += e.type == AgentEventType::kDisconnected;
  EXPECT_EQ(a_disc, 1);
  EXPECT_EQ(b_disc, 1);
  EXPECT_EQ(std::count(wire.log.begin(), wire.log.end(), kAttrDrep), 2);
}

TEST_F(Pair, DreqForAnotherQpIsDropped) {
  auto [ca, cb] = establish();
  (void)cb;
  ASSERT_TRUE(a.disconnect(ca, now));
  Frame f = wire.frames.back();
  wire.frames.clear();
  f.mad[24 + 10] ^= 0xFF;  // Remote QPN
  b.on_mad(kIpA, f.mad, now);
  EXPECT_EQ(b.counters().rx_bad_qpn, 1u);
  EXPECT_TRUE(wire.frames.empty());
  EXPECT_EQ(sb.last(), AgentEventType::kEstablished);
}

TEST_F(Pair, UnknownDreqGetsDrep) {
  Dreq d;
  d.local_comm_id = 0x1111;
  d.remote_comm_id = 0x2222;
  CmMad m;
  m.hdr.tid = 77;
  m.msg = d;
  uint8_t buf[kMadLen];
  encode_cm_mad(m, buf);
  b.on_mad(kIpA, buf, now);
  ASSERT_EQ(wire.frames.size(), 1u);
  const CmMad drep = last_mad();
  EXPECT_EQ(drep.hdr.tid, 77u);
  EXPECT_EQ(std::get<Drep>(drep.msg).local_comm_id, 0x2222u);
  EXPECT_EQ(std::get<Drep>(drep.msg).remote_comm_id, 0x1111u);
}

TEST_F(Pair, DestroyPendingReqSendsRejAndNoEvents) {
  const uint32_t ca = a.connect(params(), now);
  wire.frames.clear();
  a.destroy(ca, now);
  ASSERT_EQ(wire.frames.size(), 1u);
  EXPECT_EQ(wire.frames.back().attr(), kAttrRej);
  EXPECT_EQ(a.connections(), 0u);
  now += 100000 * kMs;
  a.on_timer(now);
  EXPECT_TRUE(sa.events.empty());
}

TEST_F(Pair, DestroyEstablishedSendsDreq) {
  auto [ca, cb] = establish();
  (void)cb;
  a.destroy(ca, now);
  ASSERT_EQ(wire.frames.size(), 1u);
  EXPECT_EQ(wire.frames.back().attr(), kAttrDreq);
  const size_t before = sa.events.size();
  deliver();
  EXPECT_EQ(sb.last(), AgentEventType::kDreqReceived);
  EXPECT_EQ(sa.events.size(), before);  // destroyed: no event
}

TEST_F(Pair, DestroyAllAtExitEndsEveryConnection) {
  auto [ca, cb] = establish();
  (void)cb;
  // A second connection still waiting for its REP.
  a.connect(params(), now);
  wire.frames.clear();
  a.destroy_all(now);
  ASSERT_EQ(wire.frames.size(), 2u);
  std::vector<uint16_t> sent = {wire.frames[0].attr(), wire.frames[1].attr()};
  std::sort(sent.begin(), sent.end());
  EXPECT_EQ(sent, (std::vector<uint16_t>{kAttrRej, kAttrDreq}));
  const size_t before = sa.events.size();
  deliver();
  EXPECT_EQ(sa.events.size(), before);  // nothing reported to a consumer that is gone
  EXPECT_EQ(sb.last(), AgentEventType::kDreqReceived);
  (void)ca;
}

// A REQ whose GIDs disagree with the packet's addresses: REJ 12 with our
// GID as ARI, no connection (Linux: the path from the REQ does not resolve).
TEST_F(Pair, ReqWithForeignGidsGetsRej12) {
  ASSERT_TRUE(b.listen(kSid, 0, &cookie_listener));
  a.connect(params(), now);
  Frame f = wire.frames.front();
  wire.frames.clear();
  for (int which = 0; which < 2; ++which) {
    std::vector<uint8_t> mad = f.mad;
    mad[24 + 56 + 15 + (which ? 16 : 0)] ^= 0x01;  // local, then remote GID's last byte
    b.on_mad(kIpA, mad, now);
    ASSERT_EQ(wire.frames.size(), 1u);
    const CmMad rej = last_mad();
    ASSERT_TRUE(std::holds_alternative<Rej>(rej.msg));
    EXPECT_EQ(std::get<Rej>(rej.msg).reason, uint16_t(RejReason::kInvalidGid));
    EXPECT_EQ(std::get<Rej>(rej.msg).reject_info_len, 16);
    EXPECT_EQ(std::get<Rej>(rej.msg).ari[15], 2);  // ::ffff:10.0.0.2
    wire.frames.clear();
  }
  EXPECT_TRUE(sb.events.empty());
  EXPECT_EQ(b.connections(), 0u);
  EXPECT_EQ(b.counters().rej_bad_gid, 2u);
}

TEST_F(Pair, DroppedRequestIsAnsweredOnlyWhenItComesAgain) {
  ASSERT_TRUE(b.listen(kSid, 0, &cookie_listener));
  a.connect(params(), now);
  deliver();
  ASSERT_EQ(sb.last(), AgentEventType::kReqReceived);
  b.drop_request(sb.events.back().conn);  // the listener's backlog is full
  EXPECT_TRUE(wire.frames.empty());        // no REJ
  EXPECT_EQ(b.connections(), 0u);
  now += 6144 * kMs;
  a.on_timer(now);  // the REQ again: a new request for the listener
  deliver();
  EXPECT_EQ(sb.events.size(), 2u);
  EXPECT_EQ(sb.last(), AgentEventType::kReqReceived);
}

TEST_F(Pair, RepNeverAnsweredIsUnreachable) {
  ASSERT_TRUE(b.listen(kSid, 0, &cookie_listener));
  a.connect(params(), now);
  deliver();
  const uint32_t cb = sb.events.back().conn;
  b.set_cookie(cb, &cookie_b);
  AcceptParams ap;
  ASSERT_TRUE(b.accept(cb, ap, now));
  wire.frames.clear();  // the REP and every retransmission are lost
  for (int i = 0; i < 16; ++i) {
    now += 4096 * kMs;  // the REQ's Local CM Response Timeout: ms(20)
    b.on_timer(now);
  }
  EXPECT_EQ(wire.frames.size(), 15u);
  ASSERT_EQ(sb.last(), AgentEventType::kUnreachable);
  EXPECT_EQ(sb.events.back().cookie, &cookie_b);
}

TEST_F(Pair, SidrQueryAndReply) {
  const uint64_t sid = 0x0000000001110FA0;  // UDP port 4000
  ASSERT_TRUE(b.listen(sid, 0, &cookie_listener));
  uint8_t pd[4] = {9, 8, 7, 6};
  const uint32_t q = a.sidr_query(kIpB, sid, pd, sizeof(pd), &cookie_a, now);
  deliver();
  ASSERT_EQ(sb.last(), AgentEventType::kSidrReqReceived);
  EXPECT_EQ(std::get<SidrReq>(sb.event_msgs.back()).private_data[3], 6);
  ASSERT_TRUE(b.sidr_reply(sb.events.back().conn, kSidrSuccess, 0x33, 0x01234567, nullptr, 0));
  deliver();
  ASSERT_EQ(sa.last(), AgentEventType::kSidrRepReceived);
  EXPECT_EQ(sa.events.back().conn, q);
  const SidrRep& rep = std::get<SidrRep>(sa.event_msgs.back());
  EXPECT_EQ(rep.status, kSidrSuccess);
  EXPECT_EQ(rep.qpn, 0x33u);
  EXPECT_EQ(rep.qkey, 0x01234567u);
  EXPECT_EQ(b.connections(), 0u);

  // Nobody listens: status 1.
  a.sidr_query(kIpB, sid + 1, nullptr, 0, &cookie_a, now);
  deliver();
  ASSERT_EQ(sa.last(), AgentEventType::kSidrRepReceived);
  EXPECT_EQ(std::get<SidrRep>(sa.event_msgs.back()).status, kSidrUnsupported);
}

TEST_F(Pair, MalformedAndStrayMadsAreCounted) {
  std::vector<uint8_t> junk(100, 0xAB);
  a.on_mad(kIpB, junk, now);
  std::vector<uint8_t> rtu(kMadLen, 0);
  CmMad m;
  m.msg = Rtu{0x1, 0x2, {}};
  encode_cm_mad(m, std::span<uint8_t, kMadLen>(rtu.data(), kMadLen));
  a.on_mad(kIpB, rtu, now);
  EXPECT_EQ(a.counters().rx_malformed, 1u);
  EXPECT_EQ(a.counters().rx_unknown_conn, 1u);
  EXPECT_TRUE(wire.frames.empty());
  EXPECT_TRUE(sa.events.empty());
}

TEST(CmTimeout, AsLinuxConvertsIt) {
  EXPECT_EQ(cm_timeout_ns(0), 1 * kMs);
  EXPECT_EQ(cm_timeout_ns(8), 1 * kMs);
  EXPECT_EQ(cm_timeout_ns(18), 1024 * kMs);
  EXPECT_EQ(cm_timeout_ns(20), 4096 * kMs);
  EXPECT_EQ(cm_timeout_ns(24), 65536 * kMs);
}

}  // namespace
}  // namespace droce::cm
