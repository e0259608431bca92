// One test per "Known rxe defect worth a test of its own" (roce-wire.md) that
// belongs to the transport: zero-length RDMA skips key checks (IBTA
// C9-88.1.1), the responder length rules (C9-92 / C9-94) each provoked with a
// crafted packet, RNR timer code 25 = 61.44 ms, receive-side interop with
// non-rxe senders, retry_cnt 7 = seven retries, ARP answered before any QP.
// (Flush twice, post_recv in ERR and query cur_state are in the QP state tests.)
#include "nic/base/rnr.h"
#include "tests/nic/engine/fake_clock.h"

namespace droce::nic::test {
namespace {

namespace op = wire::op;

// What a side's port received, reduced to what the tests look at.
struct Seen {
  uint8_t opcode;
  uint32_t psn;
  uint32_t dest_qp;
  uint8_t syndrome;  // AETH, when the opcode has one
  uint32_t payload_len;
};

class Defects : public FakeClockTest {
 protected:
  // Takes every frame waiting at s's port (so s's engine never sees them).
  std::vector<Seen> take(Side& s) {
    std::vector<Seen> out;
    auto l = s.dev->lock_engine();
    rte_mbuf* m[64];
    wire::PacketView v[64];
    uint16_t n;
    while ((n = s.dev->port().receive(m, v, 64, now_)) > 0) {
      for (uint16_t i = 0; i < n; ++i) {
        Seen x{v[i].bth().opcode, v[i].bth().psn(), v[i].bth().dest_qp(), 0, v[i].payload_len};
        if (v[i].op->has(wire::kOpAeth)) x.syndrome = v[i].aeth().syndrome();
        out.push_back(x);
      }
      rte_pktmbuf_free_bulk(m, n);
    }
    return out;
  }
};

// ---- zero-length RDMA ----

TEST_F(Defects, ZeroLengthReadAndWriteSkipKeyAndAddressChecks) {
  // IBTA C9-88.1.1: a zero-length RDMA request is valid whatever its R_Key and
  // VA; no memory is touched, and the local side needs no valid L_Key either.
  auto p = rc_pair();
  struct Case {
    WrOpcode op;
    uint32_t rkey;
    uint64_t va;
  };
  const Case cases[] = {
      {WrOpcode::kRdmaWrite, 0, 0},
      {WrOpcode::kRdmaWrite, 0xDEAD00, 0xFFFFFFFFFFFF0000ull},
      {WrOpcode::kRdmaRead, 0, 0},
      {WrOpcode::kRdmaRead, 0xBEEF01, 0x1234},
  };
  uint64_t id = 0;
  for (const Case& c : cases) {
    SendWqe w = wqe(c.op, ++id);
    Sge s{0, 0, 0xABCD00};  // no such L_Key
    w.num_sge = 1;
    w.remote_addr = c.va;
    w.rkey = c.rkey;
    ASSERT_EQ(p.a->post_send(w, &s, nullptr), 0);
  }
  // WRITE with immediate of zero bytes: the immediate arrives.
  Buffer none = make_buffer(b_, 1, kAllAccess);
  ASSERT_EQ(post_recv(p.b, 50, none, 0), 0);
  SendWqe w = wqe(WrOpcode::kRdmaWriteImm, ++id);
  w.rkey = 0x777700;
  w.imm_or_inv = 0x55AA55AA;
  ASSERT_EQ(p.a->post_send(w, nullptr, nullptr), 0);
  auto sc = collect(a_.scq, id);
  ASSERT_EQ(sc.size(), id);
  for (const Cqe& c : sc) EXPECT_EQ(c.status, WcStatus::kSuccess) << c.wr_id;
  EXPECT_EQ(sc[2].byte_len, 0u);
  auto rc = collect(b_.rcq, 1);
  ASSERT_EQ(rc.size(), 1u);
  EXPECT_EQ(rc[0].opcode, WcOpcode::kRecvRdmaImm);
  EXPECT_EQ(rc[0].byte_len, 0u);
  EXPECT_EQ(rc[0].imm_or_inv, 0x55AA55AAu);
  EXPECT_EQ(p.b->state(), QpState::kRts);
  EXPECT_EQ(p.b->counters().err_naks_sent, 0u);
}

// ---- responder length rules, one crafted packet each ----

struct LengthCase {
  const char* name;
  uint8_t opcode;   // RC opcode
  bool prefix;      // send a valid FIRST before it (for MIDDLE / LAST)
  uint32_t length;  // payload bytes (PMTU = 1024)
  bool accepted;
};

class LengthRules : public Defects, public ::testing::WithParamInterface<LengthCase> {};

TEST_P(LengthRules, ResponderEnforcesThePathMtuRules) {
  const LengthCase& k = GetParam();
  auto p = rc_pair();
  Buffer dst = make_buffer(b_, 8192, kAllAccess);
  ASSERT_EQ(post_recv(p.b, 1, dst, 8192), 0);
  run_for(kNanosPerMs);
  pump_a_ = false;  // what b answers stays in a's port for take()
  take(a_);
  const bool write = k.opcode >= op::kWriteFirst && k.opcode <= op::kWriteOnlyImm;
  std::vector<uint8_t> payload(4096, 0x6B);
  uint32_t psn = 0x123;
  if (k.prefix) {
    wire::PacketSpec f = spec(a_, b_, write ? op::kWriteFirst : op::kSendFirst, p.b->qpn(), psn++);
    f.payload_len = 1024;
    f.reth_va = dst.addr();
    f.reth_rkey = dst.key;
    f.reth_len = 1024 + k.length;
    inject(a_, f, payload.data());
  }
  wire::PacketSpec s = spec(a_, b_, k.opcode, p.b->qpn(), psn);
  s.payload_len = k.length;
  s.ackreq = true;
  s.reth_va = dst.addr();
  s.reth_rkey = dst.key;
  s.reth_len = k.opcode == op::kWriteFirst ? k.length + 1024 : k.length;
  inject(a_, s, payload.data());
  run_for(100 * kNanosPerUs);
  const std::vector<Seen> seen = take(a_);
  if (k.accepted) {
    EXPECT_EQ(p.b->state(), QpState::kRts) << k.name;
    EXPECT_EQ(p.b->counters().err_naks_sent, 0u);
    for (const Seen& x : seen) {
      EXPECT_EQ(x.syndrome >> 5, 0) << "no NAK expected, got syndrome " << int(x.syndrome);
    }
  } else {
    // Class C (9.9.3): NAK invalid request at the offending PSN, QP to ERR.
    ASSERT_EQ(seen.size(), 1u) << k.name;
    EXPECT_EQ(seen[0].opcode, op::kAck);
    EXPECT_EQ(seen[0].psn, psn);
    EXPECT_EQ(seen[0].syndrome, wire::Aeth::make_syndrome(wire::AethType::kNak,
                                                          uint8_t(wire::NakCode::kInvalidRequest)));
    EXPECT_EQ(p.b->state(), QpState::kErr);
    EXPECT_EQ(p.b->counters().err_naks_sent, 1u);
  }
}

const LengthCase kLengthCases[] = {
    // SEND
    {"SendFirstShort", op::kSendFirst, false, 1020, false},
    {"SendFirstLong", op::kSendFirst, false, 1028, false},
    {"SendFirstExact", op::kSendFirst, false, 1024, true},
    {"SendMiddleShort", op::kSendMiddle, true, 1000, false},
    {"SendMiddleLong", op::kSendMiddle, true, 1100, false},
    {"SendMiddleExact", op::kSendMiddle, true, 1024, true},
    {"SendLastEmpty", op::kSendLast, true, 0, false},
    {"SendLastLong", op::kSendLast, true, 1025, false},
    {"SendLastOneByte", op::kSendLast, true, 1, true},
    {"SendLastFull", op::kSendLast, true, 1024, true},
    {"SendOnlyLong", op::kSendOnly, false, 1025, false},
    {"SendOnlyEmpty", op::kSendOnly, false, 0, true},
    {"SendOnlyFull", op::kSendOnly, false, 1024, true},
    // RDMA WRITE
    {"WriteFirstShort", op::kWriteFirst, false, 512, false},
    {"WriteFirstLong", op::kWriteFirst, false, 1028, false},
    {"WriteMiddleShort", op::kWriteMiddle, true, 4, false},
    {"WriteMiddleLong", op::kWriteMiddle, true, 1100, false},
    {"WriteMiddleExact", op::kWriteMiddle, true, 1024, true},
    {"WriteLastEmpty", op::kWriteLast, true, 0, false},
    {"WriteLastLong", op::kWriteLast, true, 1028, false},
    {"WriteLastOneByte", op::kWriteLast, true, 1, true},
    {"WriteOnlyLong", op::kWriteOnly, false, 1025, false},
    {"WriteOnlyFull", op::kWriteOnly, false, 1024, true},
};

INSTANTIATE_TEST_SUITE_P(Crafted, LengthRules, ::testing::ValuesIn(kLengthCases),
                         [](const auto& info) { return std::string(info.param.name); });

TEST_F(Defects, WriteLargerThanItsRethLengthIsRejected) {
  // The payload of a WRITE may not run past the RETH DMA length (rxe check_rkey).
  auto p = rc_pair();
  Buffer dst = make_buffer(b_, 4096, kAllAccess, 0);
  run_for(kNanosPerMs);
  pump_a_ = false;
  take(a_);
  std::vector<uint8_t> payload(512, 0x6B);
  wire::PacketSpec s = spec(a_, b_, op::kWriteOnly, p.b->qpn(), 0x123);
  s.payload_len = 512;
  s.ackreq = true;
  s.reth_va = dst.addr();
  s.reth_rkey = dst.key;
  s.reth_len = 256;
  inject(a_, s, payload.data());
  run_for(100 * kNanosPerUs);
  auto seen = take(a_);
  ASSERT_EQ(seen.size(), 1u);
  EXPECT_EQ(seen[0].syndrome, wire::Aeth::make_syndrome(wire::AethType::kNak, 1));
  EXPECT_EQ(dst.bytes, std::vector<uint8_t>(4096, 0));
  EXPECT_EQ(p.b->state(), QpState::kErr);
}

// ---- RNR timer code 25 ----

TEST_F(Defects, RnrTimerCode25Is61_44Milliseconds) {
  // rxe's table says 61410 us for code 25; IBTA table 45 says 61.44 ms.
  EXPECT_EQ(rnr_timer_us(25), 61440u);
  // End to end: the responder's min_rnr_timer goes into the RNR NAK, and the
  // requester waits the whole 61.44 ms before it sends again.
  Qp* qa = make_qp(a_, QpType::kRc);
  Qp* qb = make_qp(b_, QpType::kRc);
  connect(a_, qa, b_, qb);
  connect(b_, qb, a_, qa);
  QpAttrs at;
  at.min_rnr_timer = 25;
  // min_rnr_timer may change in RTS (IBTA 11.2.4.2 optional attribute).
  ASSERT_TRUE(b_.dev->modify_qp(qb, at, uint32_t(QpAttr::kMinRnrTimer)).is_ok());
  Buffer src = make_buffer(a_, 64, kAllAccess);
  run_for(kNanosPerMs);
  ASSERT_EQ(post(qa, WrOpcode::kSend, 1, &src, 64), 0);
  ASSERT_TRUE(run_until([&] { return qa->counters().rnr_naks_received == 1; }, kNanosPerUs));
  const Nanos t0 = now_ - kNanosPerUs;  // the poll that took the RNR NAK
  EXPECT_EQ(qa->counters().tx_packets, 1u);
  // Up to 61.425 ms later (past rxe's 61.41): still waiting.
  while (now_ <= t0 + 61425 * kNanosPerUs) step(5 * kNanosPerUs);
  EXPECT_EQ(qa->counters().tx_packets, 1u);
  // By 61.445 ms: sent again.
  while (now_ <= t0 + 61445 * kNanosPerUs) step(kNanosPerUs);
  EXPECT_EQ(qa->counters().tx_packets, 2u);
  EXPECT_EQ(qa->counters().rnr_naks_received, 2u);  // still no receive: NAKed again
}

// ---- receive-side interop ----

TEST_F(Defects, RequestsFromANonRxeSenderAreAccepted) {
  // MigReq = 1, FECN/BECN/Resv6a bits set, P_Key 0x7FFF (limited member), an
  // odd UDP source port, DSCP/ECN marked: all legal, none may cause a drop.
  auto p = rc_pair();
  Buffer dst = make_buffer(b_, 256, kAllAccess);
  ASSERT_EQ(post_recv(p.b, 9, dst, 256), 0);
  run_for(kNanosPerMs);
  std::vector<uint8_t> payload(100, 0x31);
  wire::PacketSpec s = spec(a_, b_, op::kSendOnly, p.b->qpn(), 0x123);
  s.payload_len = 100;
  s.migreq = true;
  s.becn_fecn = 0xFF;
  s.pkey = 0x7FFF;
  s.udp_src_port = 72;
  s.tos = 0x02;  // ECT(0)
  s.ackreq = true;
  inject(a_, s, payload.data());
  auto rc = collect(b_.rcq, 1);
  ASSERT_EQ(rc.size(), 1u);
  EXPECT_EQ(rc[0].status, WcStatus::kSuccess);
  EXPECT_EQ(rc[0].byte_len, 100u);
  EXPECT_EQ(dst.bytes[0], 0x31);
  EXPECT_EQ(b_.dev->port().counters().rx_dropped(), 0u);
  EXPECT_EQ(b_.dev->counters().rx_bad_pkey, 0u);
}

TEST_F(Defects, AcknowledgementsWithRealCreditCountsAreAccepted) {
  // rxe always sends credit code 0x1F; other responders send real counts
  // (e.g. 0x06 = 8 credits, as the Huawei capture). An ACK is an ACK.
  for (uint8_t credits : {uint8_t(0), uint8_t(6), uint8_t(30)}) {
    SCOPED_TRACE(int(credits));
    auto p = rc_pair();
    Buffer src = make_buffer(a_, 64, kAllAccess);
    Buffer dst = make_buffer(b_, 64, kAllAccess);
    run_for(kNanosPerMs);
    pump_b_ = false;
    ASSERT_EQ(post(p.a, WrOpcode::kRdmaWrite, 1, &src, 64, &dst), 0);
    step(10 * kNanosPerUs);
    take(b_);  // b never sees the WRITE; we answer for it
    wire::PacketSpec s = spec(b_, a_, op::kAck, p.a->qpn(), 0x123);
    s.aeth_syndrome = wire::Aeth::make_syndrome(wire::AethType::kAck, credits);
    s.aeth_msn = 1;
    s.migreq = true;
    s.becn_fecn = 0x40;
    s.udp_src_port = 69;
    inject(b_, s);
    auto sc = collect(a_.scq, 1, 10 * kNanosPerUs, 50);  // well before any timeout
    ASSERT_EQ(sc.size(), 1u);
    EXPECT_EQ(sc[0].status, WcStatus::kSuccess);
    EXPECT_EQ(p.a->counters().retransmits, 0u);
    pump_b_ = true;
  }
}

TEST_F(Defects, ReadResponsesAndAtomicAcksFromANonRxeResponderAreAccepted) {
  auto p = rc_pair();
  Buffer local = make_buffer(a_, 2048, kAllAccess);
  Buffer remote = make_buffer(b_, 2048, kAllAccess);
  run_for(kNanosPerMs);
  pump_b_ = false;
  ASSERT_EQ(post(p.a, WrOpcode::kRdmaRead, 1, &local, 2000, &remote), 0);
  ASSERT_EQ(post(p.a, WrOpcode::kFetchAdd, 2, &local, 8, &remote, 0, kSendSignaled, 2040), 0);
  step(10 * kNanosPerUs);
  take(b_);
  std::vector<uint8_t> data(1024, 0x99);
  wire::PacketSpec s = spec(b_, a_, op::kReadRespFirst, p.a->qpn(), 0x123);
  s.aeth_syndrome = wire::Aeth::make_syndrome(wire::AethType::kAck, 6);
  s.payload_len = 1024;
  s.migreq = true;
  s.udp_src_port = 1;
  inject(b_, s, data.data());
  s = spec(b_, a_, op::kReadRespLast, p.a->qpn(), 0x124);
  s.aeth_syndrome = wire::Aeth::make_syndrome(wire::AethType::kAck, 5);
  s.payload_len = 976;
  s.becn_fecn = 0x80;
  inject(b_, s, data.data());
  s = spec(b_, a_, op::kAtomicAck, p.a->qpn(), 0x125);
  s.aeth_syndrome = wire::Aeth::make_syndrome(wire::AethType::kAck, 4);
  s.atomic_ack_orig = 0x0102030405060708ull;
  s.migreq = true;
  inject(b_, s);
  auto sc = collect(a_.scq, 2, 10 * kNanosPerUs, 50);
  ASSERT_EQ(sc.size(), 2u);
  EXPECT_EQ(sc[0].status, WcStatus::kSuccess);
  EXPECT_EQ(sc[1].status, WcStatus::kSuccess);
  EXPECT_EQ(local.bytes[0], 0x99);
  EXPECT_EQ(local.bytes[1999], 0x99);
  uint64_t orig;
  std::memcpy(&orig, local.bytes.data() + 2040, 8);
  EXPECT_EQ(orig, 0x0102030405060708ull);
}

// ---- retry_cnt 7 ----

TEST_F(Defects, RetryCount7IsSevenRetriesNotInfinity) {
  // rxe never decrements retry_cnt 7, so a silent peer is retried for ever;
  // the spec makes only rnr_retry 7 infinite. droce: 7 retries, then RETRY_EXC_ERR.
  auto p = rc_pair(kAllAccess, 1024, /*timeout=*/4, /*retry=*/7);
  Buffer src = make_buffer(a_, 64, kAllAccess);
  Buffer dst = make_buffer(b_, 64, kAllAccess);
  run_for(kNanosPerMs);
  pump_b_ = false;
  ASSERT_EQ(post(p.a, WrOpcode::kRdmaWrite, 1, &src, 64, &dst), 0);
  auto sc =
      collect(a_.scq, 1, 10 * kNanosPerUs, 100000);  // 1 s of fake time; 8 timeouts take 0.5 ms
  ASSERT_EQ(sc.size(), 1u);
  EXPECT_EQ(sc[0].status, WcStatus::kRetryExcErr);
  EXPECT_EQ(p.a->counters().retransmits, 7u);
  EXPECT_EQ(p.a->counters().timeouts, 8u);
}

// ---- ARP from link up ----

TEST_F(Defects, PortAnswersArpBeforeAnyQpExists) {
  // Linux resolves the peer's MAC when its QP enters RTR, often before the
  // application on this side has created anything: answer ARP from link up.
  wire::MacAddr mac{};
  {
    auto l = a_.dev->lock_engine();
    EXPECT_EQ(a_.dev->port().resolve(b_.dev->port().ipv4(), &mac, now_), ArpResult::kPending);
  }
  ASSERT_TRUE(run_until([&] {
    auto l = a_.dev->lock_engine();
    return a_.dev->port().resolve(b_.dev->port().ipv4(), &mac, now_) == ArpResult::kResolved;
  }));
  EXPECT_EQ(mac, b_.dev->port().mac());
  EXPECT_EQ(b_.dev->port().counters().arp_tx, 1u);  // b's reply
}

TEST_F(Defects, QpEnteringRtrStartsArp) {
  // Nothing has been resolved yet: b's QP moving to RTR sends the request,
  // at b's next poll (on the engine's clock).
  const uint64_t arp_before = b_.dev->port().counters().arp_tx;
  Qp* qa = make_qp(a_, QpType::kRc);
  Qp* qb = make_qp(b_, QpType::kRc);
  connect(b_, qb, a_, qa);
  pump_a_ = false;
  step(kNanosPerUs);
  EXPECT_GT(b_.dev->port().counters().arp_tx, arp_before);
}

}  // namespace
}  // namespace droce::nic::test
