// Error-state flush (DESIGN.md section 4; IBTA vol. 1 10.3.1, 11.4.2; issue 4
// section 4): QPs moved to ERR with WQEs done, in flight and not started, by
// modify_qp, by a fatal local or remote error, with an SRQ, and on CQ
// overflow. Every assertion is on exact CQE sequences and on a ledger that
// checks no WQE completes twice and the in-flight count returns to zero.
#include <poll.h>

#include "tests/nic/engine/engine_checks.h"
#include "tests/nic/engine/engine_fixture.h"

namespace droce::nic::test {
namespace {

constexpr uint32_t kAll =
    kAccessLocalWrite | kAccessRemoteWrite | kAccessRemoteRead | kAccessRemoteAtomic;
constexpr WcStatus kOk = WcStatus::kSuccess;
constexpr WcStatus kFlush = WcStatus::kWrFlushErr;

class FlushTest : public EngineTest {
 protected:
  void SetUp() override {
    EngineTest::SetUp();
    src_ = make_buffer(a_, 64 * 1024, kAll, 0x5A);
    dst_ = make_buffer(b_, 64 * 1024, kAll);
    a_rbuf_ = make_buffer(a_, 64 * 1024, kAll);
    b_rbuf_ = make_buffer(b_, 64 * 1024, kAll);
  }

  // Posts and records in the ledger. Returns post_send's result.
  int write(Qp* qp, Ledger& l, uint64_t wr_id, bool signaled, uint32_t len = 64,
            uint32_t rkey = 0) {
    SendWqe w = wqe(WrOpcode::kRdmaWrite, wr_id, signaled ? kSendSignaled : 0);
    Sge s{src_.addr(), len, src_.key};
    w.num_sge = 1;
    w.remote_addr = dst_.addr();
    w.rkey = rkey ? rkey : dst_.key;
    const int rc = qp->post_send(w, &s, nullptr);
    if (rc == 0) l.post(wr_id, signaled);
    return rc;
  }
  int send(Qp* qp, Ledger& l, uint64_t wr_id, bool signaled, uint32_t len = 64,
           const Buffer* from = nullptr) {
    const Buffer& b = from ? *from : src_;
    SendWqe w = wqe(WrOpcode::kSend, wr_id, signaled ? kSendSignaled : 0);
    Sge s{b.addr(), len, b.key};
    w.num_sge = 1;
    const int rc = qp->post_send(w, &s, nullptr);
    if (rc == 0) l.post(wr_id, signaled);
    return rc;
  }
  int read(Qp* qp, Ledger& l, uint64_t wr_id, bool signaled, uint32_t len = 64) {
    SendWqe w = wqe(WrOpcode::kRdmaRead, wr_id, signaled ? kSendSignaled : 0);
    Sge s{src_.addr(), len, src_.key};
    w.num_sge = 1;
    w.remote_addr = dst_.addr();
    w.rkey = dst_.key;
    const int rc = qp->post_send(w, &s, nullptr);
    if (rc == 0) l.post(wr_id, signaled);
    return rc;
  }
  // Receive WQEs are always "signaled": each one completes.
  int recv(Qp* qp, Ledger& l, uint64_t wr_id, const Buffer& buf, uint32_t len = 64 * 1024) {
    Sge s{buf.addr(), len, buf.key};
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

  // Polls both engines n times; CQEs collected by the caller afterwards.
  void pump_n(int n) {
    for (int i = 0; i < n; ++i) {
      poll_once(*a_.dev);
      poll_once(*b_.dev);
    }
  }

  static bool has_event(const std::vector<AsyncEvent>& evs, AsyncEventType t, uint32_t qpn) {
    for (const AsyncEvent& e : evs) {
      if (e.type == t && e.qpn == qpn) return true;
    }
    return false;
  }

  Buffer src_, dst_, a_rbuf_, b_rbuf_;
};

// The core rule set, on one RC QP: done WQEs keep their success CQE (signaled)
// or none (unsignaled); everything outstanding flushes in posting order, one
// CQE each, signaled or not; nothing after; later posts flush at once; ERR
// twice completes nothing twice; RESET discards; the QP is reusable.
TEST_F(FlushTest, ModifyToErrFlushesOutstandingInPostingOrder) {
  Qp* qa = make_qp(a_, QpType::kRc, 64);
  Qp* qb = make_qp(b_, QpType::kRc, 64);
  connect(a_, qa, b_, qb);
  connect(b_, qb, a_, qa);
  Ledger la, lb;

  // Receives on qa: two are used by qb's SENDs, four stay posted.
  for (uint64_t i = 0; i < 6; ++i) ASSERT_EQ(recv(qa, la, 100 + i, a_rbuf_, 1024), 0);
  ASSERT_EQ(send(qb, lb, 200, true, 64, &dst_), 0);
  ASSERT_EQ(send(qb, lb, 201, true, 64, &dst_), 0);
  auto rc = wait_cqes(a_.rcq, 2);
  expect_cqes(rc, {{100, kOk}, {101, kOk}}, qa->qpn(), "qa receives");
  la.on_cqes(rc);
  lb.on_cqes(wait_cqes(b_.scq, 2));
  EXPECT_EQ(lb.in_flight(), 0);

  // Done before the error: two signaled, two unsignaled WRITEs.
  ASSERT_EQ(write(qa, la, 0, true), 0);
  ASSERT_EQ(write(qa, la, 1, false), 0);
  ASSERT_EQ(write(qa, la, 2, true), 0);
  ASSERT_EQ(write(qa, la, 3, false), 0);
  auto sc = wait_cqes(a_.scq, 2);
  expect_cqes(sc, {{0, kOk}, {2, kOk}}, qa->qpn(), "done");
  la.on_cqes(sc);
  ASSERT_TRUE(pump([&] { return qa->sq().outstanding() == 0; }));  // 3 acknowledged too

  // In flight: qa sends, qb's engine does not run, so nothing is acknowledged.
  const uint64_t tx_before = qa->counters().tx_packets;
  ASSERT_EQ(write(qa, la, 4, true), 0);
  ASSERT_EQ(write(qa, la, 5, false), 0);
  ASSERT_EQ(write(qa, la, 6, true, 3000), 0);  // three packets
  ASSERT_EQ(send(qa, la, 7, false), 0);
  ASSERT_EQ(read(qa, la, 8, true), 0);
  ASSERT_EQ(write(qa, la, 9, false), 0);
  for (int i = 0; i < 3; ++i) poll_once(*a_.dev);
  ASSERT_EQ(qa->counters().tx_packets - tx_before, 8u);  // every WQE is on the wire
  EXPECT_TRUE(drain(a_.scq).empty());

  to_state(a_, qa, QpState::kErr);
  EXPECT_EQ(qa->state(), QpState::kErr);
  EXPECT_EQ(a_.dev->query_qp(qa).cur_state, QpState::kErr);
  // The flush is part of the modify: the CQEs are there before any poll.
  sc = drain(a_.scq);
  expect_cqes(sc, {{4, kFlush}, {5, kFlush}, {6, kFlush}, {7, kFlush}, {8, kFlush}, {9, kFlush}},
              qa->qpn(), "send flush");
  for (const Cqe& c : sc) EXPECT_EQ(c.byte_len, 0u);
  EXPECT_EQ(sc[0].opcode, WcOpcode::kRdmaWrite);
  EXPECT_EQ(sc[3].opcode, WcOpcode::kSend);
  EXPECT_EQ(sc[4].opcode, WcOpcode::kRdmaRead);
  la.on_cqes(sc);
  rc = drain(a_.rcq);
  expect_cqes(rc, {{102, kFlush}, {103, kFlush}, {104, kFlush}, {105, kFlush}}, qa->qpn(),
              "recv flush");
  for (const Cqe& c : rc) EXPECT_EQ(c.opcode, WcOpcode::kRecv);
  la.on_cqes(rc);
  EXPECT_EQ(la.in_flight(), 0);
  EXPECT_EQ(qa->sq().outstanding(), 0u);

  // Now both engines run: qb answers what it gets (ACKs, READ response), qa
  // in ERR drops it all and completes nothing more.
  const uint64_t drops_before = qa->counters().drops;
  pump_n(50);
  EXPECT_TRUE(drain(a_.scq).empty());
  EXPECT_TRUE(drain(a_.rcq).empty());
  EXPECT_GT(qa->counters().drops, drops_before);  // the late responses did arrive

  // Posting in ERR succeeds and flushes at the next engine iteration.
  ASSERT_EQ(write(qa, la, 10, true), 0);
  ASSERT_EQ(write(qa, la, 11, false), 0);
  ASSERT_EQ(recv(qa, la, 106, a_rbuf_), 0);
  poll_once(*a_.dev);
  sc = drain(a_.scq);
  expect_cqes(sc, {{10, kFlush}, {11, kFlush}}, qa->qpn(), "posted in ERR");
  la.on_cqes(sc);
  rc = drain(a_.rcq);
  expect_cqes(rc, {{106, kFlush}}, qa->qpn(), "recv posted in ERR");
  la.on_cqes(rc);
  EXPECT_EQ(la.in_flight(), 0);

  // ERR -> ERR: nothing completes twice.
  to_state(a_, qa, QpState::kErr);
  pump_n(5);
  EXPECT_TRUE(drain(a_.scq).empty());
  EXPECT_TRUE(drain(a_.rcq).empty());

  // RESET discards without completions.
  Ledger discarded;
  ASSERT_EQ(write(qa, discarded, 12, true), 0);
  ASSERT_EQ(recv(qa, discarded, 107, a_rbuf_), 0);
  to_state(a_, qa, QpState::kReset);
  EXPECT_EQ(qa->sq().outstanding(), 0u);
  pump_n(5);
  EXPECT_TRUE(drain(a_.scq).empty());
  EXPECT_TRUE(drain(a_.rcq).empty());
  SendWqe w = wqe(WrOpcode::kSend, 13);
  EXPECT_EQ(qa->post_send(w, nullptr, nullptr), EINVAL);
  EXPECT_EQ(qa->post_recv(13, nullptr, 0), EINVAL);

  // Usable again after RESET -> INIT -> RTR -> RTS (the peer is reset too).
  to_state(b_, qb, QpState::kReset);
  drain(b_.scq);
  drain(b_.rcq);
  connect(a_, qa, b_, qb);
  connect(b_, qb, a_, qa);
  Ledger la2, lb2;
  ASSERT_EQ(recv(qb, lb2, 300, b_rbuf_), 0);
  ASSERT_EQ(recv(qa, la2, 301, a_rbuf_), 0);
  ASSERT_EQ(send(qa, la2, 20, true, 100), 0);
  ASSERT_EQ(send(qb, lb2, 21, true, 200, &dst_), 0);
  sc = wait_cqes(a_.scq, 1);
  expect_cqes(sc, {{20, kOk}}, qa->qpn(), "after reconnect");
  la2.on_cqes(sc);
  rc = wait_cqes(a_.rcq, 1);
  expect_cqes(rc, {{301, kOk}}, qa->qpn(), "after reconnect recv");
  EXPECT_EQ(rc[0].byte_len, 200u);
  la2.on_cqes(rc);
  lb2.on_cqes(wait_cqes(b_.scq, 1));
  lb2.on_cqes(wait_cqes(b_.rcq, 1));
  EXPECT_EQ(la2.in_flight(), 0);
  EXPECT_EQ(lb2.in_flight(), 0);
}

// A QP in INIT or RTR that has receives posted flushes them on ERR; a QP in
// RESET has none to flush.
TEST_F(FlushTest, ReceivesPostedBeforeRtsAreFlushed) {
  for (QpState s : {QpState::kInit, QpState::kRtr}) {
    Qp* qa = make_qp(a_, QpType::kRc, 16);
    Qp* qb = make_qp(b_, QpType::kRc, 16);
    QpAttrs a;
    a.state = QpState::kInit;
    a.access = kAccessRemoteWrite;
    ASSERT_TRUE(
        a_.dev
            ->modify_qp(qa, a,
                        QpAttr::kState | QpAttr::kPkeyIndex | QpAttr::kPort | QpAttr::kAccessFlags)
            .is_ok());
    if (s == QpState::kRtr) {
      a.state = QpState::kRtr;
      a.av = av_to(b_);
      a.dest_qpn = qb->qpn();
      ASSERT_TRUE(a_.dev
                      ->modify_qp(qa, a,
                                  QpAttr::kState | QpAttr::kAv | QpAttr::kPathMtu |
                                      QpAttr::kDestQpn | QpAttr::kRqPsn | QpAttr::kMaxDestRdAtomic |
                                      QpAttr::kMinRnrTimer)
                      .is_ok());
    }
    Ledger l;
    for (uint64_t i = 0; i < 3; ++i) ASSERT_EQ(recv(qa, l, i, a_rbuf_), 0);
    to_state(a_, qa, QpState::kErr);
    auto rc = drain(a_.rcq);
    expect_cqes(rc, {{0, kFlush}, {1, kFlush}, {2, kFlush}}, qa->qpn(), qp_state_name(s));
    l.on_cqes(rc);
    EXPECT_EQ(l.in_flight(), 0);
    EXPECT_TRUE(drain(a_.scq).empty());
    ASSERT_TRUE(a_.dev->destroy_qp(qa).is_ok());
    ASSERT_TRUE(b_.dev->destroy_qp(qb).is_ok());
  }
}

// A fatal remote error: the WRITE to a bad rkey completes REM_ACCESS_ERR even
// though it is unsignaled; the WQE before it succeeded; the rest flush. The
// responder fails too (class C): access error event, its receives flushed.
TEST_F(FlushTest, RemoteAccessErrorThenFlush) {
  Qp* qa = make_qp(a_, QpType::kRc, 64);
  Qp* qb = make_qp(b_, QpType::kRc, 64);
  connect(a_, qa, b_, qb);
  connect(b_, qb, a_, qa);
  drain_events(*a_.dev);
  drain_events(*b_.dev);
  Ledger la, lb;
  for (uint64_t i = 0; i < 3; ++i) ASSERT_EQ(recv(qa, la, 100 + i, a_rbuf_), 0);
  for (uint64_t i = 0; i < 3; ++i) ASSERT_EQ(recv(qb, lb, 200 + i, b_rbuf_), 0);
  ASSERT_EQ(write(qa, la, 0, true), 0);
  ASSERT_EQ(write(qa, la, 1, false, 64, dst_.key + 0x1000), 0);  // no such MR
  ASSERT_EQ(send(qa, la, 2, true), 0);
  ASSERT_EQ(write(qa, la, 3, false), 0);
  ASSERT_EQ(read(qa, la, 4, true), 0);
  auto sc = wait_cqes(a_.scq, 5);
  expect_cqes(sc, {{0, kOk}, {1, WcStatus::kRemAccessErr}, {2, kFlush}, {3, kFlush}, {4, kFlush}},
              qa->qpn(), "requester");
  la.on_cqes(sc);
  EXPECT_EQ(qa->state(), QpState::kErr);
  auto rc = drain(a_.rcq);
  expect_cqes(rc, {{100, kFlush}, {101, kFlush}, {102, kFlush}}, qa->qpn(), "requester recv");
  la.on_cqes(rc);
  EXPECT_EQ(la.in_flight(), 0);

  // Responder side.
  EXPECT_EQ(qb->state(), QpState::kErr);
  const auto evs = drain_events(*b_.dev);
  EXPECT_TRUE(has_event(evs, AsyncEventType::kQpAccessErr, qb->qpn()));
  rc = drain(b_.rcq);
  expect_cqes(rc, {{200, kFlush}, {201, kFlush}, {202, kFlush}}, qb->qpn(), "responder recv");
  lb.on_cqes(rc);
  EXPECT_EQ(lb.in_flight(), 0);

  pump_n(50);
  EXPECT_TRUE(drain(a_.scq).empty());
  EXPECT_TRUE(drain(a_.rcq).empty());
  EXPECT_TRUE(drain(b_.rcq).empty());
  EXPECT_TRUE(drain(b_.scq).empty());
}

// A local protection error on a WQE behind one still in flight: the QP goes to
// ERR at once; the earlier WQE flushes, the failing one carries its status,
// the later ones flush, all in posting order.
TEST_F(FlushTest, LocalProtectionErrorBehindWqeInFlight) {
  Qp* qa = make_qp(a_, QpType::kRc, 64);
  Qp* qb = make_qp(b_, QpType::kRc, 64);
  connect(a_, qa, b_, qb);
  connect(b_, qb, a_, qa);
  // ARP resolved both ways first, so the requester runs in one poll.
  Ledger warm;
  ASSERT_EQ(write(qa, warm, 50, true), 0);
  warm.on_cqes(wait_cqes(a_.scq, 1));
  Ledger la;
  ASSERT_EQ(write(qa, la, 0, true), 0);
  SendWqe w = wqe(WrOpcode::kSend, 1, 0);       // unsignaled, bad lkey
  Sge bad{src_.addr(), 64, src_.key + 0x1000};  // no such MR
  w.num_sge = 1;
  ASSERT_EQ(qa->post_send(w, &bad, nullptr), 0);
  la.post(1, false);
  ASSERT_EQ(write(qa, la, 2, false), 0);
  ASSERT_EQ(write(qa, la, 3, true), 0);
  poll_once(*a_.dev);  // qb does not run: WQE 0 is not acknowledged
  EXPECT_EQ(qa->state(), QpState::kErr);
  auto sc = drain(a_.scq);
  expect_cqes(sc, {{0, kFlush}, {1, WcStatus::kLocProtErr}, {2, kFlush}, {3, kFlush}}, qa->qpn(),
              "local error");
  la.on_cqes(sc);
  EXPECT_EQ(la.in_flight(), 0);
  pump_n(50);
  EXPECT_TRUE(drain(a_.scq).empty());
}

// A message half received when the QP enters ERR: its receive WQE flushes
// first, then the ones behind it, in order.
TEST_F(FlushTest, ReceiveInProgressFlushesFirst) {
  Qp* qa = make_qp(a_, QpType::kRc, 64);
  Qp* qb = make_qp(b_, QpType::kRc, 64);
  connect(a_, qa, b_, qb);
  connect(b_, qb, a_, qa);
  Ledger la, lb;
  ASSERT_EQ(recv(qb, lb, 200, b_rbuf_), 0);
  ASSERT_EQ(send(qa, la, 0, true), 0);  // resolves ARP both ways
  la.on_cqes(wait_cqes(a_.scq, 1));
  lb.on_cqes(wait_cqes(b_.rcq, 1));
  for (uint64_t i = 1; i <= 3; ++i) ASSERT_EQ(recv(qb, lb, 200 + i, b_rbuf_), 0);
  ASSERT_EQ(send(qa, la, 1, true, 40 * 1024), 0);  // 40 packets
  poll_once(*a_.dev);                              // 32 of them leave
  poll_once(*b_.dev);                              // qb takes them: WQE 201 in progress
  EXPECT_TRUE(drain(b_.rcq).empty());
  EXPECT_EQ(qb->counters().rx_packets, 33u);
  to_state(b_, qb, QpState::kErr);
  auto rc = drain(b_.rcq);
  expect_cqes(rc, {{201, kFlush}, {202, kFlush}, {203, kFlush}}, qb->qpn(), "responder");
  lb.on_cqes(rc);
  EXPECT_EQ(lb.in_flight(), 0);
  to_state(a_, qa, QpState::kErr);
  la.on_cqes(drain(a_.scq));
  EXPECT_EQ(la.in_flight(), 0);
}

// With an SRQ: the QP's receive in progress flushes, the SRQ does not (its
// WQEs serve the other QP), and IBV_EVENT_QP_LAST_WQE_REACHED is raised.
TEST_F(FlushTest, SrqIsNotFlushedButTheReceiveInProgressIs) {
  auto srq_r = b_.dev->create_srq(b_.pd, 16, 1);
  ASSERT_TRUE(srq_r.is_ok());
  Srq* srq = srq_r.value();
  auto make_srq_qp = [&] {
    QpInitAttr init;
    init.type = QpType::kRc;
    init.pd = b_.pd;
    init.send_cq = b_.scq;
    init.recv_cq = b_.rcq;
    init.srq = srq;
    init.cap.max_send_wr = 16;
    init.cap.max_send_sge = 1;
    auto r = b_.dev->create_qp(init);
    EXPECT_TRUE(r.is_ok());
    return r.is_ok() ? r.value() : nullptr;
  };
  Qp* qb0 = make_srq_qp();
  Qp* qb1 = make_srq_qp();
  Qp* qa0 = make_qp(a_, QpType::kRc, 64);
  Qp* qa1 = make_qp(a_, QpType::kRc, 64);
  connect(a_, qa0, b_, qb0);
  connect(b_, qb0, a_, qa0);
  connect(a_, qa1, b_, qb1);
  connect(b_, qb1, a_, qa1);
  drain_events(*b_.dev);
  EXPECT_EQ(qb0->post_recv(1, nullptr, 0), EINVAL);  // receives go to the SRQ

  Ledger la, lb;
  for (uint64_t i = 0; i < 6; ++i) {
    Sge s{b_rbuf_.addr(), 64 * 1024, b_rbuf_.key};
    ASSERT_EQ(srq->post_recv(300 + i, &s, 1), 0);
    lb.post(300 + i, true);
  }
  ASSERT_EQ(send(qa0, la, 0, true), 0);
  la.on_cqes(wait_cqes(a_.scq, 1));
  auto rc = wait_cqes(b_.rcq, 1);
  expect_cqes(rc, {{300, kOk}}, qb0->qpn(), "first SEND");
  lb.on_cqes(rc);

  ASSERT_EQ(send(qa0, la, 1, true, 40 * 1024), 0);
  poll_once(*a_.dev);
  poll_once(*b_.dev);  // 301 taken from the SRQ, message in progress
  EXPECT_TRUE(drain(b_.rcq).empty());
  EXPECT_EQ(srq->outstanding(), 4u);
  to_state(b_, qb0, QpState::kErr);
  rc = drain(b_.rcq);
  expect_cqes(rc, {{301, kFlush}}, qb0->qpn(), "in progress");
  lb.on_cqes(rc);
  EXPECT_EQ(srq->outstanding(), 4u);  // 302..305 still there
  auto evs = drain_events(*b_.dev);
  ASSERT_EQ(evs.size(), 1u);
  EXPECT_EQ(evs[0].type, AsyncEventType::kQpLastWqeReached);
  EXPECT_EQ(evs[0].qpn, qb0->qpn());
  // ERR again: no second event, no CQE.
  to_state(b_, qb0, QpState::kErr);
  EXPECT_TRUE(drain_events(*b_.dev).empty());
  EXPECT_TRUE(drain(b_.rcq).empty());

  // The other QP still receives from the SRQ, in order.
  to_state(a_, qa0, QpState::kErr);
  la.on_cqes(drain(a_.scq));
  ASSERT_EQ(send(qa1, la, 2, true, 10), 0);
  ASSERT_EQ(send(qa1, la, 3, true, 20), 0);
  rc = wait_cqes(b_.rcq, 2);
  expect_cqes(rc, {{302, kOk}, {303, kOk}}, qb1->qpn(), "other QP");
  EXPECT_EQ(rc[1].byte_len, 20u);
  lb.on_cqes(rc);
  la.on_cqes(wait_cqes(a_.scq, 2));
  EXPECT_EQ(la.in_flight(), 0);
  EXPECT_EQ(lb.in_flight(), 2);  // 304 and 305 wait in the SRQ, as they should
  EXPECT_EQ(srq->outstanding(), 2u);
}

// UD and UC flush the same way.
TEST_F(FlushTest, UdAndUcFlush) {
  for (QpType t : {QpType::kUd, QpType::kUc}) {
    SCOPED_TRACE(qp_type_name(t));
    Qp* qa = make_qp(a_, t, 16);
    Qp* qb = make_qp(b_, t, 16);
    connect(a_, qa, b_, qb);
    connect(b_, qb, a_, qa);
    Ledger l;
    for (uint64_t i = 0; i < 3; ++i) ASSERT_EQ(recv(qa, l, 10 + i, a_rbuf_), 0);
    to_state(a_, qa, QpState::kErr);
    ASSERT_EQ(send(qa, l, 1, false, 8), 0);
    ASSERT_EQ(send(qa, l, 2, true, 8), 0);
    poll_once(*a_.dev);
    auto rc = drain(a_.rcq);
    expect_cqes(rc, {{10, kFlush}, {11, kFlush}, {12, kFlush}}, qa->qpn(), "recv");
    l.on_cqes(rc);
    auto sc = drain(a_.scq);
    expect_cqes(sc, {{1, kFlush}, {2, kFlush}}, qa->qpn(), "send");
    l.on_cqes(sc);
    EXPECT_EQ(l.in_flight(), 0);
    ASSERT_TRUE(a_.dev->destroy_qp(qa).is_ok());
    ASSERT_TRUE(b_.dev->destroy_qp(qb).is_ok());
  }
}

// ERR while waiting out an RNR NAK: the SEND flushes and is never sent again,
// even once the peer has a receive WQE.
TEST_F(FlushTest, ErrDuringRnrWaitFlushesAndStopsRetrying) {
  Qp* qa = make_qp(a_, QpType::kRc, 16);
  Qp* qb = make_qp(b_, QpType::kRc, 16);
  connect(a_, qa, b_, qb, kAccessRemoteWrite, 1024, 14, 7, 7);
  connect(b_, qb, a_, qa);
  Ledger la, lb;
  ASSERT_EQ(send(qa, la, 1, true), 0);
  ASSERT_EQ(send(qa, la, 2, false), 0);
  ASSERT_TRUE(pump([&] { return qa->counters().rnr_naks_received > 0; }));
  to_state(a_, qa, QpState::kErr);
  auto sc = drain(a_.scq);
  expect_cqes(sc, {{1, kFlush}, {2, kFlush}}, qa->qpn(), "RNR wait");
  la.on_cqes(sc);
  EXPECT_EQ(la.in_flight(), 0);
  ASSERT_EQ(recv(qb, lb, 10, b_rbuf_), 0);
  const uint64_t tx = qa->counters().tx_packets;
  pump([] { return false; }, 50 * kNanosPerMs);
  EXPECT_EQ(qa->counters().tx_packets, tx);
  EXPECT_TRUE(drain(b_.rcq).empty());
  EXPECT_TRUE(drain(a_.scq).empty());
}

// The responder fails in the middle of a READ response stream: the requester
// sees its responses stop, retries, runs out of retries: the READ completes
// RETRY_EXC_ERR (its real status) and the WQEs behind it flush.
TEST_F(FlushTest, ResponderErrMidReadStreamRetryExceededThenFlush) {
  Qp* qa = make_qp(a_, QpType::kRc, 16);
  Qp* qb = make_qp(b_, QpType::kRc, 16);
  connect(a_, qa, b_, qb, kAccessRemoteWrite | kAccessRemoteRead, 1024, /*timeout=*/1,
          /*retry=*/1, 7);
  connect(b_, qb, a_, qa, kAccessRemoteWrite | kAccessRemoteRead, 1024, 1, 1, 7);
  Ledger la;
  ASSERT_EQ(write(qa, la, 0, true, 8), 0);  // ARP both ways
  la.on_cqes(wait_cqes(a_.scq, 1));
  ASSERT_EQ(read(qa, la, 1, true, 60 * 1024), 0);  // 60 response packets
  ASSERT_EQ(write(qa, la, 2, true), 0);
  ASSERT_EQ(write(qa, la, 3, false), 0);
  poll_once(*a_.dev);  // the READ request and both WRITEs
  poll_once(*b_.dev);  // the READ starts streaming (32 packets)
  const uint64_t streamed = qb->counters().tx_packets;
  EXPECT_GT(streamed, 0u);
  to_state(b_, qb, QpState::kErr);
  drain(b_.scq);
  drain(b_.rcq);
  auto sc = wait_cqes(a_.scq, 3);
  expect_cqes(sc, {{1, WcStatus::kRetryExcErr}, {2, kFlush}, {3, kFlush}}, qa->qpn(),
              "READ cut off");
  la.on_cqes(sc);
  EXPECT_EQ(la.in_flight(), 0);
  EXPECT_EQ(qa->state(), QpState::kErr);
  EXPECT_EQ(qb->counters().tx_packets, streamed);  // b sent nothing more once in ERR
}

// ---- CQ overflow (IBTA 11.4.2.1, class G) ----

// A send CQ of two entries and four signaled WRITEs: the third completion does
// not fit. CQ error event, QP fatal event, QP in ERR; and no completion is
// lost: the one that did not fit and the flushes come as the consumer makes
// room, so the in-flight count still returns to zero. b acknowledges each
// WRITE on its own (no ACK coalescing), so the overflow falls between ACKs
// and the WRITEs after it are still unacknowledged when the QP fails.
TEST_F(FlushTest, SendCqOverflowMovesQpToErrWithoutLosingCompletions) {
  b_.dev.reset();
  make_side(&pair_->b(), &b_, 4096, /*coalesce_acks=*/false);
  dst_ = make_buffer(b_, 64 * 1024, kAll);
  CompletionQueue* tiny = a_.dev->create_cq(2).value();
  ASSERT_EQ(tiny->capacity(), 2u);
  QpInitAttr init;
  init.type = QpType::kRc;
  init.pd = a_.pd;
  init.send_cq = tiny;
  init.recv_cq = a_.rcq;
  init.cap.max_send_wr = 16;
  init.cap.max_recv_wr = 16;
  Qp* qa = a_.dev->create_qp(init).value();
  Qp* qb = make_qp(b_, QpType::kRc, 64);
  connect(a_, qa, b_, qb);
  connect(b_, qb, a_, qa);
  drain_events(*a_.dev);
  Ledger la;
  for (uint64_t i = 0; i < 4; ++i) ASSERT_EQ(write(qa, la, i, true), 0);
  ASSERT_EQ(write(qa, la, 4, false), 0);
  ASSERT_EQ(write(qa, la, 5, true), 0);
  ASSERT_TRUE(pump([&] { return qa->state() == QpState::kErr; }, 5 * kNanosPerSec));
  pump_n(20);
  EXPECT_TRUE(tiny->overflowed());
  auto evs = drain_events(*a_.dev);
  ASSERT_GE(evs.size(), 2u);
  EXPECT_EQ(evs[0].type, AsyncEventType::kCqErr);
  EXPECT_EQ(evs[0].cq, tiny);
  EXPECT_TRUE(has_event(evs, AsyncEventType::kQpFatal, qa->qpn()));

  // The consumer drains as it can; every WQE completes exactly once.
  std::vector<Cqe> all;
  for (int round = 0; round < 10 && all.size() < 6; ++round) {
    auto got = drain(tiny);
    all.insert(all.end(), got.begin(), got.end());
    pump_n(2);
  }
  ASSERT_EQ(all.size(), 6u) << describe(all);
  // 0 and 1 fit; 2 did not, and comes with its real status (it was
  // acknowledged) before the flushes of the rest; unsignaled 4 flushes too.
  for (uint64_t i = 0; i < 6; ++i) EXPECT_EQ(all[i].wr_id, i) << describe(all);
  EXPECT_EQ(all[0].status, kOk);
  EXPECT_EQ(all[1].status, kOk);
  EXPECT_EQ(all[2].status, kOk);
  for (size_t i = 3; i < 6; ++i) EXPECT_EQ(all[i].status, kFlush) << i;
  la.on_cqes(all);
  EXPECT_EQ(la.in_flight(), 0);
  EXPECT_EQ(qa->sq().outstanding(), 0u);
  pump_n(10);
  EXPECT_TRUE(drain(tiny).empty());
  // The CQ error is raised once, not per retried push.
  EXPECT_TRUE(drain_events(*a_.dev).empty());
}

// The same on the receive side: the receive completion that does not fit is
// kept and delivered (with its data length) before the flushes.
TEST_F(FlushTest, RecvCqOverflowMovesQpToErrWithoutLosingCompletions) {
  CompletionQueue* tiny = b_.dev->create_cq(1).value();
  QpInitAttr init;
  init.type = QpType::kRc;
  init.pd = b_.pd;
  init.send_cq = b_.scq;
  init.recv_cq = tiny;
  init.cap.max_send_wr = 16;
  init.cap.max_recv_wr = 16;
  Qp* qb = b_.dev->create_qp(init).value();
  Qp* qa = make_qp(a_, QpType::kRc, 64);
  connect(a_, qa, b_, qb);
  connect(b_, qb, a_, qa);
  drain_events(*b_.dev);
  Ledger la, lb;
  for (uint64_t i = 0; i < 4; ++i) ASSERT_EQ(recv(qb, lb, 100 + i, b_rbuf_), 0);
  ASSERT_EQ(send(qa, la, 0, true, 10), 0);
  ASSERT_EQ(send(qa, la, 1, true, 11), 0);
  ASSERT_TRUE(pump([&] { return qb->state() == QpState::kErr; }, 5 * kNanosPerSec));
  auto evs = drain_events(*b_.dev);
  ASSERT_GE(evs.size(), 2u);
  EXPECT_EQ(evs[0].type, AsyncEventType::kCqErr);
  EXPECT_EQ(evs[0].cq, tiny);
  EXPECT_TRUE(has_event(evs, AsyncEventType::kQpFatal, qb->qpn()));
  std::vector<Cqe> all;
  for (int round = 0; round < 10 && all.size() < 4; ++round) {
    auto got = drain(tiny);
    all.insert(all.end(), got.begin(), got.end());
    pump_n(2);
  }
  expect_cqes(all, {{100, kOk}, {101, kOk}, {102, kFlush}, {103, kFlush}}, qb->qpn(), "recv");
  EXPECT_EQ(all[0].byte_len, 10u);
  EXPECT_EQ(all[1].byte_len, 11u);
  lb.on_cqes(all);
  EXPECT_EQ(lb.in_flight(), 0);
  pump_n(10);
  EXPECT_TRUE(drain(tiny).empty());
  to_state(a_, qa, QpState::kErr);
  pump_n(2);
  la.on_cqes(drain(a_.scq));
  EXPECT_EQ(la.in_flight(), 0);
}

// A flush into a CQ the consumer has not emptied waits for room: nothing is
// dropped, nothing is counted as an overflow.
TEST_F(FlushTest, FlushIntoFullCqWaitsForRoom) {
  CompletionQueue* tiny = a_.dev->create_cq(2).value();
  QpInitAttr init;
  init.type = QpType::kRc;
  init.pd = a_.pd;
  init.send_cq = tiny;
  init.recv_cq = tiny;
  init.cap.max_send_wr = 16;
  init.cap.max_recv_wr = 16;
  Qp* qa = a_.dev->create_qp(init).value();
  Qp* qb = make_qp(b_, QpType::kRc, 64);
  connect(a_, qa, b_, qb);
  connect(b_, qb, a_, qa);
  Ledger la;
  for (uint64_t i = 0; i < 3; ++i) ASSERT_EQ(recv(qa, la, 100 + i, a_rbuf_), 0);
  for (uint64_t i = 0; i < 3; ++i) ASSERT_EQ(write(qa, la, i, i != 1), 0);
  to_state(a_, qa, QpState::kErr);
  std::vector<Cqe> all;
  for (int round = 0; round < 10 && all.size() < 6; ++round) {
    auto got = drain(tiny);
    all.insert(all.end(), got.begin(), got.end());
    pump_n(1);
  }
  ASSERT_EQ(all.size(), 6u) << describe(all);
  la.on_cqes(all);
  EXPECT_EQ(la.in_flight(), 0);
  EXPECT_FALSE(tiny->overflowed());
  // Per queue, posting order.
  std::vector<uint64_t> sends, recvs;
  for (const Cqe& c : all) (c.opcode == WcOpcode::kRecv ? recvs : sends).push_back(c.wr_id);
  EXPECT_EQ(sends, (std::vector<uint64_t>{0, 1, 2}));
  EXPECT_EQ(recvs, (std::vector<uint64_t>{100, 101, 102}));
}

}  // namespace
}  // namespace droce::nic::test
