// The device's command interface and life cycle (IBTA vol. 1 ch. 11 verbs;
// issue 4 sections 1, 4 and 7): removal with work outstanding, busy objects,
// limits, posting errors, the async event fd, and the engine thread.
#include <poll.h>
#include <pthread.h>
#include <rte_mempool.h>
#include <sched.h>
#include <unistd.h>

#include <chrono>
#include <thread>

#include "tests/nic/engine/engine_checks.h"
#include "tests/nic/engine/engine_fixture.h"

namespace droce::nic::test {
namespace {

constexpr uint32_t kAll =
    kAccessLocalWrite | kAccessRemoteWrite | kAccessRemoteRead | kAccessRemoteAtomic;
constexpr WcStatus kOk = WcStatus::kSuccess;
constexpr WcStatus kFlush = WcStatus::kWrFlushErr;

bool fd_readable(int fd) {
  pollfd p{fd, POLLIN, 0};
  return ::poll(&p, 1, 0) == 1 && (p.revents & POLLIN);
}

class DeviceTest : public EngineTest {
 protected:
  int post_write(Qp* qp, Ledger& l, uint64_t wr_id, bool signaled, const Buffer& src,
                 const Buffer& dst, uint32_t len = 64) {
    EXPECT_LE(len, src.bytes.size());
    SendWqe w = wqe(WrOpcode::kRdmaWrite, wr_id, signaled ? kSendSignaled : 0);
    Sge s{src.addr(), len, src.key};
    w.num_sge = 1;
    w.remote_addr = dst.addr();
    w.rkey = dst.key;
    const int rc = qp->post_send(w, &s, nullptr);
    if (rc == 0) l.post(wr_id, signaled);
    return rc;
  }
  int post_recv(Qp* qp, Ledger& l, uint64_t wr_id, const Buffer& b) {
    Sge s{b.addr(), uint32_t(b.bytes.size()), b.key};
    const int rc = qp->post_recv(wr_id, &s, 1);
    if (rc == 0) l.post(wr_id, true);
    return rc;
  }
  void to_state(Side& s, Qp* qp, QpState st) {
    QpAttrs a;
    a.state = st;
    const Status r = s.dev->modify_qp(qp, a, uint32_t(QpAttr::kState));
    ASSERT_TRUE(r.is_ok()) << r.message();
  }
  static std::vector<Cqe> of_qp(const std::vector<Cqe>& all, uint32_t qpn) {
    std::vector<Cqe> out;
    for (const Cqe& c : all) {
      if (c.qp_num == qpn) out.push_back(c);
    }
    return out;
  }
};

// ---- removal ----

TEST_F(DeviceTest, RemoveFlushesEveryQpThenRaisesDeviceFatal) {
  Buffer src = make_buffer(a_, 4096, kAll, 1);
  Buffer rbuf = make_buffer(a_, 4096, kAll);
  Buffer dst = make_buffer(b_, 4096, kAll);
  // Two connected RC QPs with WQEs done and in flight, a UD QP with WQEs not
  // started, a QP in RESET, a QP in INIT with receives, a QP on an SRQ.
  Qp* rc1 = make_qp(a_, QpType::kRc, 32);
  Qp* rc2 = make_qp(a_, QpType::kRc, 32);
  Qp* peer1 = make_qp(b_, QpType::kRc, 32);
  Qp* peer2 = make_qp(b_, QpType::kRc, 32);
  connect(a_, rc1, b_, peer1);
  connect(b_, peer1, a_, rc1);
  connect(a_, rc2, b_, peer2);
  connect(b_, peer2, a_, rc2);
  Qp* ud = make_qp(a_, QpType::kUd, 32);
  Qp* udb = make_qp(b_, QpType::kUd, 32);
  connect(a_, ud, b_, udb);
  Qp* idle = make_qp(a_, QpType::kRc, 8);
  Qp* init = make_qp(a_, QpType::kUc, 8);
  QpAttrs ia;
  ia.state = QpState::kInit;
  ASSERT_TRUE(
      a_.dev
          ->modify_qp(init, ia,
                      QpAttr::kState | QpAttr::kPkeyIndex | QpAttr::kPort | QpAttr::kAccessFlags)
          .is_ok());
  Srq* srq = a_.dev->create_srq(a_.pd, 8, 1).value();
  QpInitAttr si;
  si.type = QpType::kRc;
  si.pd = a_.pd;
  si.send_cq = a_.scq;
  si.recv_cq = a_.rcq;
  si.srq = srq;
  si.cap.max_send_wr = 8;
  Qp* on_srq = a_.dev->create_qp(si).value();
  Sge ss{rbuf.addr(), 64, rbuf.key};
  ASSERT_EQ(srq->post_recv(900, &ss, 1), 0);
  drain_events(*a_.dev);

  Ledger l;
  ASSERT_EQ(post_write(rc1, l, 1, true, src, dst), 0);
  ASSERT_EQ(post_write(rc2, l, 2, false, src, dst), 0);
  ASSERT_TRUE(pump([&] { return rc1->sq().outstanding() + rc2->sq().outstanding() == 0; }));
  l.on_cqes(drain(a_.scq));
  ASSERT_EQ(l.in_flight(), 0);
  // In flight: qb's engine stops running.
  for (uint64_t i = 10; i < 14; ++i) ASSERT_EQ(post_write(rc1, l, i, i % 2 == 0, src, dst), 0);
  for (uint64_t i = 20; i < 23; ++i) ASSERT_EQ(post_write(rc2, l, i, i % 2 == 1, src, dst), 0);
  for (uint64_t i = 30; i < 33; ++i) ASSERT_EQ(post_recv(rc1, l, i, rbuf), 0);
  for (uint64_t i = 40; i < 42; ++i) ASSERT_EQ(post_recv(init, l, i, rbuf), 0);
  poll_once(*a_.dev);
  // Not started: posted after the last poll.
  for (uint64_t i = 50; i < 53; ++i) {
    SendWqe w = wqe(WrOpcode::kSend, i, i == 51 ? 0 : kSendSignaled);
    w.ah = 1;
    w.remote_qpn = udb->qpn();
    w.remote_qkey = 0x11111111;
    ASSERT_EQ(ud->post_send(w, nullptr, nullptr), 0);
    l.post(i, i != 51);
  }
  EXPECT_GT(l.in_flight(), 0);

  a_.dev->remove();
  EXPECT_TRUE(a_.dev->removed());
  for (Qp* qp : {rc1, rc2, ud, idle, init, on_srq}) {
    EXPECT_EQ(qp->state(), QpState::kErr) << qp->qpn();
    EXPECT_EQ(a_.dev->query_qp(qp).cur_state, QpState::kErr) << qp->qpn();
  }
  // Everything is flushed by the time remove() returns, per QP in posting order.
  const auto sc = drain(a_.scq);
  const auto rc = drain(a_.rcq);
  expect_cqes(of_qp(sc, rc1->qpn()), {{10, kFlush}, {11, kFlush}, {12, kFlush}, {13, kFlush}},
              rc1->qpn(), "rc1 send");
  expect_cqes(of_qp(sc, rc2->qpn()), {{20, kFlush}, {21, kFlush}, {22, kFlush}}, rc2->qpn(),
              "rc2 send");
  expect_cqes(of_qp(sc, ud->qpn()), {{50, kFlush}, {51, kFlush}, {52, kFlush}}, ud->qpn(),
              "ud send");
  expect_cqes(of_qp(rc, rc1->qpn()), {{30, kFlush}, {31, kFlush}, {32, kFlush}}, rc1->qpn(),
              "rc1 recv");
  expect_cqes(of_qp(rc, init->qpn()), {{40, kFlush}, {41, kFlush}}, init->qpn(), "init recv");
  EXPECT_EQ(sc.size(), 10u);
  EXPECT_EQ(rc.size(), 5u);  // the SRQ is not flushed
  l.on_cqes(sc);
  l.on_cqes(rc);
  EXPECT_EQ(l.in_flight(), 0);

  // Events: the SRQ QP's last WQE, the port going down, and DEVICE_FATAL last.
  auto evs = drain_events(*a_.dev);
  ASSERT_GE(evs.size(), 2u);
  EXPECT_EQ(evs.back().type, AsyncEventType::kDeviceFatal);
  EXPECT_EQ(evs[evs.size() - 2].type, AsyncEventType::kPortErr);
  int fatal = 0, last_wqe = 0;
  for (const AsyncEvent& e : evs) {
    fatal += e.type == AsyncEventType::kDeviceFatal;
    last_wqe += e.type == AsyncEventType::kQpLastWqeReached && e.qpn == on_srq->qpn();
  }
  EXPECT_EQ(fatal, 1);
  EXPECT_EQ(last_wqe, 1);

  // Twice: nothing more. Engines keep running: nothing more completes.
  a_.dev->remove();
  pump([] { return false; }, 20 * kNanosPerMs);
  EXPECT_TRUE(drain(a_.scq).empty());
  EXPECT_TRUE(drain(a_.rcq).empty());
  EXPECT_TRUE(drain_events(*a_.dev).empty());

  // Posting after removal: accepted (the QP is in ERR) and flushed.
  ASSERT_EQ(post_write(rc1, l, 60, false, src, dst), 0);
  ASSERT_EQ(post_recv(rc1, l, 61, rbuf), 0);
  poll_once(*a_.dev);
  auto late = drain(a_.scq);
  expect_cqes(late, {{60, kFlush}}, rc1->qpn(), "posted after removal");
  l.on_cqes(late);
  late = drain(a_.rcq);
  expect_cqes(late, {{61, kFlush}}, rc1->qpn(), "recv posted after removal");
  l.on_cqes(late);
  EXPECT_EQ(l.in_flight(), 0);

  // Commands: nothing can come up again, everything can be torn down.
  QpAttrs a = a_.dev->query_qp(rc1);
  a.state = QpState::kRts;
  EXPECT_EQ(a_.dev->modify_qp(rc1, a, uint32_t(QpAttr::kState)).code(), Errc::kIo);
  EXPECT_EQ(rc1->state(), QpState::kErr);
  to_state(a_, rc1, QpState::kErr);
  to_state(a_, rc1, QpState::kReset);
  EXPECT_TRUE(drain(a_.scq).empty());
  a.state = QpState::kInit;
  EXPECT_EQ(
      a_.dev
          ->modify_qp(rc1, a,
                      QpAttr::kState | QpAttr::kPkeyIndex | QpAttr::kPort | QpAttr::kAccessFlags)
          .code(),
      Errc::kIo);
  EXPECT_EQ(rc1->state(), QpState::kReset);
  EXPECT_FALSE(a_.dev->alloc_pd().is_ok());
  EXPECT_FALSE(a_.dev->create_cq(16).is_ok());
  EXPECT_FALSE(a_.dev->reg_mr(a_.pd, src.bytes.data(), src.addr(), 64, kAll).is_ok());
  EXPECT_FALSE(a_.dev->create_srq(a_.pd, 8, 1).is_ok());
  QpInitAttr qi;
  qi.pd = a_.pd;
  qi.send_cq = a_.scq;
  qi.recv_cq = a_.rcq;
  qi.cap.max_send_wr = qi.cap.max_recv_wr = 4;
  const auto late_qp = a_.dev->create_qp(qi);
  ASSERT_FALSE(late_qp.is_ok());
  EXPECT_EQ(late_qp.status().code(), Errc::kIo);
  for (Qp* qp : {rc1, rc2, ud, idle, init, on_srq}) {
    EXPECT_TRUE(a_.dev->destroy_qp(qp).is_ok());
  }
  EXPECT_TRUE(a_.dev->destroy_srq(srq).is_ok());
  EXPECT_TRUE(a_.dev->dereg_mr(src.key).is_ok());
  EXPECT_TRUE(a_.dev->dereg_mr(rbuf.key).is_ok());
  EXPECT_TRUE(a_.dev->destroy_cq(a_.scq).is_ok());
  EXPECT_TRUE(a_.dev->destroy_cq(a_.rcq).is_ok());
  EXPECT_TRUE(a_.dev->dealloc_pd(a_.pd).is_ok());
  // The peer is untouched: its QPs still work among themselves.
  EXPECT_EQ(peer1->state(), QpState::kRts);
}

// ---- objects in use ----

TEST_F(DeviceTest, DestroyCqInUseIsBusyAndTheCqStillWorks) {
  CompletionQueue* cq = a_.dev->create_cq(16).value();
  QpInitAttr init;
  init.type = QpType::kRc;
  init.pd = a_.pd;
  init.send_cq = cq;
  init.recv_cq = a_.rcq;
  init.cap.max_send_wr = init.cap.max_recv_wr = 8;
  Qp* qa = a_.dev->create_qp(init).value();
  Qp* qb = make_qp(b_, QpType::kRc);
  connect(a_, qa, b_, qb);
  connect(b_, qb, a_, qa);
  const Status st = a_.dev->destroy_cq(cq);
  EXPECT_EQ(st.code(), Errc::kBusy) << st.message();
  EXPECT_EQ(a_.dev->destroy_cq(a_.rcq).code(), Errc::kBusy);  // used as recv CQ
  ASSERT_EQ(qb->post_recv(7, nullptr, 0), 0);
  SendWqe w = wqe(WrOpcode::kSend, 8);
  ASSERT_EQ(qa->post_send(w, nullptr, nullptr), 0);
  auto sc = wait_cqes(cq, 1);
  expect_cqes(sc, {{8, kOk}}, qa->qpn(), "CQ still usable");
  ASSERT_TRUE(a_.dev->destroy_qp(qa).is_ok());
  EXPECT_TRUE(a_.dev->destroy_cq(cq).is_ok());
  EXPECT_EQ(a_.dev->destroy_cq(cq).code(), Errc::kInvalidArgument);  // already gone
  // A CQ shared as send and receive CQ of one QP counts that QP once per role.
  CompletionQueue* both = a_.dev->create_cq(16).value();
  init.send_cq = init.recv_cq = both;
  Qp* q2 = a_.dev->create_qp(init).value();
  EXPECT_EQ(a_.dev->destroy_cq(both).code(), Errc::kBusy);
  ASSERT_TRUE(a_.dev->destroy_qp(q2).is_ok());
  EXPECT_TRUE(a_.dev->destroy_cq(both).is_ok());
}

TEST_F(DeviceTest, DeallocPdInUseIsBusy) {
  const uint32_t pd = a_.dev->alloc_pd().value();
  std::vector<uint8_t> mem(64);
  const uint32_t key = a_.dev->reg_mr(pd, mem.data(), 0x1000, mem.size(), kAll).value();
  EXPECT_EQ(a_.dev->dealloc_pd(pd).code(), Errc::kBusy);
  ASSERT_TRUE(a_.dev->dereg_mr(key).is_ok());

  QpInitAttr init;
  init.type = QpType::kUd;
  init.pd = pd;
  init.send_cq = a_.scq;
  init.recv_cq = a_.rcq;
  init.cap.max_send_wr = init.cap.max_recv_wr = 4;
  Qp* qp = a_.dev->create_qp(init).value();
  EXPECT_EQ(a_.dev->dealloc_pd(pd).code(), Errc::kBusy);
  ASSERT_TRUE(a_.dev->destroy_qp(qp).is_ok());

  Srq* srq = a_.dev->create_srq(pd, 4, 1).value();
  EXPECT_EQ(a_.dev->dealloc_pd(pd).code(), Errc::kBusy);
  ASSERT_TRUE(a_.dev->destroy_srq(srq).is_ok());

  AddressVector av = av_to(b_);
  const uint32_t ah = a_.dev->create_ah(pd, av).value();
  EXPECT_EQ(a_.dev->dealloc_pd(pd).code(), Errc::kBusy);
  ASSERT_TRUE(a_.dev->destroy_ah(ah).is_ok());

  EXPECT_TRUE(a_.dev->dealloc_pd(pd).is_ok());
  EXPECT_EQ(a_.dev->dealloc_pd(pd).code(), Errc::kInvalidArgument);
  EXPECT_EQ(a_.dev->dealloc_pd(0).code(), Errc::kInvalidArgument);
}

TEST_F(DeviceTest, DestroySrqInUseIsBusy) {
  Srq* srq = a_.dev->create_srq(a_.pd, 4, 1).value();
  QpInitAttr init;
  init.type = QpType::kRc;
  init.pd = a_.pd;
  init.send_cq = a_.scq;
  init.recv_cq = a_.rcq;
  init.srq = srq;
  init.cap.max_send_wr = 4;
  Qp* qp = a_.dev->create_qp(init).value();
  EXPECT_EQ(a_.dev->destroy_srq(srq).code(), Errc::kBusy);
  ASSERT_TRUE(a_.dev->destroy_qp(qp).is_ok());
  EXPECT_TRUE(a_.dev->destroy_srq(srq).is_ok());
}

TEST_F(DeviceTest, DeregBadKeys) {
  std::vector<uint8_t> mem(64);
  EXPECT_EQ(a_.dev->dereg_mr(0).code(), Errc::kInvalidArgument);
  EXPECT_EQ(a_.dev->dereg_mr(0xFFFFFFFF).code(), Errc::kInvalidArgument);
  const uint32_t k1 = a_.dev->reg_mr(a_.pd, mem.data(), 0, mem.size(), kAll).value();
  EXPECT_EQ(a_.dev->dereg_mr(k1 ^ 0x01).code(), Errc::kInvalidArgument);  // wrong tag
  ASSERT_TRUE(a_.dev->dereg_mr(k1).is_ok());
  EXPECT_EQ(a_.dev->dereg_mr(k1).code(), Errc::kInvalidArgument);  // twice
  // The PD count went back: the PD can go.
  const uint32_t pd = a_.dev->alloc_pd().value();
  const uint32_t k2 = a_.dev->reg_mr(pd, mem.data(), 0, mem.size(), kAll).value();
  EXPECT_EQ(a_.dev->dereg_mr(k2 + 0x1000).code(), Errc::kInvalidArgument);
  EXPECT_EQ(a_.dev->dealloc_pd(pd).code(), Errc::kBusy);
  ASSERT_TRUE(a_.dev->dereg_mr(k2).is_ok());
  EXPECT_TRUE(a_.dev->dealloc_pd(pd).is_ok());
}

// "When dereg_mr returns, the engine never touches that memory again"
// (docs/engine.md), even in the middle of a multi-packet WRITE into it: the
// rest of the message fails with a remote access error instead of landing.
TEST_F(DeviceTest, DeregMidWriteNeverTouchesTheRegionAgain) {
  Qp* qa = make_qp(a_, QpType::kRc);
  Qp* qb = make_qp(b_, QpType::kRc);
  connect(a_, qa, b_, qb);
  connect(b_, qb, a_, qa);
  Buffer src = make_buffer(a_, 64 * 1024, kAll, 0x11);
  Buffer dst = make_buffer(b_, 64 * 1024, kAll, 0);
  Ledger l;
  ASSERT_EQ(post_write(qa, l, 1, true, src, dst, 8), 0);  // resolves ARP both ways
  l.on_cqes(wait_cqes(a_.scq, 1));
  drain_events(*b_.dev);
  ASSERT_EQ(post_write(qa, l, 2, true, src, dst, 40 * 1024), 0);  // 40 packets
  poll_once(*a_.dev);                                             // 32 leave
  poll_once(*b_.dev);  // 32 land: the WRITE is in progress
  ASSERT_EQ(dst.bytes[32 * 1024 - 1], 0x11);
  ASSERT_EQ(dst.bytes[32 * 1024], 0);
  ASSERT_TRUE(b_.dev->dereg_mr(dst.key).is_ok());
  std::fill(dst.bytes.begin(), dst.bytes.end(), 0xEE);  // the application reuses its memory
  auto sc = wait_cqes(a_.scq, 1);
  expect_cqes(sc, {{2, WcStatus::kRemAccessErr}}, qa->qpn(), "WRITE into a deregistered MR");
  l.on_cqes(sc);
  EXPECT_EQ(l.in_flight(), 0);
  size_t touched = 0;
  for (uint8_t b : dst.bytes) touched += b != 0xEE;
  EXPECT_EQ(touched, 0u);
  EXPECT_EQ(qb->state(), QpState::kErr);
  bool access_err = false;
  for (const AsyncEvent& e : drain_events(*b_.dev)) {
    access_err |= e.type == AsyncEventType::kQpAccessErr && e.qpn == qb->qpn();
  }
  EXPECT_TRUE(access_err);
}

// The same memory registered twice (two PDs, as SMC-R registers an RMB once
// per link): deregistering the other MR leaves a WRITE into this one alone.
TEST_F(DeviceTest, DeregOfAnotherMrOverTheSameMemoryLeavesTheWriteAlone) {
  Qp* qa = make_qp(a_, QpType::kRc);
  Qp* qb = make_qp(b_, QpType::kRc);
  connect(a_, qa, b_, qb);
  connect(b_, qb, a_, qa);
  Buffer src = make_buffer(a_, 64 * 1024, kAll, 0x11);
  Buffer dst = make_buffer(b_, 64 * 1024, kAll, 0);
  auto pd2 = b_.dev->alloc_pd();
  ASSERT_TRUE(pd2.is_ok());
  auto other = b_.dev->reg_mr(pd2.value(), dst.bytes.data(), dst.addr(), dst.bytes.size(), kAll);
  ASSERT_TRUE(other.is_ok()) << other.status().message();
  Ledger l;
  ASSERT_EQ(post_write(qa, l, 1, true, src, dst, 8), 0);  // resolves ARP both ways
  l.on_cqes(wait_cqes(a_.scq, 1));
  ASSERT_EQ(post_write(qa, l, 2, true, src, dst, 40 * 1024), 0);  // 40 packets
  poll_once(*a_.dev);                                             // 32 leave
  poll_once(*b_.dev);  // 32 land: the WRITE is in progress
  ASSERT_EQ(dst.bytes[32 * 1024], 0);
  ASSERT_TRUE(b_.dev->dereg_mr(other.value()).is_ok());
  auto sc = wait_cqes(a_.scq, 1);
  expect_cqes(sc, {{2, WcStatus::kSuccess}}, qa->qpn(), "WRITE into the MR still registered");
  l.on_cqes(sc);
  EXPECT_EQ(l.in_flight(), 0);
  EXPECT_EQ(dst.bytes[40 * 1024 - 1], 0x11);
  EXPECT_EQ(qb->state(), QpState::kRts);
}

TEST_F(DeviceTest, DeregMidUcWriteDropsTheRestOfTheMessage) {
  Qp* qa = make_qp(a_, QpType::kUc);
  Qp* qb = make_qp(b_, QpType::kUc);
  connect(a_, qa, b_, qb);
  connect(b_, qb, a_, qa);
  Buffer src = make_buffer(a_, 64 * 1024, kAll, 0x11);
  Buffer dst = make_buffer(b_, 64 * 1024, kAll, 0);
  Buffer dst2 = make_buffer(b_, 64, kAll, 0);
  Ledger l;
  ASSERT_EQ(post_write(qa, l, 1, true, src, dst, 8), 0);
  ASSERT_TRUE(pump([&] { return dst.bytes[7] == 0x11; }));
  l.on_cqes(wait_cqes(a_.scq, 1));
  ASSERT_EQ(post_write(qa, l, 2, true, src, dst, 40 * 1024), 0);
  poll_once(*a_.dev);
  poll_once(*b_.dev);
  ASSERT_EQ(dst.bytes[32 * 1024 - 1], 0x11);
  ASSERT_TRUE(b_.dev->dereg_mr(dst.key).is_ok());
  std::fill(dst.bytes.begin(), dst.bytes.end(), 0xEE);
  l.on_cqes(wait_cqes(a_.scq, 1));  // UC completes once sent
  EXPECT_EQ(l.in_flight(), 0);
  pump([] { return false; }, 5 * kNanosPerMs);
  size_t touched = 0;
  for (uint8_t b : dst.bytes) touched += b != 0xEE;
  EXPECT_EQ(touched, 0u);
  // UC has no connection to break: the next message lands.
  EXPECT_EQ(qb->state(), QpState::kRts);
  ASSERT_EQ(post_write(qa, l, 3, true, src, dst2, 64), 0);
  l.on_cqes(wait_cqes(a_.scq, 1));
  ASSERT_TRUE(pump([&] { return dst2.bytes[63] == 0x11; }));
}

// ---- SRQ limit, CQ events, AH ----

TEST_F(DeviceTest, SrqLimitEventFiresOnceBelowTheLimit) {
  Srq* srq = b_.dev->create_srq(b_.pd, 8, 1).value();
  EXPECT_EQ(b_.dev->modify_srq(srq, 9).code(), Errc::kInvalidArgument);  // above capacity
  ASSERT_TRUE(b_.dev->modify_srq(srq, 3).is_ok());
  QpInitAttr init;
  init.type = QpType::kRc;
  init.pd = b_.pd;
  init.send_cq = b_.scq;
  init.recv_cq = b_.rcq;
  init.srq = srq;
  init.cap.max_send_wr = 8;
  Qp* qb = b_.dev->create_qp(init).value();
  Qp* qa = make_qp(a_, QpType::kRc);
  connect(a_, qa, b_, qb);
  connect(b_, qb, a_, qa);
  Buffer rb = make_buffer(b_, 64, kAll);
  for (uint64_t i = 0; i < 6; ++i) {
    Sge s{rb.addr(), 64, rb.key};
    ASSERT_EQ(srq->post_recv(i, &s, 1), 0);
  }
  drain_events(*b_.dev);
  auto count_limit = [&] {
    int n = 0;
    for (const AsyncEvent& e : drain_events(*b_.dev)) {
      if (e.type == AsyncEventType::kSrqLimitReached) {
        EXPECT_EQ(e.srq, srq);
        ++n;
      }
    }
    return n;
  };
  for (uint64_t i = 0; i < 3; ++i) {
    SendWqe w = wqe(WrOpcode::kSend, 10 + i);
    ASSERT_EQ(qa->post_send(w, nullptr, nullptr), 0);
  }
  ASSERT_EQ(wait_cqes(b_.rcq, 3).size(), 3u);
  EXPECT_EQ(count_limit(), 0);  // 3 left: not below 3
  SendWqe w = wqe(WrOpcode::kSend, 13);
  ASSERT_EQ(qa->post_send(w, nullptr, nullptr), 0);
  ASSERT_EQ(wait_cqes(b_.rcq, 1).size(), 1u);
  EXPECT_EQ(count_limit(), 1);  // 2 left
  EXPECT_EQ(srq->limit(), 0u);  // disarmed
  w.wr_id = 14;
  ASSERT_EQ(qa->post_send(w, nullptr, nullptr), 0);
  ASSERT_EQ(wait_cqes(b_.rcq, 1).size(), 1u);
  EXPECT_EQ(count_limit(), 0);  // once
  wait_cqes(a_.scq, 5);
}

TEST_F(DeviceTest, CqEventFdFiresForArmedCompletionsAndFlushErrors) {
  Qp* qa = make_qp(a_, QpType::kRc);
  Qp* qb = make_qp(b_, QpType::kRc);
  connect(a_, qa, b_, qb);
  connect(b_, qb, a_, qa);
  CompletionQueue* cq = b_.rcq;
  const int fd = cq->event_fd();
  for (uint64_t i = 0; i < 5; ++i) ASSERT_EQ(qb->post_recv(i, nullptr, 0), 0);
  EXPECT_FALSE(fd_readable(fd));
  EXPECT_FALSE(cq->arm(false));
  SendWqe w = wqe(WrOpcode::kSend, 100);
  ASSERT_EQ(qa->post_send(w, nullptr, nullptr), 0);
  ASSERT_TRUE(pump([&] { return fd_readable(fd); }));
  uint64_t v;
  ASSERT_EQ(::read(fd, &v, 8), 8);
  EXPECT_EQ(drain(cq).size(), 1u);
  // Solicited only: a plain SEND does not wake, a solicited one does.
  EXPECT_FALSE(cq->arm(true));
  w.wr_id = 101;
  ASSERT_EQ(qa->post_send(w, nullptr, nullptr), 0);
  ASSERT_EQ(wait_cqes(a_.scq, 2).size(), 2u);
  EXPECT_FALSE(fd_readable(fd));
  w = wqe(WrOpcode::kSend, 102, kSendSignaled | kSendSolicited);
  ASSERT_EQ(qa->post_send(w, nullptr, nullptr), 0);
  ASSERT_TRUE(pump([&] { return fd_readable(fd); }));
  ASSERT_EQ(::read(fd, &v, 8), 8);
  EXPECT_EQ(drain(cq).size(), 2u);
  // Solicited only also wakes on an unsuccessful completion: the flush.
  EXPECT_FALSE(cq->arm(true));
  to_state(b_, qb, QpState::kErr);
  EXPECT_TRUE(fd_readable(fd));
  const auto flushed = drain(cq);
  expect_cqes(flushed, {{3, kFlush}, {4, kFlush}}, qb->qpn(), "flush wakes");
}

TEST_F(DeviceTest, AddressHandles) {
  AddressVector av = av_to(b_);
  const uint32_t ah = a_.dev->create_ah(a_.pd, av).value();
  EXPECT_NE(a_.dev->ah(ah), nullptr);
  EXPECT_EQ(a_.dev->ah(ah)->dst_ip, b_.dev->port().ipv4());
  AddressVector bad = av;
  bad.dgid[10] = 0;
  EXPECT_EQ(a_.dev->create_ah(a_.pd, bad).status().code(), Errc::kInvalidArgument);
  EXPECT_EQ(a_.dev->create_ah(999, av).status().code(), Errc::kInvalidArgument);
  ASSERT_TRUE(a_.dev->destroy_ah(ah).is_ok());
  EXPECT_EQ(a_.dev->ah(ah), nullptr);
  EXPECT_EQ(a_.dev->destroy_ah(ah).code(), Errc::kInvalidArgument);
  EXPECT_EQ(a_.dev->destroy_ah(0).code(), Errc::kInvalidArgument);
}

// ---- limits ----

TEST_F(DeviceTest, CreateQpBeyondLimitsIsInvalid) {
  const DeviceAttr& d = a_.dev->attr();
  auto base = [&] {
    QpInitAttr init;
    init.type = QpType::kRc;
    init.pd = a_.pd;
    init.send_cq = a_.scq;
    init.recv_cq = a_.rcq;
    init.cap.max_send_wr = init.cap.max_recv_wr = 4;
    return init;
  };
  auto expect_invalid = [&](const QpInitAttr& init, const char* what) {
    auto r = a_.dev->create_qp(init);
    ASSERT_FALSE(r.is_ok()) << what;
    EXPECT_EQ(r.status().code(), Errc::kInvalidArgument) << what << ": " << r.status().message();
  };
  QpInitAttr i = base();
  i.cap.max_send_wr = d.max_qp_wr + 1;
  expect_invalid(i, "max_send_wr");
  i = base();
  i.cap.max_send_wr = 0;
  expect_invalid(i, "max_send_wr 0");
  i = base();
  i.cap.max_recv_wr = d.max_qp_wr + 1;
  expect_invalid(i, "max_recv_wr");
  i = base();
  i.cap.max_recv_wr = 0;
  expect_invalid(i, "max_recv_wr 0 without SRQ");
  i = base();
  i.cap.max_send_sge = d.max_sge + 1;
  expect_invalid(i, "max_send_sge");
  i = base();
  i.cap.max_recv_sge = d.max_sge + 1;
  expect_invalid(i, "max_recv_sge");
  i = base();
  i.cap.max_inline_data = d.max_inline_data + 1;
  expect_invalid(i, "max_inline_data");
  i = base();
  i.send_cq = nullptr;
  expect_invalid(i, "no send CQ");
  i = base();
  i.pd = 999;
  expect_invalid(i, "no such PD");
  i = base();
  CompletionQueue* foreign = b_.dev->create_cq(4).value();
  i.recv_cq = foreign;
  expect_invalid(i, "CQ of another device");
  i = base();
  i.srq = b_.dev->create_srq(b_.pd, 4, 1).value();
  expect_invalid(i, "SRQ of another device");
  // None of those left a trace: the PD and CQs are free to go.
  const uint32_t pd = a_.pd;
  EXPECT_TRUE(a_.dev->destroy_cq(a_.scq).is_ok());
  EXPECT_TRUE(a_.dev->destroy_cq(a_.rcq).is_ok());
  EXPECT_TRUE(a_.dev->dealloc_pd(pd).is_ok());
}

// A full table refuses with ENOMEM; a destroy frees room for one more, which
// gets a new number (QPNs are handed out cyclically, not lowest-first).
TEST_F(DeviceTest, TooManyQpsIsNoMemoryAndTheSlotIsReused) {
  Device::Options opts;
  opts.engine_thread = false;
  opts.attr.max_qp = 3;
  a_.dev.reset();
  auto dev = Device::create(&pair_->a(), opts);
  ASSERT_TRUE(dev.is_ok());
  a_.dev = std::move(dev.value());
  a_.pd = a_.dev->alloc_pd().value();
  a_.scq = a_.dev->create_cq(16).value();
  a_.rcq = a_.scq;
  std::vector<Qp*> qps;
  for (int i = 0; i < 3; ++i) qps.push_back(make_qp(a_, QpType::kUd, 4));
  QpInitAttr init;
  init.type = QpType::kUd;
  init.pd = a_.pd;
  init.send_cq = init.recv_cq = a_.scq;
  init.cap.max_send_wr = init.cap.max_recv_wr = 4;
  auto r = a_.dev->create_qp(init);
  ASSERT_FALSE(r.is_ok());
  EXPECT_EQ(r.status().code(), Errc::kNoMemory);
  const uint32_t qpn = qps[1]->qpn();
  ASSERT_TRUE(a_.dev->destroy_qp(qps[1]).is_ok());
  r = a_.dev->create_qp(init);
  ASSERT_TRUE(r.is_ok());
  EXPECT_NE(r.value()->qpn(), qpn);
  EXPECT_EQ(a_.dev->qp_by_num(qpn), nullptr);
  EXPECT_EQ(a_.dev->qp_by_num(r.value()->qpn()), r.value());
  EXPECT_FALSE(a_.dev->create_qp(init).is_ok());
}

// ---- posting errors (libibverbs errnos) ----

TEST_F(DeviceTest, PostingErrors) {
  Buffer buf = make_buffer(a_, 4096, kAll);
  QpInitAttr init;
  init.type = QpType::kRc;
  init.pd = a_.pd;
  init.send_cq = a_.scq;
  init.recv_cq = a_.rcq;
  init.cap.max_send_wr = 4;
  init.cap.max_recv_wr = 4;
  init.cap.max_send_sge = 2;
  init.cap.max_recv_sge = 2;
  init.cap.max_inline_data = 32;
  Qp* qa = a_.dev->create_qp(init).value();
  Qp* qb = make_qp(b_, QpType::kRc);
  const QpAttrs q = a_.dev->query_qp(qa);
  EXPECT_EQ(q.cap.max_send_wr, 4u);
  EXPECT_GE(q.cap.max_inline_data, 32u);

  Sge sge[3] = {
      {buf.addr(), 8, buf.key}, {buf.addr() + 8, 8, buf.key}, {buf.addr() + 16, 8, buf.key}};
  SendWqe send = wqe(WrOpcode::kSend, 1);
  send.num_sge = 1;
  // States that cannot send.
  EXPECT_EQ(qa->post_send(send, sge, nullptr), EINVAL) << "RESET";
  EXPECT_EQ(qa->post_recv(1, sge, 1), EINVAL) << "RESET";
  QpAttrs a;
  a.state = QpState::kInit;
  a.access = kAccessRemoteWrite;
  ASSERT_TRUE(
      a_.dev
          ->modify_qp(qa, a,
                      QpAttr::kState | QpAttr::kPkeyIndex | QpAttr::kPort | QpAttr::kAccessFlags)
          .is_ok());
  EXPECT_EQ(qa->post_send(send, sge, nullptr), EINVAL) << "INIT";
  a.state = QpState::kRtr;
  a.av = av_to(b_);
  a.dest_qpn = qb->qpn();
  ASSERT_TRUE(a_.dev
                  ->modify_qp(qa, a,
                              QpAttr::kState | QpAttr::kAv | QpAttr::kPathMtu | QpAttr::kDestQpn |
                                  QpAttr::kRqPsn | QpAttr::kMaxDestRdAtomic | QpAttr::kMinRnrTimer)
                  .is_ok());
  EXPECT_EQ(qa->post_send(send, sge, nullptr), EINVAL) << "RTR";
  a.state = QpState::kRts;
  ASSERT_TRUE(a_.dev
                  ->modify_qp(qa, a,
                              QpAttr::kState | QpAttr::kTimeout | QpAttr::kRetryCnt |
                                  QpAttr::kRnrRetry | QpAttr::kSqPsn | QpAttr::kMaxQpRdAtomic)
                  .is_ok());
  EXPECT_EQ(qa->sq().outstanding(), 0u);  // none of the refused posts left a WQE

  // Bad work requests in RTS.
  SendWqe w = send;
  w.num_sge = 3;
  EXPECT_EQ(qa->post_send(w, sge, nullptr), EINVAL) << "too many SGEs";
  w = wqe(WrOpcode::kSend, 2, kSendSignaled | kSendInline);
  std::vector<uint8_t> big(q.cap.max_inline_data + 1, 7);
  w.length = uint32_t(big.size());
  EXPECT_EQ(qa->post_send(w, nullptr, big.data()), EINVAL) << "inline too big";
  w.length = q.cap.max_inline_data;
  EXPECT_EQ(qa->post_send(w, nullptr, big.data()), 0) << "inline at the limit";
  w = wqe(WrOpcode::kFetchAdd, 3);
  Sge four{buf.addr(), 4, buf.key};
  w.num_sge = 1;
  EXPECT_EQ(qa->post_send(w, &four, nullptr), EINVAL) << "atomic of 4 bytes";
  Sge sixteen{buf.addr(), 16, buf.key};
  EXPECT_EQ(qa->post_send(w, &sixteen, nullptr), EINVAL) << "atomic of 16 bytes";
  w.opcode = WrOpcode::kCmpSwap;
  w.num_sge = 2;
  EXPECT_EQ(qa->post_send(w, sge, nullptr), EINVAL) << "atomic of 2 SGEs";
  w = wqe(WrOpcode::kBindMw, 4);
  EXPECT_EQ(qa->post_send(w, nullptr, nullptr), EINVAL) << "memory windows";
  w = wqe(WrOpcode(42), 5);
  EXPECT_EQ(qa->post_send(w, nullptr, nullptr), EINVAL) << "unknown opcode";
  w = wqe(WrOpcode::kRdmaRead, 6, kSendSignaled | kSendInline);
  w.length = 8;
  EXPECT_EQ(qa->post_send(w, nullptr, big.data()), EINVAL) << "inline READ";
  EXPECT_EQ(qa->post_recv(7, sge, 3), EINVAL) << "recv: too many SGEs";
  EXPECT_EQ(qa->sq().outstanding(), 1u);  // only the inline SEND at the limit

  // Queue full: ENOMEM, both queues; nothing beyond capacity.
  int n = 1;
  while (qa->post_send(send, sge, nullptr) == 0) ++n;
  EXPECT_EQ(n, 4);
  EXPECT_EQ(qa->post_send(send, sge, nullptr), ENOMEM);
  int r = 0;
  while (qa->post_recv(10, sge, 1) == 0) ++r;
  EXPECT_EQ(r, 4);
  EXPECT_EQ(qa->post_recv(10, sge, 1), ENOMEM);

  // Type rules.
  Qp* ud = make_qp(a_, QpType::kUd, 4);
  Qp* udb = make_qp(b_, QpType::kUd, 4);
  connect(a_, ud, b_, udb);
  w = wqe(WrOpcode::kRdmaWrite, 11);
  EXPECT_EQ(ud->post_send(w, nullptr, nullptr), EINVAL) << "WRITE on UD";
  Buffer large = make_buffer(a_, 2048, kAll);
  w = wqe(WrOpcode::kSend, 12);
  Sge over{large.addr(), 1025, large.key};
  w.num_sge = 1;
  EXPECT_EQ(ud->post_send(w, &over, nullptr), EINVAL) << "UD SEND above the path MTU";
  Qp* uc = make_qp(a_, QpType::kUc, 4);
  Qp* ucb = make_qp(b_, QpType::kUc, 4);
  connect(a_, uc, b_, ucb);
  w = wqe(WrOpcode::kRdmaRead, 13);
  w.num_sge = 1;
  EXPECT_EQ(uc->post_send(w, sge, nullptr), EINVAL) << "READ on UC";
  w.opcode = WrOpcode::kFetchAdd;
  EXPECT_EQ(uc->post_send(w, sge, nullptr), EINVAL) << "atomic on UC";

  // SRQ posting.
  Srq* srq = a_.dev->create_srq(a_.pd, 2, 1).value();
  EXPECT_EQ(srq->post_recv(1, sge, 2), EINVAL);
  EXPECT_EQ(srq->post_recv(1, sge, 1), 0);
  EXPECT_EQ(srq->post_recv(2, sge, 1), 0);
  EXPECT_EQ(srq->post_recv(3, sge, 1), ENOMEM);
}

// ---- async events ----

TEST_F(DeviceTest, AsyncEventFdIsReadableWhileEventsAreQueued) {
  const int fd = a_.dev->async_event_fd();
  drain_events(*a_.dev);
  EXPECT_FALSE(fd_readable(fd));
  Srq* srq = a_.dev->create_srq(a_.pd, 4, 1).value();
  QpInitAttr init;
  init.type = QpType::kRc;
  init.pd = a_.pd;
  init.send_cq = a_.scq;
  init.recv_cq = a_.rcq;
  init.srq = srq;
  init.cap.max_send_wr = 4;
  Qp* q1 = a_.dev->create_qp(init).value();
  Qp* q2 = a_.dev->create_qp(init).value();
  QpAttrs a;
  a.state = QpState::kInit;
  for (Qp* q : {q1, q2}) {
    ASSERT_TRUE(
        a_.dev
            ->modify_qp(q, a,
                        QpAttr::kState | QpAttr::kPkeyIndex | QpAttr::kPort | QpAttr::kAccessFlags)
            .is_ok());
  }
  EXPECT_FALSE(fd_readable(fd));
  a.state = QpState::kErr;
  ASSERT_TRUE(a_.dev->modify_qp(q1, a, uint32_t(QpAttr::kState)).is_ok());  // LAST_WQE_REACHED
  EXPECT_TRUE(fd_readable(fd));
  ASSERT_TRUE(a_.dev->modify_qp(q2, a, uint32_t(QpAttr::kState)).is_ok());
  AsyncEvent ev;
  ASSERT_TRUE(a_.dev->get_async_event(&ev));
  EXPECT_EQ(ev.type, AsyncEventType::kQpLastWqeReached);
  EXPECT_EQ(ev.qpn, q1->qpn());
  EXPECT_TRUE(fd_readable(fd));  // one more queued
  ASSERT_TRUE(a_.dev->get_async_event(&ev));
  EXPECT_EQ(ev.qpn, q2->qpn());
  EXPECT_FALSE(fd_readable(fd));
  EXPECT_FALSE(a_.dev->get_async_event(&ev));
  // A waiter blocked in poll(2) wakes when an event is raised from another thread.
  std::thread t([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    a_.dev->remove();
  });
  pollfd p{fd, POLLIN, 0};
  EXPECT_EQ(::poll(&p, 1, 10000), 1);
  t.join();
  EXPECT_TRUE(a_.dev->get_async_event(&ev));
}

// ---- the engine thread ----

class ThreadedDeviceTest : public EngineTest {
 protected:
  void SetUp() override {
    EngineTest::SetUp();
    // Replace the inline devices with devices that run their own engine thread.
    a_.dev.reset();
    b_.dev.reset();
    make_threaded(&pair_->a(), &a_);
    make_threaded(&pair_->b(), &b_);
  }
  void make_threaded(Port* port, Side* s, int engine_cpu = -1) {
    Device::Options opts;
    opts.engine_cpu = engine_cpu;
    make_threaded_side(port, s, 4096, opts);
  }
  // Waits for n CQEs without driving any engine (bounded: 10 s).
  static std::vector<Cqe> await(CompletionQueue* cq, size_t n) {
    std::vector<Cqe> out;
    const Nanos end = monotonic_now() + 10 * kNanosPerSec;
    while (out.size() < n && monotonic_now() < end) {
      Cqe c[16];
      const int got = cq->poll(c, 16);
      for (int i = 0; i < got; ++i) out.push_back(c[i]);
      if (got == 0) std::this_thread::sleep_for(std::chrono::microseconds(50));
    }
    return out;
  }
};

TEST_F(ThreadedDeviceTest, RcSendRoundTripWithoutInlineProgress) {
  Qp* qa = make_qp(a_, QpType::kRc);
  Qp* qb = make_qp(b_, QpType::kRc);
  connect(a_, qa, b_, qb);
  connect(b_, qb, a_, qa);
  Buffer ba = make_buffer(a_, 1 << 20, kAll, 0x11);
  Buffer bb = make_buffer(b_, 1 << 20, kAll, 0x22);
  for (int round = 0; round < 3; ++round) {
    Sge rs{bb.addr(), uint32_t(bb.bytes.size()), bb.key};
    ASSERT_EQ(qb->post_recv(100 + round, &rs, 1), 0);
    Sge ra{ba.addr(), uint32_t(ba.bytes.size()), ba.key};
    ASSERT_EQ(qa->post_recv(200 + round, &ra, 1), 0);
    SendWqe w = wqe(WrOpcode::kSend, 300 + round);
    Sge s{ba.addr(), 5000, ba.key};
    w.num_sge = 1;
    ASSERT_EQ(qa->post_send(w, &s, nullptr), 0);
    auto rc = await(b_.rcq, 1);
    expect_cqes(rc, {{uint64_t(100 + round), kOk}}, qb->qpn(), "ping");
    EXPECT_EQ(rc[0].byte_len, 5000u);
    w = wqe(WrOpcode::kSend, 400 + round);
    Sge sb{bb.addr(), 3000, bb.key};
    w.num_sge = 1;
    ASSERT_EQ(qb->post_send(w, &sb, nullptr), 0);
    rc = await(a_.rcq, 1);
    expect_cqes(rc, {{uint64_t(200 + round), kOk}}, qa->qpn(), "pong");
    EXPECT_EQ(rc[0].byte_len, 3000u);
    expect_cqes(await(a_.scq, 1), {{uint64_t(300 + round), kOk}}, qa->qpn(), "ping sent");
    expect_cqes(await(b_.scq, 1), {{uint64_t(400 + round), kOk}}, qb->qpn(), "pong sent");
  }
  EXPECT_EQ(bb.bytes[0], 0x11);  // the pings' bytes arrived
  EXPECT_EQ(bb.bytes[4999], 0x11);
  EXPECT_EQ(bb.bytes[5000], 0x22);  // and nothing past them
  // A 1 MiB WRITE lands while the target application does nothing.
  std::fill(ba.bytes.begin(), ba.bytes.end(), 0x33);
  SendWqe w = wqe(WrOpcode::kRdmaWrite, 500);
  Sge s{ba.addr(), uint32_t(ba.bytes.size()), ba.key};
  w.num_sge = 1;
  w.remote_addr = bb.addr();
  w.rkey = bb.key;
  ASSERT_EQ(qa->post_send(w, &s, nullptr), 0);
  expect_cqes(await(a_.scq, 1), {{500, kOk}}, qa->qpn(), "write");
  EXPECT_EQ(bb.bytes, ba.bytes);
  // Commands interleave with the running engine.
  QpAttrs q = a_.dev->query_qp(qa);
  EXPECT_EQ(q.cur_state, QpState::kRts);
}

// DROCE_ENGINE_CPU: each engine thread runs on the CPU it was given and
// nowhere else, polls without pause (the application's inline progress is
// refused, so the engine never stands aside), and moves traffic with no help
// from the application.
TEST_F(ThreadedDeviceTest, PinnedEnginesRunOnTheirCpuAndMoveTrafficAlone) {
  cpu_set_t allowed;
  ASSERT_EQ(sched_getaffinity(0, sizeof(allowed), &allowed), 0);
  int cpu = 0;
  while (!CPU_ISSET(cpu, &allowed)) ++cpu;
  a_.dev.reset();
  b_.dev.reset();
  make_threaded(&pair_->a(), &a_, cpu);
  make_threaded(&pair_->b(), &b_, cpu);
  for (Device* d : {a_.dev.get(), b_.dev.get()}) {
    cpu_set_t set;
    ASSERT_EQ(pthread_getaffinity_np(DeviceTestPeer::engine_thread(*d), sizeof(set), &set), 0);
    EXPECT_EQ(CPU_COUNT(&set), 1);
    EXPECT_TRUE(CPU_ISSET(cpu, &set));
    EXPECT_FALSE(d->progress()) << "a pinned engine keeps the lock to itself";
  }
  Qp* qa = make_qp(a_, QpType::kRc);
  Qp* qb = make_qp(b_, QpType::kRc);
  connect(a_, qa, b_, qb);
  connect(b_, qb, a_, qa);
  Buffer ba = make_buffer(a_, 256 * 1024, kAll, 0x44);
  Buffer bb = make_buffer(b_, 256 * 1024, kAll, 0x00);
  SendWqe w = wqe(WrOpcode::kRdmaWrite, 7);
  Sge s{ba.addr(), uint32_t(ba.bytes.size()), ba.key};
  w.num_sge = 1;
  w.remote_addr = bb.addr();
  w.rkey = bb.key;
  ASSERT_EQ(qa->post_send(w, &s, nullptr), 0);
  expect_cqes(await(a_.scq, 1), {{7, kOk}}, qa->qpn(), "write");
  EXPECT_EQ(bb.bytes, ba.bytes);
  EXPECT_EQ(a_.dev->query_qp(qa).cur_state, QpState::kRts);  // commands still get the lock
}

// A CPU number the kernel cannot pin to is refused at create, not ignored.
TEST_F(ThreadedDeviceTest, EngineCpuOutOfRangeIsRefused) {
  Device::Options opts;
  opts.engine_thread = true;
  opts.engine_cpu = CPU_SETSIZE;
  a_.dev.reset();
  auto dev = Device::create(&pair_->a(), opts);
  ASSERT_FALSE(dev.is_ok());
  EXPECT_EQ(dev.status().code(), Errc::kInvalidArgument);
}

TEST_F(ThreadedDeviceTest, DestroyWithWorkOutstandingDoesNotHang) {
  Qp* qa = make_qp(a_, QpType::kRc, 256);
  Qp* qb = make_qp(b_, QpType::kRc, 256);
  connect(a_, qa, b_, qb);
  connect(b_, qb, a_, qa);
  Buffer ba = make_buffer(a_, 64 * 1024, kAll);
  Buffer bb = make_buffer(b_, 64 * 1024, kAll);
  for (int i = 0; i < 200; ++i) {
    SendWqe w = wqe(WrOpcode::kRdmaWrite, uint64_t(i));
    Sge s{ba.addr(), uint32_t(ba.bytes.size()), ba.key};
    w.num_sge = 1;
    w.remote_addr = bb.addr();
    w.rkey = bb.key;
    ASSERT_EQ(qa->post_send(w, &s, nullptr), 0);
    Sge r{bb.addr(), 64, bb.key};
    ASSERT_EQ(qb->post_recv(uint64_t(i), &r, 1), 0);
  }
  // Gone while the engines are busy with it: the destructors return (each
  // joins its engine thread), and after that nothing touches the memory the
  // WRITEs were aimed at.
  a_.dev.reset();
  b_.dev.reset();
  std::fill(bb.bytes.begin(), bb.bytes.end(), 0x5C);
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  EXPECT_TRUE(std::all_of(bb.bytes.begin(), bb.bytes.end(), [](uint8_t x) { return x == 0x5C; }));
  // The ports are intact: new devices on them talk to each other, and once
  // the frames left in flight have been received, every mbuf of both pools
  // is back (the destroyed devices leaked none).
  make_threaded(&pair_->a(), &a_);
  make_threaded(&pair_->b(), &b_);
  qa = make_qp(a_, QpType::kRc, 16);
  qb = make_qp(b_, QpType::kRc, 16);
  connect(a_, qa, b_, qb);
  connect(b_, qb, a_, qa);
  Buffer na = make_buffer(a_, 4096, kAll, 0x21);
  Buffer nb = make_buffer(b_, 4096, kAll);
  Sge r{nb.addr(), 4096, nb.key};
  ASSERT_EQ(qb->post_recv(7, &r, 1), 0);
  SendWqe w = wqe(WrOpcode::kSend, 8);
  Sge s{na.addr(), 3000, na.key};
  w.num_sge = 1;
  ASSERT_EQ(qa->post_send(w, &s, nullptr), 0);
  expect_cqes(await(b_.rcq, 1), {{7, kOk}}, qb->qpn(), "receive on the new devices");
  expect_cqes(await(a_.scq, 1), {{8, kOk}}, qa->qpn(), "send on the new devices");
  EXPECT_EQ(nb.bytes[2999], 0x21);
  const Nanos end = monotonic_now() + 5 * kNanosPerSec;
  while ((rte_mempool_in_use_count(pair_->a().mempool()) != 0 ||
          rte_mempool_in_use_count(pair_->b().mempool()) != 0) &&
         monotonic_now() < end) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  EXPECT_EQ(rte_mempool_in_use_count(pair_->a().mempool()), 0u);
  EXPECT_EQ(rte_mempool_in_use_count(pair_->b().mempool()), 0u);
}

TEST_F(ThreadedDeviceTest, RemoveWhileTheEngineRuns) {
  Qp* qa = make_qp(a_, QpType::kRc, 256);
  Qp* qb = make_qp(b_, QpType::kRc, 256);
  connect(a_, qa, b_, qb);
  connect(b_, qb, a_, qa);
  Buffer ba = make_buffer(a_, 64 * 1024, kAll);
  Buffer bb = make_buffer(b_, 64 * 1024, kAll);
  Ledger l;
  for (int i = 0; i < 200; ++i) {
    SendWqe w = wqe(WrOpcode::kRdmaWrite, uint64_t(i), i % 3 ? kSendSignaled : 0);
    Sge s{ba.addr(), uint32_t(ba.bytes.size()), ba.key};
    w.num_sge = 1;
    w.remote_addr = bb.addr();
    w.rkey = bb.key;
    ASSERT_EQ(qa->post_send(w, &s, nullptr), 0);
    l.post(uint64_t(i), i % 3 != 0);
  }
  for (int i = 0; i < 8; ++i) {
    Sge r{ba.addr(), 64, ba.key};
    ASSERT_EQ(qa->post_recv(1000 + uint64_t(i), &r, 1), 0);
    l.post(1000 + uint64_t(i), true);
  }
  a_.dev->remove();
  EXPECT_EQ(qa->state(), QpState::kErr);
  // Some WRITEs may have completed before the removal; each WQE completes at
  // most once and every signaled one exactly once, nothing more afterwards.
  l.on_cqes(drain(a_.scq));
  l.on_cqes(drain(a_.rcq));
  EXPECT_EQ(l.in_flight(), 0);
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  EXPECT_TRUE(drain(a_.scq).empty());
  EXPECT_TRUE(drain(a_.rcq).empty());
  auto evs = drain_events(*a_.dev);
  ASSERT_FALSE(evs.empty());
  EXPECT_EQ(evs.back().type, AsyncEventType::kDeviceFatal);
  a_.dev.reset();
  b_.dev.reset();
}

}  // namespace
}  // namespace droce::nic::test
