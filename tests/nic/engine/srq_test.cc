// Shared receive queues (IBTA vol. 1 10.2.9, 11.5.2.4): QPs sharing one SRQ
// take its WQEs in order of message arrival; the SRQ limit event fires once
// when the armed limit is crossed; an empty SRQ makes RC answer RNR.
#include <map>

#include "tests/nic/engine/fake_clock.h"

namespace droce::nic::test {
namespace {

class SrqTest : public FakeClockTest {
 protected:
  void SetUp() override {
    FakeClockTest::SetUp();
    srq_ = b_.dev->create_srq(b_.pd, 256, 4).value();
  }
  void TearDown() override {
    events(b_);
    FakeClockTest::TearDown();
  }
  Qp* srq_qp(QpType type) {
    QpInitAttr init;
    init.type = type;
    init.pd = b_.pd;
    init.send_cq = b_.scq;
    init.recv_cq = b_.rcq;
    init.srq = srq_;
    init.cap.max_send_wr = 64;
    init.cap.max_send_sge = 1;
    auto qp = b_.dev->create_qp(init);
    EXPECT_TRUE(qp.is_ok()) << qp.status().message();
    return qp.is_ok() ? qp.value() : nullptr;
  }
  // n RC pairs whose b sides share the SRQ.
  std::vector<RcPair> pairs(int n, QpType type = QpType::kRc) {
    std::vector<RcPair> out;
    for (int i = 0; i < n; ++i) {
      RcPair p{make_qp(a_, type), srq_qp(type)};
      connect(a_, p.a, b_, p.b, kAllAccess);
      connect(b_, p.b, a_, p.a, kAllAccess);
      out.push_back(p);
    }
    return out;
  }
  int post_srq(uint64_t wr_id, const Buffer& b, uint32_t off, uint32_t len) {
    Sge s{b.addr() + off, len, b.key};
    return srq_->post_recv(wr_id, &s, 1);
  }
  int count_limit_events() {
    int n = 0;
    for (const AsyncEvent& e : events(b_)) {
      if (e.type == AsyncEventType::kSrqLimitReached) {
        EXPECT_EQ(e.srq, srq_);
        ++n;
      }
    }
    return n;
  }

  Srq* srq_ = nullptr;
};

TEST_F(SrqTest, QpsTakeSharedWqesInOrderOfArrival) {
  constexpr int kQps = 3, kPerQp = 20;
  auto ps = pairs(kQps);
  constexpr uint32_t kSlot = 256;
  Buffer dst = make_buffer(b_, kQps * kPerQp * kSlot, kAllAccess);
  for (int i = 0; i < kQps * kPerQp; ++i) {
    ASSERT_EQ(post_srq(uint64_t(i), dst, uint32_t(i) * kSlot, kSlot), 0);
  }
  Buffer src = make_buffer(a_, kQps * kPerQp * 64, kAllAccess);
  // Interleave the senders: message m from QP q carries (q, m).
  for (int m = 0; m < kPerQp; ++m) {
    for (int q = 0; q < kQps; ++q) {
      const uint32_t off = uint32_t(m * kQps + q) * 64;
      src.bytes[off] = uint8_t(q);
      src.bytes[off + 1] = uint8_t(m);
      ASSERT_EQ(post(ps[size_t(q)].a, WrOpcode::kSend, uint64_t(m), &src, 10 + uint32_t(q), nullptr,
                     0, kSendSignaled, off),
                0);
      // One at a time on the wire, so arrival order is (m, q).
      run_until([&] { return b_.rcq->pending() == size_t(m * kQps + q + 1); });
    }
  }
  auto rc = drain(b_.rcq);
  ASSERT_EQ(rc.size(), size_t(kQps * kPerQp));
  std::map<uint32_t, int> next_msg;  // per QP number
  for (size_t k = 0; k < rc.size(); ++k) {
    const Cqe& c = rc[k];
    EXPECT_EQ(c.status, WcStatus::kSuccess);
    EXPECT_EQ(c.wr_id, k) << "the k-th arrival takes the k-th SRQ WQE";
    const int q = int(k % kQps), m = int(k / kQps);
    EXPECT_EQ(c.qp_num, ps[size_t(q)].b->qpn());
    EXPECT_EQ(c.byte_len, 10u + uint32_t(q));
    EXPECT_EQ(dst.bytes[k * kSlot], q);
    EXPECT_EQ(dst.bytes[k * kSlot + 1], m);
    EXPECT_EQ(next_msg[c.qp_num]++, m);
  }
  EXPECT_EQ(srq_->outstanding(), 0u);
}

TEST_F(SrqTest, InterleavedMultiPacketMessagesEachGetTheirOwnWqe) {
  // QP 0's three-packet SEND starts first and takes WQE 0; QP 1's one-packet
  // SEND arrives in the middle, takes WQE 1 and completes first.
  auto ps = pairs(2);
  Buffer dst = make_buffer(b_, 2 * 4096, kAllAccess);
  ASSERT_EQ(post_srq(100, dst, 0, 4096), 0);
  ASSERT_EQ(post_srq(101, dst, 4096, 4096), 0);
  Buffer src = make_buffer(a_, 3000, kAllAccess);
  fill_pattern(src.bytes, 5);
  Buffer small = make_buffer(a_, 64, kAllAccess, 0x7A);
  pump_b_ = false;
  ASSERT_EQ(post(ps[0].a, WrOpcode::kSend, 1, &src, 3000), 0);
  step(10 * kNanosPerUs);  // all three packets of QP 0 are on the wire
  ASSERT_EQ(post(ps[1].a, WrOpcode::kSend, 2, &small, 64), 0);
  step(10 * kNanosPerUs);
  pump_b_ = true;
  auto rc = collect(b_.rcq, 2);
  ASSERT_EQ(rc.size(), 2u);
  // Arrival order was QP0 FIRST, MIDDLE, LAST, then QP1 ONLY.
  EXPECT_EQ(rc[0].wr_id, 100u);
  EXPECT_EQ(rc[0].qp_num, ps[0].b->qpn());
  EXPECT_EQ(rc[0].byte_len, 3000u);
  EXPECT_EQ(rc[1].wr_id, 101u);
  EXPECT_EQ(rc[1].qp_num, ps[1].b->qpn());
  EXPECT_EQ(rc[1].byte_len, 64u);
  EXPECT_TRUE(std::equal(src.bytes.begin(), src.bytes.end(), dst.bytes.begin()));
  EXPECT_EQ(dst.bytes[4096], 0x7A);
}

TEST_F(SrqTest, LimitEventFiresOnceWhenCrossingTheArmedLimit) {
  auto ps = pairs(2);
  Buffer dst = make_buffer(b_, 16 * 64, kAllAccess);
  for (int i = 0; i < 10; ++i) ASSERT_EQ(post_srq(uint64_t(i), dst, uint32_t(i) * 64, 64), 0);
  ASSERT_TRUE(b_.dev->modify_srq(srq_, 5).is_ok());
  EXPECT_EQ(srq_->limit(), 5u);
  Buffer src = make_buffer(a_, 64, kAllAccess);
  auto send_one = [&](int q, uint64_t id) {
    const size_t before = b_.rcq->pending();
    ASSERT_EQ(post(ps[size_t(q)].a, WrOpcode::kSend, id, &src, 8), 0);
    ASSERT_TRUE(run_until([&] { return b_.rcq->pending() == before + 1; }));
  };
  // 10 posted; after 5 consumed 5 remain (not below the limit): no event.
  for (int i = 0; i < 5; ++i) send_one(i % 2, uint64_t(i));
  EXPECT_EQ(count_limit_events(), 0);
  EXPECT_EQ(srq_->limit(), 5u);
  // The 6th leaves 4 < 5: one event, and the limit disarms.
  send_one(1, 5);
  EXPECT_EQ(count_limit_events(), 1);
  EXPECT_EQ(srq_->limit(), 0u);
  // Further consumption fires nothing.
  for (int i = 6; i < 9; ++i) send_one(i % 2, uint64_t(i));
  EXPECT_EQ(count_limit_events(), 0);
  // Re-armed above what is left (1): the next WQE taken fires it again (as rxe).
  for (int i = 10; i < 14; ++i) ASSERT_EQ(post_srq(uint64_t(i), dst, uint32_t(i) * 64, 64), 0);
  ASSERT_TRUE(b_.dev->modify_srq(srq_, 8).is_ok());
  EXPECT_EQ(count_limit_events(), 0);  // arming alone does not fire
  send_one(0, 9);
  EXPECT_EQ(count_limit_events(), 1);
  drain(b_.rcq);
}

TEST_F(SrqTest, EmptySrqMakesRcAnswerRnrUntilAWqeIsPosted) {
  auto ps = pairs(2);
  Buffer src = make_buffer(a_, 100, kAllAccess, 0x3C);
  Buffer dst = make_buffer(b_, 100, kAllAccess);
  ASSERT_EQ(post(ps[1].a, WrOpcode::kSend, 1, &src, 100), 0);
  run_for(2 * kNanosPerMs);
  EXPECT_GE(ps[1].b->counters().rnr_naks_sent, 2u);
  EXPECT_TRUE(drain(a_.scq).empty());
  ASSERT_EQ(post_srq(55, dst, 0, 100), 0);
  auto sc = collect(a_.scq, 1);
  ASSERT_EQ(sc.size(), 1u);
  EXPECT_EQ(sc[0].status, WcStatus::kSuccess);
  auto rc = drain(b_.rcq);
  ASSERT_EQ(rc.size(), 1u);
  EXPECT_EQ(rc[0].wr_id, 55u);
  EXPECT_EQ(rc[0].qp_num, ps[1].b->qpn());
  EXPECT_EQ(dst.bytes[99], 0x3C);
}

TEST_F(SrqTest, UdAndUcQpsShareAnSrqToo) {
  // UD: one datagram, GRH included; UC: a SEND.
  Qp* ud_a = make_qp(a_, QpType::kUd);
  Qp* ud_b = srq_qp(QpType::kUd);
  connect(a_, ud_a, b_, ud_b);
  connect(b_, ud_b, a_, ud_a);
  auto uc = pairs(1, QpType::kUc);
  Buffer dst = make_buffer(b_, 2 * 512, kAllAccess);
  ASSERT_EQ(post_srq(1, dst, 0, 512), 0);
  ASSERT_EQ(post_srq(2, dst, 512, 512), 0);
  Buffer src = make_buffer(a_, 64, kAllAccess, 0x42);
  const uint32_t ah = a_.dev->create_ah(a_.pd, av_to(b_)).value();
  SendWqe w = wqe(WrOpcode::kSend, 1);
  Sge s{src.addr(), 64, src.key};
  w.num_sge = 1;
  w.ah = ah;
  w.remote_qpn = ud_b->qpn();
  w.remote_qkey = 0x11111111;
  ASSERT_EQ(ud_a->post_send(w, &s, nullptr), 0);
  ASSERT_TRUE(run_until([&] { return b_.rcq->pending() == 1; }));
  ASSERT_EQ(post(uc[0].a, WrOpcode::kSend, 2, &src, 30), 0);
  auto rc = collect(b_.rcq, 2);
  ASSERT_EQ(rc.size(), 2u);
  EXPECT_EQ(rc[0].wr_id, 1u);
  EXPECT_EQ(rc[0].qp_num, ud_b->qpn());
  EXPECT_EQ(rc[0].byte_len, 40u + 64u);
  EXPECT_EQ(rc[0].wc_flags, kWcGrh);
  EXPECT_EQ(dst.bytes[40], 0x42);
  EXPECT_EQ(rc[1].wr_id, 2u);
  EXPECT_EQ(rc[1].qp_num, uc[0].b->qpn());
  EXPECT_EQ(rc[1].byte_len, 30u);
  EXPECT_EQ(dst.bytes[512], 0x42);
}

TEST_F(SrqTest, PostRecvOnAQpWithAnSrqIsRefused) {
  auto ps = pairs(1);
  Buffer dst = make_buffer(b_, 64, kAllAccess);
  EXPECT_EQ(post_recv(ps[0].b, 1, dst, 64), EINVAL);
}

}  // namespace
}  // namespace droce::nic::test
