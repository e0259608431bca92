// Engine defects found by reading the engine against rdma_rxe, one test each
// (every one fails on the engine before its fix): frames never leave without
// a resolved MAC, RC/UC receive checks the source address (rxe_recv.c
// check_addr), QP numbers are not reused at once, atomics check the host
// address, post_send cannot slip a WQE into a RESET QP, and the smaller ones.
#include <sys/mman.h>

#include <atomic>
#include <thread>

#include "tests/nic/engine/engine_checks.h"
#include "tests/nic/engine/fake_clock.h"

namespace droce::nic::test {
namespace {

namespace op = wire::op;

class Hardening : public FakeClockTest {
 protected:
  // Connects qp (RESET -> RTS) to dest_qpn at dst_ip, whoever answers there.
  void connect_to(Side& s, Qp* qp, uint32_t dst_ip, uint32_t dest_qpn, uint8_t timeout = 14,
                  uint8_t retry = 7) {
    QpAttrs a;
    a.state = QpState::kInit;
    a.access = kAccessRemoteWrite | kAccessRemoteRead | kAccessRemoteAtomic;
    ASSERT_TRUE(s.dev->modify_qp(qp, a, QpAttr::kState | QpAttr::kPkeyIndex | QpAttr::kPort |
                                            QpAttr::kAccessFlags)
                    .is_ok());
    a.state = QpState::kRtr;
    a.path_mtu = 1024;
    a.dest_qpn = dest_qpn;
    a.rq_psn = 0x123;
    ipv4_to_gid(dst_ip, a.av.dgid);
    uint32_t mask = QpAttr::kState | QpAttr::kAv | QpAttr::kPathMtu | QpAttr::kDestQpn |
                    QpAttr::kRqPsn;
    if (qp->type() == QpType::kRc) {
      a.max_dest_rd_atomic = 16;
      a.min_rnr_timer = 1;
      mask |= QpAttr::kMaxDestRdAtomic | QpAttr::kMinRnrTimer;
    }
    ASSERT_TRUE(s.dev->modify_qp(qp, a, mask).is_ok());
    a.state = QpState::kRts;
    a.sq_psn = 0x123;
    mask = QpAttr::kState | QpAttr::kSqPsn;
    if (qp->type() == QpType::kRc) {
      a.timeout = timeout;
      a.retry_cnt = retry;
      a.rnr_retry = 7;
      a.max_rd_atomic = 16;
      mask |= QpAttr::kTimeout | QpAttr::kRetryCnt | QpAttr::kRnrRetry | QpAttr::kMaxQpRdAtomic;
    }
    ASSERT_TRUE(s.dev->modify_qp(qp, a, mask).is_ok());
  }

  // RoCEv2 frames port p sent: everything it sent but ARP.
  static uint64_t roce_sent(Port& p) { return p.counters().tx_packets - p.counters().arp_tx; }
};

// ---- 1. no frame leaves without a resolved destination MAC ----

// A peer that never answers ARP: RC sends nothing (each packet it would have
// sent is counted in tx_unresolved), its retransmit timer runs out the
// retries, and the WQE completes with RETRY_EXC_ERR.
TEST_F(Hardening, RcToUnresolvedPeerSendsNothingAndRetriesOut) {
  const uint32_t nobody = parse_ipv4("10.9.0.99").value();
  Qp* qp = make_qp(a_, QpType::kRc);
  connect_to(a_, qp, nobody, 0x77, /*timeout=*/8, /*retry=*/2);  // 1 ms timeout
  Buffer src = make_buffer(a_, 64, kAllAccess, 0x5A);
  // Wait until ARP gave up (3 requests, 10 ms apart), then post.
  run_for(60 * kNanosPerMs, 100 * kNanosPerUs);
  ASSERT_EQ(a_.dev->port().counters().arp_failed, 1u);
  ASSERT_EQ(post(qp, WrOpcode::kSend, 1, &src, 64), 0);
  auto c = collect(a_.scq, 1, 100 * kNanosPerUs, 20000);
  ASSERT_EQ(c.size(), 1u);
  EXPECT_EQ(c[0].status, WcStatus::kRetryExcErr);
  EXPECT_EQ(roce_sent(a_.dev->port()), 0u) << "a frame left with an unresolved destination MAC";
  EXPECT_EQ(b_.dev->port().counters().drop(PortDrop::kNotOurMac), 0u);
  EXPECT_GE(qp->counters().tx_unresolved, 1u);
  EXPECT_EQ(qp->state(), QpState::kErr);
}

// UC: the WQE fails as rxe fails it when the peer is unreachable
// (LOC_QP_OP_ERR, QP to ERR); nothing is sent, and it never reports success.
TEST_F(Hardening, UcToUnresolvedPeerFailsTheWqe) {
  const uint32_t nobody = parse_ipv4("10.9.0.99").value();
  Qp* qp = make_qp(a_, QpType::kUc);
  connect_to(a_, qp, nobody, 0x77);
  Buffer src = make_buffer(a_, 3000, kAllAccess, 0x5A);
  run_for(60 * kNanosPerMs, 100 * kNanosPerUs);
  ASSERT_EQ(post(qp, WrOpcode::kSend, 1, &src, 3000), 0);
  ASSERT_EQ(post(qp, WrOpcode::kRdmaWrite, 2, &src, 10, &src), 0);
  auto c = collect(a_.scq, 2, 100 * kNanosPerUs, 2000);
  ASSERT_EQ(c.size(), 2u);
  EXPECT_EQ(c[0].wr_id, 1u);
  EXPECT_EQ(c[0].status, WcStatus::kLocQpOpErr);
  EXPECT_EQ(c[1].wr_id, 2u);
  EXPECT_EQ(c[1].status, WcStatus::kWrFlushErr);
  EXPECT_EQ(roce_sent(a_.dev->port()), 0u) << "a frame left with an unresolved destination MAC";
  EXPECT_EQ(qp->counters().tx_unresolved, 1u);
  EXPECT_EQ(qp->state(), QpState::kErr);
}

// ---- 2. RC/UC receive checks the source address (rxe_recv.c check_addr) ----

// A host on the segment that guesses the QPN, the PSN and an rkey: its WRITE
// must not land, and its bad opcode must not push the QP to ERR. The QP's
// real peer goes on undisturbed at the same PSN.
TEST_F(Hardening, SpoofedSourceAddressIsDroppedAndCounted) {
  for (QpType type : {QpType::kRc, QpType::kUc}) {
    SCOPED_TRACE(type == QpType::kRc ? "RC" : "UC");
    Qp* qa = make_qp(a_, type);
    Qp* qb = make_qp(b_, type);
    connect(a_, qa, b_, qb);
    connect(b_, qb, a_, qa);
    Buffer dst = make_buffer(b_, 256, kAllAccess, 0x00);
    const uint8_t rc_base = type == QpType::kRc ? op::kRc : op::kUc;
    const uint64_t before = b_.dev->counters().rx_bad_src_addr;
    std::vector<uint8_t> evil(64, 0xEE);
    wire::PacketSpec s = spec(a_, b_, rc_base | op::kWriteOnly, qb->qpn(), 0x123);
    s.src_ip = parse_ipv4("10.9.0.77").value();
    s.payload_len = 64;
    s.ackreq = true;
    s.reth_va = dst.addr();
    s.reth_rkey = dst.key;
    s.reth_len = 64;
    inject(a_, s, evil.data());
    wire::PacketSpec bad = spec(a_, b_, rc_base | op::kWriteMiddle, qb->qpn(), 0x123);
    bad.src_ip = s.src_ip;
    bad.payload_len = 1024;
    std::vector<uint8_t> big(1024, 0xEE);
    inject(a_, bad, big.data());
    run_for(200 * kNanosPerUs);
    EXPECT_EQ(dst.bytes[0], 0x00) << "a spoofed WRITE landed";
    EXPECT_EQ(b_.dev->counters().rx_bad_src_addr - before, 2u);
    EXPECT_EQ(qb->counters().rx_bad_src_addr, 2u);
    EXPECT_EQ(qb->state(), QpState::kRts);
    // The real peer, at the PSN the spoofer used: accepted.
    Buffer src = make_buffer(a_, 64, kAllAccess, 0x11);
    ASSERT_EQ(post(qa, WrOpcode::kRdmaWrite, 1, &src, 64, &dst), 0);
    auto c = collect(a_.scq, 1);
    ASSERT_EQ(c.size(), 1u);
    EXPECT_EQ(c[0].status, WcStatus::kSuccess);
    run_for(100 * kNanosPerUs);
    EXPECT_EQ(dst.bytes[0], 0x11);
    EXPECT_EQ(dst.bytes[63], 0x11);
  }
}

}  // namespace
}  // namespace droce::nic::test
