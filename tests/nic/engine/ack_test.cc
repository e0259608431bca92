// Responder ACK coalescing (IBTA vol. 1 9.7.5.1.2: an ACK acknowledges every
// PSN before its own): the requests of one receive burst that ask for an ACK
// get one, with the latest PSN and MSN; NAKs, RNR NAKs, READ responses and
// atomic replies are never held, and what the responder sends stays in PSN
// order. The requester's frames are held in the responder's port (its engine
// not polled) so that a burst is exactly what the test posted.
#include <rte_mbuf.h>

#include <string>
#include <vector>

#include "nic/base/psn.h"
#include "nic/wire/aeth.h"
#include "tests/nic/engine/fake_clock.h"

namespace droce::nic::test {
namespace {

// One frame the responder sent, as the requester's port received it.
struct Response {
  uint8_t opcode;
  uint32_t psn;
  wire::AethType aeth;  // kAck for frames without an AETH
};

std::string describe(const std::vector<Response>& rs) {
  std::string out;
  for (const Response& r : rs) {
    out += "op=" + std::to_string(r.opcode) + " psn=" + std::to_string(r.psn) +
           " aeth=" + std::to_string(int(r.aeth)) + "; ";
  }
  return out;
}

class AckCoalescing : public FakeClockTest {
 protected:
  // A connected RC pair whose peers know each other's MAC (one WRITE both
  // ways resolved it), with its counters read afterwards as the baseline.
  RcPair warm_pair() {
    auto p = rc_pair();
    Buffer a = make_buffer(a_, 8, kAllAccess), b = make_buffer(b_, 8, kAllAccess);
    EXPECT_EQ(post(p.a, WrOpcode::kRdmaWrite, 99, &a, 8, &b), 0);
    EXPECT_EQ(post(p.b, WrOpcode::kRdmaWrite, 99, &b, 8, &a), 0);
    EXPECT_EQ(collect(a_.scq, 1).size(), 1u);
    EXPECT_EQ(collect(b_.scq, 1).size(), 1u);
    run_for(100 * kNanosPerUs);
    a_sent_ = p.a->counters().tx_packets;
    b_acks_ = p.b->counters().acks_sent;
    return p;
  }
  // Steps only a's engine until a has sent `frames` more packets; b's engine
  // is not polled, so they wait in b's port.
  void send_from_a(Qp* qa, uint64_t frames) {
    pump_b_ = false;
    ASSERT_TRUE(run_until([&] { return qa->counters().tx_packets >= a_sent_ + frames; },
                          kNanosPerUs, 1000));
    ASSERT_EQ(qa->counters().tx_packets, a_sent_ + frames);
    pump_b_ = true;
  }
  uint64_t a_sent_ = 0;
  uint64_t b_acks_ = 0;
  // One poll of b's engine alone.
  void poll_b() {
    auto l = b_.dev->lock_engine();
    b_.dev->poll(now_);
  }
  // What b sent, taken from a's port (a's engine not polled), then put back
  // into a's port unchanged and in order (sent again from b's port).
  std::vector<Response> responses_at_a() {
    std::vector<Response> out;
    std::vector<rte_mbuf*> taken;
    rte_mbuf* m[64];
    wire::PacketView v[64];
    uint16_t n;
    auto la = a_.dev->lock_engine();
    auto lb = b_.dev->lock_engine();
    while ((n = a_.dev->port().receive(m, v, 64, now_)) > 0) {
      for (uint16_t i = 0; i < n; ++i) {
        out.push_back({v[i].bth().opcode, v[i].bth().psn(),
                       v[i].op->has(wire::kOpAeth) ? v[i].aeth().type() : wire::AethType::kAck});
        taken.push_back(m[i]);
      }
    }
    if (!taken.empty()) {
      EXPECT_EQ(b_.dev->port().transmit(taken.data(), uint16_t(taken.size())), taken.size());
    }
    return out;
  }
  static void expect_psn_order(const std::vector<Response>& rs) {
    for (size_t i = 1; i < rs.size(); ++i) {
      EXPECT_TRUE(psn_before(rs[i - 1].psn, rs[i].psn)) << "frame " << i << ": " << describe(rs);
    }
  }
  static size_t count_op(const std::vector<Response>& rs, uint8_t opcode) {
    size_t n = 0;
    for (const Response& r : rs) n += r.opcode == opcode;
    return n;
  }

  // 64 signaled 64-byte WRITEs in one go; returns b's ACK frames. Every WRITE
  // completes and lands.
  uint64_t acks_for_64_writes(uint64_t* coalesced) {
    auto p = warm_pair();
    Buffer src = make_buffer(a_, 64 * 64, kAllAccess);
    Buffer dst = make_buffer(b_, 64 * 64, kAllAccess);
    fill_pattern(src.bytes, 7);
    for (uint32_t i = 0; i < 64; ++i) {
      EXPECT_EQ(post(p.a, WrOpcode::kRdmaWrite, i, &src, 64, &dst, i * 64, kSendSignaled, i * 64),
                0);
    }
    send_from_a(p.a, 64);
    // b's port holds the 64 WRITEs: two receive bursts of 32.
    poll_b();
    poll_b();
    auto rs = responses_at_a();
    expect_psn_order(rs);
    auto sc = collect(a_.scq, 64);
    EXPECT_EQ(sc.size(), 64u);
    for (size_t i = 0; i < sc.size(); ++i) {
      EXPECT_EQ(sc[i].status, WcStatus::kSuccess);
      EXPECT_EQ(sc[i].wr_id, i) << "in order";
    }
    EXPECT_EQ(dst.bytes, src.bytes);
    EXPECT_EQ(p.a->counters().retransmits, 0u);
    EXPECT_EQ(count_op(rs, wire::op::kAck), p.b->counters().acks_sent - b_acks_);
    *coalesced = p.b->counters().acks_coalesced;
    return p.b->counters().acks_sent - b_acks_;
  }
};

// Each WRITE asks for an ACK (last packet of its message, as rxe does); one
// ACK per receive burst answers them all, and the requester retires every
// WQE it covers.
TEST_F(AckCoalescing, OneAckPerReceiveBurstOfWrites) {
  uint64_t coalesced = 0;
  EXPECT_EQ(acks_for_64_writes(&coalesced), 2u);
  EXPECT_EQ(coalesced, 62u);
}

// The same with coalescing off: one ACK per WRITE.
TEST_F(AckCoalescing, OffSendsOneAckPerWrite) {
  b_.dev.reset();
  make_side(&pair_->b(), &b_, 4096, /*coalesce_acks=*/false);
  uint64_t coalesced = 0;
  EXPECT_EQ(acks_for_64_writes(&coalesced), 64u);
  EXPECT_EQ(coalesced, 0u);
}

// An atomic reply is not held, and the ACK held for the WRITE before it
// leaves first: ACK, then the atomic ACKNOWLEDGE, in PSN order.
TEST_F(AckCoalescing, AckHeldForAWriteLeavesBeforeAnAtomicReply) {
  auto p = warm_pair();
  Buffer src = make_buffer(a_, 64, kAllAccess);
  Buffer dst = make_buffer(b_, 128, kAllAccess);
  Buffer old = make_buffer(a_, 8, kAllAccess);
  ASSERT_EQ(post(p.a, WrOpcode::kRdmaWrite, 1, &src, 64, &dst, 64), 0);
  SendWqe w = wqe(WrOpcode::kFetchAdd, 2);
  Sge s{old.addr(), 8, old.key};
  w.num_sge = 1;
  w.remote_addr = dst.addr();
  w.rkey = dst.key;
  w.compare_add = 5;
  ASSERT_EQ(p.a->post_send(w, &s, nullptr), 0);
  send_from_a(p.a, 2);
  poll_b();
  auto rs = responses_at_a();
  ASSERT_EQ(rs.size(), 2u) << describe(rs);
  EXPECT_EQ(rs[0].opcode, wire::op::kAck);
  EXPECT_EQ(rs[1].opcode, wire::op::kAtomicAck);
  expect_psn_order(rs);
  auto sc = collect(a_.scq, 2);
  ASSERT_EQ(sc.size(), 2u);
  EXPECT_EQ(sc[0].status, WcStatus::kSuccess);
  EXPECT_EQ(sc[1].status, WcStatus::kSuccess);
}

// WRITE, FETCH_ADD, WRITE, READ, WRITE in one burst: every response in PSN
// order; the ACK for the middle WRITE leaves before the READ response, the
// last WRITE's after it.
TEST_F(AckCoalescing, MixedBurstRespondsInPsnOrder) {
  auto p = warm_pair();
  Buffer src = make_buffer(a_, 4096, kAllAccess);
  Buffer dst = make_buffer(b_, 4096, kAllAccess);
  Buffer old = make_buffer(a_, 8, kAllAccess);
  fill_pattern(src.bytes, 3);
  fill_pattern(dst.bytes, 4);
  ASSERT_EQ(post(p.a, WrOpcode::kRdmaWrite, 1, &src, 64, &dst, 1024), 0);
  SendWqe w = wqe(WrOpcode::kFetchAdd, 2);
  Sge s{old.addr(), 8, old.key};
  w.num_sge = 1;
  w.remote_addr = dst.addr();
  w.rkey = dst.key;
  w.compare_add = 1;
  ASSERT_EQ(p.a->post_send(w, &s, nullptr), 0);
  ASSERT_EQ(post(p.a, WrOpcode::kRdmaWrite, 3, &src, 64, &dst, 2048), 0);
  ASSERT_EQ(post(p.a, WrOpcode::kRdmaRead, 4, &src, 512, &dst, 3072, kSendSignaled, 512), 0);
  ASSERT_EQ(post(p.a, WrOpcode::kRdmaWrite, 5, &src, 64, &dst, 3584), 0);
  send_from_a(p.a, 5);
  poll_b();
  auto rs = responses_at_a();
  expect_psn_order(rs);
  EXPECT_EQ(count_op(rs, wire::op::kAck), 3u) << describe(rs);
  EXPECT_EQ(count_op(rs, wire::op::kAtomicAck), 1u) << describe(rs);
  EXPECT_EQ(count_op(rs, wire::op::kReadRespOnly), 1u) << describe(rs);
  auto sc = collect(a_.scq, 5);
  ASSERT_EQ(sc.size(), 5u);
  for (const Cqe& c : sc) EXPECT_EQ(c.status, WcStatus::kSuccess);
  EXPECT_TRUE(std::equal(dst.bytes.begin() + 3072, dst.bytes.begin() + 3584,
                         src.bytes.begin() + 512));
  EXPECT_EQ(p.a->counters().retransmits, 0u);
}

// A SEND finding no receive WQE draws an RNR NAK at once; the ACK held for
// the WRITE before it leaves first. Once a receive is posted, the SEND goes
// through on the requester's retry.
TEST_F(AckCoalescing, RnrNakIsNotHeldAndFollowsTheHeldAck) {
  auto p = warm_pair();
  Buffer src = make_buffer(a_, 64, kAllAccess);
  Buffer dst = make_buffer(b_, 256, kAllAccess);
  fill_pattern(src.bytes, 9);
  ASSERT_EQ(post(p.a, WrOpcode::kRdmaWrite, 1, &src, 64, &dst, 0), 0);
  ASSERT_EQ(post(p.a, WrOpcode::kSend, 2, &src, 64), 0);
  send_from_a(p.a, 2);
  poll_b();
  auto rs = responses_at_a();
  ASSERT_EQ(rs.size(), 2u) << describe(rs);
  EXPECT_EQ(rs[0].aeth, wire::AethType::kAck);
  EXPECT_EQ(rs[1].aeth, wire::AethType::kRnrNak);
  expect_psn_order(rs);
  ASSERT_EQ(post_recv(p.b, 7, dst, 128, 128), 0);
  auto sc = collect(a_.scq, 2);
  ASSERT_EQ(sc.size(), 2u);
  for (const Cqe& c : sc) EXPECT_EQ(c.status, WcStatus::kSuccess);
  auto rc = collect(b_.rcq, 1);
  ASSERT_EQ(rc.size(), 1u);
  EXPECT_TRUE(std::equal(src.bytes.begin(), src.bytes.end(), dst.bytes.begin() + 128));
}

// A lost request (the second of three WRITEs, taken out of b's port): the
// first draws its ACK, the third a PSN sequence error NAK in the same poll,
// ACK first; go-back-N then delivers everything.
TEST_F(AckCoalescing, SequenceNakIsNotHeldAndFollowsTheHeldAck) {
  auto p = warm_pair();
  Buffer src = make_buffer(a_, 3 * 64, kAllAccess);
  Buffer dst = make_buffer(b_, 3 * 64, kAllAccess);
  fill_pattern(src.bytes, 11);
  for (uint32_t i = 0; i < 3; ++i) {
    ASSERT_EQ(post(p.a, WrOpcode::kRdmaWrite, i, &src, 64, &dst, i * 64, kSendSignaled, i * 64),
              0);
  }
  send_from_a(p.a, 3);
  {
    // Take the three frames out of b's port and send back all but the second.
    rte_mbuf* m[4];
    wire::PacketView v[4];
    auto lb = b_.dev->lock_engine();
    ASSERT_EQ(b_.dev->port().receive(m, v, 4, now_), 3);
    rte_pktmbuf_free(m[1]);
    m[1] = m[2];
    auto la = a_.dev->lock_engine();
    ASSERT_EQ(a_.dev->port().transmit(m, 2), 2);
  }
  poll_b();
  auto rs = responses_at_a();
  ASSERT_EQ(rs.size(), 2u) << describe(rs);
  EXPECT_EQ(rs[0].aeth, wire::AethType::kAck);
  EXPECT_EQ(rs[1].aeth, wire::AethType::kNak);
  expect_psn_order(rs);
  EXPECT_EQ(p.b->counters().seq_naks_sent, 1u);
  auto sc = collect(a_.scq, 3);
  ASSERT_EQ(sc.size(), 3u);
  for (const Cqe& c : sc) EXPECT_EQ(c.status, WcStatus::kSuccess);
  EXPECT_EQ(dst.bytes, src.bytes);
}

}  // namespace
}  // namespace droce::nic::test
