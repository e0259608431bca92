// SRQ resize on a live engine (ibv_modify_srq IBV_SRQ_MAX_WR, as rdma_rxe):
// the SRQ is grown and shrunk under the engine lock between polls while
// multi-packet SENDs from QPs sharing it are arriving; every message lands in
// the receive posted for it, in order; a size below the receives posted is
// refused and the SRQ goes on; the limit event fires after a resize.
#include <algorithm>

#include "tests/nic/engine/fake_clock.h"

namespace droce::nic::test {
namespace {

constexpr uint32_t kSlot = 4096;
constexpr uint32_t kLen = 2500;  // three packets at the path MTU of 1024

class SrqResizeTest : public FakeClockTest {
 protected:
  void SetUp() override {
    FakeClockTest::SetUp();
    srq_ = b_.dev->create_srq(b_.pd, 8, 1).value();
    for (int i = 0; i < 2; ++i) {
      QpInitAttr init;
      init.type = QpType::kRc;
      init.pd = b_.pd;
      init.send_cq = b_.scq;
      init.recv_cq = b_.rcq;
      init.srq = srq_;
      init.cap.max_send_wr = 64;
      init.cap.max_send_sge = 1;
      Qp* b = b_.dev->create_qp(init).value();
      Qp* a = make_qp(a_, QpType::kRc);
      connect(a_, a, b_, b, kAllAccess);
      connect(b_, b, a_, a, kAllAccess);
      pairs_[i] = {a, b};
    }
    dst_ = make_buffer(b_, kMsgs * kSlot, kAllAccess, 0xEE);
    src_ = make_buffer(a_, kMsgs * kSlot, kAllAccess);
    for (uint32_t m = 0; m < kMsgs; ++m) {
      for (uint32_t i = 0; i < kLen; ++i) src_.bytes[m * kSlot + i] = uint8_t(m * 7 + i * 13);
    }
  }
  void TearDown() override {
    events(b_);
    FakeClockTest::TearDown();
  }
  // The next receive, into slot wr_id.
  int post_srq() {
    Sge s{dst_.addr() + next_wr_ * kSlot, kSlot, dst_.key};
    const int rc = srq_->post_recv(next_wr_, &s, 1);
    if (rc == 0) ++next_wr_;
    return rc;
  }
  // Message m from QP m % 2.
  void send(uint32_t m) {
    ASSERT_EQ(post(pairs_[m % 2].a, WrOpcode::kSend, m, &src_, kLen, nullptr, 0, kSendSignaled,
                   m * kSlot),
              0);
  }
  Status resize(uint32_t max_wr) {
    auto lock = b_.dev->lock_engine();  // as ibv_modify_srq
    return srq_->resize(max_wr);
  }
  // Collects n receive completions. They take the next n receives posted,
  // each exactly once (completion order may differ: a multi-packet message
  // takes its receive at its first packet and completes at its last), each
  // buffer holds one message whole, from the QP the completion names, and a
  // QP's messages took receives in the order it sent them.
  void expect_landed(size_t n) {
    auto rc = collect(b_.rcq, n, 10 * kNanosPerUs, 100000);
    ASSERT_EQ(rc.size(), n);
    std::sort(rc.begin(), rc.end(), [](const Cqe& x, const Cqe& y) { return x.wr_id < y.wr_id; });
    int64_t last_msg[2] = {-1, -1};
    for (const Cqe& c : rc) {
      ASSERT_EQ(c.status, WcStatus::kSuccess);
      ASSERT_EQ(c.wr_id, next_take_) << "each of the next receives posted, once";
      ASSERT_EQ(c.byte_len, kLen);
      const uint8_t* got = dst_.bytes.data() + c.wr_id * kSlot;
      int64_t msg = -1;
      for (uint32_t m = 0; m < kMsgs && msg < 0; ++m) {
        if (seen_[m] || got[0] != uint8_t(m * 7) || got[1] != uint8_t(m * 7 + 13)) continue;
        if (std::equal(got, got + kLen, src_.bytes.data() + m * kSlot)) msg = m;
      }
      ASSERT_GE(msg, 0) << "receive " << c.wr_id << " holds no message whole";
      seen_[msg] = true;
      const int q = int(msg % 2);
      EXPECT_EQ(c.qp_num, pairs_[q].b->qpn());
      EXPECT_GT(msg, last_msg[q]) << "QP " << q << "'s messages out of order";
      last_msg[q] = msg;
      EXPECT_EQ(got[kLen], 0xEE);
      ++next_take_;
    }
  }

  static constexpr uint32_t kMsgs = 96;
  Srq* srq_ = nullptr;
  RcPair pairs_[2];
  Buffer dst_, src_;
  uint64_t next_wr_ = 0, next_take_ = 0;
  bool seen_[kMsgs] = {};
};

TEST_F(SrqResizeTest, ResizedBetweenPollsWhileMessagesArrive) {
  for (int i = 0; i < 8; ++i) ASSERT_EQ(post_srq(), 0);
  EXPECT_EQ(post_srq(), ENOMEM);
  // 16 messages on 8 receives; grow while they arrive, packet by packet.
  for (uint32_t m = 0; m < 16; ++m) send(m);
  step(2 * kNanosPerUs);
  ASSERT_TRUE(resize(64).is_ok());
  EXPECT_EQ(srq_->capacity(), 64u);
  while (next_wr_ < 40) ASSERT_EQ(post_srq(), 0);
  for (uint32_t m = 16; m < 40; ++m) {
    send(m);
    step(2 * kNanosPerUs);
    // Shrink to what is posted now, then grow again, between polls.
    const uint32_t posted = srq_->outstanding();
    if (posted > 1) {
      EXPECT_EQ(resize(posted - 1).code(), Errc::kInvalidArgument);
    }
    ASSERT_TRUE(resize(std::max<uint32_t>(posted, 1)).is_ok());
    ASSERT_TRUE(resize(64).is_ok());
  }
  expect_landed(40);
  EXPECT_EQ(srq_->outstanding(), 0u);
  EXPECT_EQ(collect(a_.scq, 40).size(), 40u);
}

TEST_F(SrqResizeTest, ShrinkRefusedBelowThePostedAndTheSrqGoesOn) {
  ASSERT_TRUE(resize(32).is_ok());
  for (int i = 0; i < 20; ++i) ASSERT_EQ(post_srq(), 0);
  EXPECT_EQ(resize(19).code(), Errc::kInvalidArgument);
  EXPECT_EQ(srq_->capacity(), 32u);
  for (uint32_t m = 0; m < 4; ++m) send(m);
  expect_landed(4);
  ASSERT_TRUE(resize(16).is_ok());
  EXPECT_EQ(srq_->capacity(), 16u);
  while (post_srq() == 0) {
  }
  EXPECT_EQ(srq_->outstanding(), 16u);
  for (uint32_t m = 4; m < 20; ++m) send(m);
  expect_landed(16);
  EXPECT_EQ(collect(a_.scq, 20).size(), 20u);
}

TEST_F(SrqResizeTest, LimitBoundsTheSizeAndFiresAfterAResize) {
  for (int i = 0; i < 8; ++i) ASSERT_EQ(post_srq(), 0);
  ASSERT_TRUE(b_.dev->modify_srq(srq_, 6).is_ok());
  EXPECT_EQ(resize(5).code(), Errc::kInvalidArgument);
  ASSERT_TRUE(resize(32).is_ok());
  EXPECT_EQ(srq_->limit(), 6u);
  for (int i = 0; i < 4; ++i) ASSERT_EQ(post_srq(), 0);  // 12 posted
  for (uint32_t m = 0; m < 6; ++m) send(m);             // 6 left: not below 6
  expect_landed(6);
  int fired = 0;
  for (const AsyncEvent& e : events(b_)) fired += e.type == AsyncEventType::kSrqLimitReached;
  EXPECT_EQ(fired, 0);
  send(6);  // 5 left
  expect_landed(1);
  for (const AsyncEvent& e : events(b_)) {
    if (e.type != AsyncEventType::kSrqLimitReached) continue;
    EXPECT_EQ(e.srq, srq_);
    ++fired;
  }
  EXPECT_EQ(fired, 1);
  EXPECT_EQ(srq_->limit(), 0u);
}

}  // namespace
}  // namespace droce::nic::test
