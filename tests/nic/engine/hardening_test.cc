// Engine defects found by reading the engine against rdma_rxe, one test each
// (every one fails on the engine before its fix): frames never leave without
// a resolved MAC, RC/UC receive checks the source address (rxe_recv.c
// check_addr), QP numbers are not reused at once, atomics check the host
// address, post_send cannot slip a WQE into a RESET QP, and the smaller ones.
#include <rte_ethdev.h>
#include <sys/mman.h>

#include <atomic>
#include <thread>

#include "nic/base/psn.h"
#include "nic/wire/ipv4.h"
#include "nic/wire/udp.h"
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

// ---- 3. QP numbers are allocated cyclically (as rxe's pool does) ----

// A destroyed QPN comes back only after every other number of the space was
// handed out once, so late frames of a destroyed QP find no successor.
TEST_F(Hardening, DestroyedQpnIsNotReusedUntilTheSpaceWraps) {
  auto create = [&] {
    QpInitAttr init;
    init.type = QpType::kUd;
    init.pd = a_.pd;
    init.send_cq = a_.scq;
    init.recv_cq = a_.rcq;
    init.cap.max_send_wr = 1;
    init.cap.max_recv_wr = 1;
    auto qp = a_.dev->create_qp(init);
    EXPECT_TRUE(qp.is_ok()) << qp.status().message();
    return qp.is_ok() ? qp.value() : nullptr;
  };
  Qp* keep = create();  // one live QP: its number is never handed out
  ASSERT_NE(keep, nullptr);
  Qp* first = create();
  ASSERT_NE(first, nullptr);
  const uint32_t first_qpn = first->qpn();
  ASSERT_TRUE(a_.dev->destroy_qp(first).is_ok());
  std::vector<bool> seen(1u << 24, false);
  uint32_t handed_out = 0, wraps = 0, last = first_qpn;
  for (;;) {
    Qp* qp = create();
    ASSERT_NE(qp, nullptr);
    const uint32_t qpn = qp->qpn();
    ASSERT_TRUE(a_.dev->destroy_qp(qp).is_ok());
    if (qpn < last) ++wraps;
    last = qpn;
    if (qpn == first_qpn) break;
    ASSERT_NE(qpn, keep->qpn());
    ASSERT_GE(qpn, kFirstQpn) << "QP0 and QP1 are reserved";
    ASSERT_FALSE(seen[qpn]) << "QPN 0x" << std::hex << qpn << " reused before the space wrapped";
    seen[qpn] = true;
    ++handed_out;
    ASSERT_LE(handed_out, kQpnSpace) << "the destroyed QPN never came back";
  }
  // In between, the rest of the space once each in cyclic order, but for the
  // live QP's number and those sharing its table slot (one in max_qp).
  EXPECT_EQ(wraps, 1u);
  EXPECT_GE(handed_out, kQpnSpace - kQpnSpace / a_.dev->attr().max_qp - 1);
  // A frame for a destroyed QPN finds no QP and is counted.
  const uint64_t before = b_.dev->counters().rx_no_qp;
  wire::PacketSpec s = spec(a_, b_, op::kRc | op::kSendOnly, first_qpn, 0);
  inject(a_, s);
  run_for(50 * kNanosPerUs);
  EXPECT_EQ(b_.dev->counters().rx_no_qp - before, 1u);
}

// ---- 4. atomics check the host address's alignment, not only the VA's ----

// ibv_reg_mr_iova lets an 8-byte aligned VA map to a misaligned host address:
// an atomic there would be a split lock (undefined behaviour). NAK invalid
// request, as rxe's rxe_mr_do_atomic_op refuses a misaligned vaddr.
TEST_F(Hardening, AtomicOnMisalignedHostAddressIsInvalidRequest) {
  auto p = rc_pair();
  std::vector<uint8_t> mem(64, 0);
  const uint64_t iova = 0x100000;  // aligned VA ...
  auto key = b_.dev->reg_mr(b_.pd, mem.data() + 4 - (reinterpret_cast<uintptr_t>(mem.data()) & 7),
                            iova, 32, kAllAccess);  // ... at a host address 4 bytes off
  ASSERT_TRUE(key.is_ok());
  const std::vector<uint8_t> before = mem;
  Buffer result = make_buffer(a_, 8, kAllAccess);
  for (WrOpcode opc : {WrOpcode::kFetchAdd, WrOpcode::kCmpSwap}) {
    SCOPED_TRACE(opc == WrOpcode::kFetchAdd ? "FETCH_ADD" : "CMP_SWAP");
    if (opc == WrOpcode::kCmpSwap) p = rc_pair();
    SendWqe w = wqe(opc, 1);
    Sge s{result.addr(), 8, result.key};
    w.num_sge = 1;
    w.remote_addr = iova + 8;
    w.rkey = key.value();
    w.compare_add = 0;
    w.swap = 0x1111111111111111ull;
    ASSERT_EQ(p.a->post_send(w, &s, nullptr), 0);
    auto c = collect(a_.scq, 1);
    ASSERT_EQ(c.size(), 1u);
    EXPECT_EQ(c[0].status, WcStatus::kRemInvReqErr);
    EXPECT_EQ(p.b->state(), QpState::kErr);
    EXPECT_EQ(mem, before) << "the atomic touched a misaligned word";
  }
}

// ---- 5. post_send cannot slip a WQE into a RESET QP ----

// Three threads: a poster posting UC SENDs as fast as it can, a resetter
// taking the QP through RESET and back to RTS, and a's engine thread sending.
// From the moment modify_qp(RESET) returns until the QP is in RTS again, its
// send queue must stay empty: post_send in RESET, INIT or RTR fails, and a
// WQE posted before the RESET is discarded by it. A WQE found there would be
// sent after the next bring-up, long after the application saw the RESET.
class ResetRace : public EngineTest {
 protected:
  void SetUp() override {
    EngineTest::SetUp();
    make_threaded_side(&pair_->a(), &a_, 4096);
  }
};

TEST_F(ResetRace, NothingPostedBeforeResetIsEverSent) {
  Qp* qa = make_qp(a_, QpType::kUc, 64);
  Qp* qb = make_qp(b_, QpType::kUc, 64);
  connect(b_, qb, a_, qa);
  connect(a_, qa, b_, qb);
  // b (no engine thread) answers a's ARP request; nothing else needs b.
  for (int i = 0; i < 2000 && b_.dev->port().counters().arp_rx == 0; ++i) {
    poll_once(*b_.dev);
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  ASSERT_GE(b_.dev->port().counters().arp_rx, 1u);
  std::atomic<bool> stop{false};
  std::atomic<uint64_t> posted{0}, refused{0};
  std::thread poster([&] {
    SendWqe w = wqe(WrOpcode::kSend, 0, kSendInline);  // unsignaled: no CQE on success
    const char byte = 'x';
    w.length = 1;
    while (!stop.load(std::memory_order_relaxed)) {
      ++w.wr_id;
      const int rc = qa->post_send(w, nullptr, &byte);
      if (rc == 0) {
        posted.fetch_add(1, std::memory_order_relaxed);
      } else {
        refused.fetch_add(1, std::memory_order_relaxed);
        if (rc == ENOMEM) std::this_thread::yield();  // the engine drains it
      }
    }
  });
  // On a loaded machine the poster may start late: rounds go on until it has
  // both posted and been refused (bounded in time).
  uint64_t leaked = 0, rounds = 0;
  const Nanos end = monotonic_now() + 8 * kNanosPerSec;
  for (; (rounds < 3000 || posted.load() == 0 || refused.load() == 0) && monotonic_now() < end;
       ++rounds) {
    QpAttrs r;
    r.state = QpState::kReset;
    ASSERT_TRUE(a_.dev->modify_qp(qa, r, uint32_t(QpAttr::kState)).is_ok());
    // The poster keeps trying meanwhile; the queue must stay empty.
    for (int i = 0; i < 200; ++i) {
      if (qa->sq().outstanding() != 0) ++leaked;
    }
    QpAttrs a;
    a.state = QpState::kInit;
    ASSERT_TRUE(a_.dev->modify_qp(qa, a, QpAttr::kState | QpAttr::kPkeyIndex | QpAttr::kPort |
                                             QpAttr::kAccessFlags)
                    .is_ok());
    if (qa->sq().outstanding() != 0) ++leaked;
    a.state = QpState::kRtr;
    a.path_mtu = 1024;
    a.dest_qpn = qb->qpn();
    a.av = av_to(b_);
    ASSERT_TRUE(a_.dev->modify_qp(qa, a, QpAttr::kState | QpAttr::kAv | QpAttr::kPathMtu |
                                             QpAttr::kDestQpn | QpAttr::kRqPsn)
                    .is_ok());
    if (qa->sq().outstanding() != 0) ++leaked;
    a.state = QpState::kRts;
    ASSERT_TRUE(a_.dev->modify_qp(qa, a, QpAttr::kState | QpAttr::kSqPsn).is_ok());
    std::this_thread::yield();
  }
  stop.store(true);
  poster.join();
  EXPECT_EQ(leaked, 0u) << "WQEs entered a QP in RESET/INIT/RTR (" << rounds << " rounds)";
  EXPECT_GT(posted.load(), 0u);
  EXPECT_GT(refused.load(), 0u) << "the poster never met the QP outside RTS";
  // No failed completion either: each WQE was discarded by RESET or sent.
  for (const Cqe& c : drain(a_.scq)) EXPECT_EQ(c.status, WcStatus::kSuccess) << c.wr_id;
}

// ---- 6. SQD -> SQD lowering max_dest_rd_atomic ----

// Lowering the responder resources below the ones in use keeps the newest
// (the ring shrinks around them); READ responses and atomic replies still
// leave in PSN order, so the requester needs no retry on a clean link.
TEST_F(Hardening, LoweringMaxDestRdAtomicInSqdKeepsResponsesInOrder) {
  auto p = rc_pair();
  Buffer remote = make_buffer(b_, 8192, kAllAccess, 0x42);
  Buffer local = make_buffer(a_, 8192, kAllAccess, 0);
  uint64_t id = 0;
  // Five READs and atomics take five of b's 16 responder resources.
  for (int i = 0; i < 5; ++i) {
    ASSERT_EQ(post(p.a, i % 2 ? WrOpcode::kFetchAdd : WrOpcode::kRdmaRead, ++id, &local, 8,
                   &remote, 8 * i, kSendSignaled, 8 * i),
              0);
  }
  auto c = collect(a_.scq, 5);
  ASSERT_EQ(c.size(), 5u);
  // b: RTS -> SQD -> SQD (max_dest_rd_atomic 16 -> 2) -> RTS.
  QpAttrs m;
  m.state = QpState::kSqd;
  ASSERT_TRUE(b_.dev->modify_qp(p.b, m, uint32_t(QpAttr::kState)).is_ok());
  run_for(50 * kNanosPerUs);
  m.max_dest_rd_atomic = 2;
  ASSERT_TRUE(b_.dev->modify_qp(p.b, m, QpAttr::kState | QpAttr::kMaxDestRdAtomic).is_ok());
  m.state = QpState::kRts;
  ASSERT_TRUE(b_.dev->modify_qp(p.b, m, uint32_t(QpAttr::kState)).is_ok());
  EXPECT_EQ(QpTestPeer::resources_in_use(*b_.dev, p.b), 2u);
  // a's initiator depth follows (the requester keeps within the responder's limit).
  m.state = QpState::kSqd;
  ASSERT_TRUE(a_.dev->modify_qp(p.a, m, uint32_t(QpAttr::kState)).is_ok());
  run_for(50 * kNanosPerUs);
  m.max_rd_atomic = 2;
  ASSERT_TRUE(a_.dev->modify_qp(p.a, m, QpAttr::kState | QpAttr::kMaxQpRdAtomic).is_ok());
  m.state = QpState::kRts;
  ASSERT_TRUE(a_.dev->modify_qp(p.a, m, uint32_t(QpAttr::kState)).is_ok());
  // A 4-packet READ, then an atomic queued behind its responses, twice.
  for (int round = 0; round < 2; ++round) {
    ASSERT_EQ(post(p.a, WrOpcode::kRdmaRead, ++id, &local, 4096, &remote, 4096, kSendSignaled,
                   4096),
              0);
    ASSERT_EQ(post(p.a, WrOpcode::kFetchAdd, ++id, &local, 8, &remote, 0), 0);
  }
  c = collect(a_.scq, 4);
  ASSERT_EQ(c.size(), 4u);
  for (const Cqe& x : c) EXPECT_EQ(x.status, WcStatus::kSuccess) << x.wr_id;
  EXPECT_EQ(p.a->counters().response_gaps, 0u) << "a response overtook an earlier one";
  EXPECT_EQ(p.a->counters().retransmits, 0u);
  EXPECT_LE(QpTestPeer::resources_in_use(*b_.dev, p.b), 2u);
  EXPECT_EQ(p.b->state(), QpState::kRts);
}

// ---- 7. the PSNs outstanding stay within 2^23 (24-bit serial arithmetic) ----

struct ReadRequest {
  uint32_t psn;
  uint32_t length;
};

// READ requests waiting at s's port (s's engine never sees them).
std::vector<ReadRequest> take_read_requests(Side& s, Nanos now) {
  std::vector<ReadRequest> out;
  auto l = s.dev->lock_engine();
  rte_mbuf* m[64];
  wire::PacketView v[64];
  for (uint16_t n; (n = s.dev->port().receive(m, v, 64, now)) > 0;) {
    for (uint16_t i = 0; i < n; ++i) {
      if (v[i].bth().opcode == op::kReadRequest) {
        out.push_back({v[i].bth().psn(), v[i].reth().dma_length.get()});
      }
    }
    rte_pktmbuf_free_bulk(m, n);
  }
  return out;
}

// Three 2 GiB READs at path MTU 256: 2^23 PSNs each, half the PSN space. Each
// READ goes out as requests of at most 2^22 PSNs, and no request starts while
// it would put more than 2^22 PSNs between the oldest unacknowledged one and
// its end: with nobody answering, only the first 2^22 PSNs are requested.
TEST_F(Hardening, ReadsNeverSpanHalfThePsnSpace) {
  auto p = rc_pair(kAllAccess, /*mtu=*/256);
  constexpr uint64_t kLen = 1ull << 31;
  // Local memory the engine must never touch (no response comes back).
  void* mem = mmap(nullptr, kLen, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  ASSERT_NE(mem, MAP_FAILED);
  auto key = a_.dev->reg_mr(a_.pd, mem, reinterpret_cast<uint64_t>(mem), kLen, kAllAccess);
  ASSERT_TRUE(key.is_ok());
  run_for(kNanosPerMs);  // ARP, both ways
  pump_b_ = false;
  for (uint64_t id = 1; id <= 3; ++id) {
    SendWqe w = wqe(WrOpcode::kRdmaRead, id);
    Sge s{reinterpret_cast<uint64_t>(mem), uint32_t(kLen), key.value()};
    w.num_sge = 1;
    w.remote_addr = 0x1000;
    w.rkey = 0x100;
    ASSERT_EQ(p.a->post_send(w, &s, nullptr), 0);
  }
  run_for(kNanosPerMs);
  const std::vector<ReadRequest> reqs = take_read_requests(b_, now_);
  ASSERT_EQ(reqs.size(), 1u);
  EXPECT_EQ(reqs[0].psn, 0x123u);
  EXPECT_EQ(reqs[0].length, 1u << 30);  // 2^22 PSNs of 256 bytes
  for (const ReadRequest& r : reqs) {
    const uint32_t end = (r.psn - 0x123 + (r.length + 255) / 256) & kPsnMask;
    EXPECT_LE(end, 1u << 22) << "request at PSN 0x" << std::hex << r.psn;
  }
  ASSERT_TRUE(a_.dev->dereg_mr(key.value()).is_ok());
  munmap(mem, kLen);
}

// The same splitting at a size a test can carry: READ requests of at most 4
// PSNs. Every READ completes with its data, on a clean link and on one that
// drops 5 % of the frames each way.
TEST_F(Hardening, SplitReadsCompleteWithTheirData) {
  for (double drop : {0.0, 0.05}) {
    SCOPED_TRACE(drop);
    auto p = rc_pair(kAllAccess, 1024, /*timeout=*/8);
    QpTestPeer::set_read_request_psns(*a_.dev, p.a, 4);
    FaultShim* shim_b = nullptr;
    if (drop > 0) {
      FaultConfig c;
      c.drop = drop;
      c.seed = 11;
      a_.dev->set_faults(std::make_unique<FaultShim>(c, a_.dev->port().mempool()));
      c.seed = 12;
      auto shim = std::make_unique<FaultShim>(c, b_.dev->port().mempool());
      shim_b = shim.get();
      b_.dev->set_faults(std::move(shim));
    }
    Buffer remote = make_buffer(b_, 64 * 1024, kAllAccess);
    fill_pattern(remote.bytes, 7);
    Buffer local = make_buffer(a_, 64 * 1024, kAllAccess);
    const uint64_t reqs_before = p.b->counters().rx_packets;
    const uint32_t lens[] = {10 * 1024, 4096, 4097, 1, 64 * 1024 - 3};
    uint64_t id = 0;
    for (uint32_t len : lens) {
      std::fill(local.bytes.begin(), local.bytes.end(), 0);
      ASSERT_EQ(post(p.a, WrOpcode::kRdmaRead, ++id, &local, len, &remote, 0), 0);
      auto c = collect(a_.scq, 1);
      ASSERT_EQ(c.size(), 1u) << len;
      EXPECT_EQ(c[0].status, WcStatus::kSuccess) << len;
      EXPECT_EQ(c[0].byte_len, len);
      EXPECT_TRUE(std::equal(local.bytes.begin(), local.bytes.begin() + len, remote.bytes.begin()))
          << len;
      EXPECT_EQ(local.bytes[len], 0) << len;
    }
    if (drop == 0) {
      // 3 + 1 + 2 + 1 + 16 requests of at most 4 PSNs.
      EXPECT_EQ(p.b->counters().rx_packets - reqs_before, 23u);
    } else {
      EXPECT_GT(shim_b->counters().dropped, 0u) << "the lossy run lost no READ response";
      EXPECT_GT(p.a->counters().retransmits, 0u);
    }
    a_.dev->set_faults(nullptr);
    b_.dev->set_faults(nullptr);
  }
}

// ---- 8. the WRITE pad count agrees with the payload (rxe check_rkey) ----

// A WRITE_ONLY of 101 bytes carried without the 3 pad bytes its length needs
// (pad count 0): a length error, NAK invalid request, nothing written.
TEST_F(Hardening, WritePadCountMustFitThePayload) {
  auto p = rc_pair();
  Buffer dst = make_buffer(b_, 256, kAllAccess, 0);
  pump_a_ = false;
  std::vector<uint8_t> payload(104, 0x77);
  wire::PacketSpec s = spec(a_, b_, op::kRc | op::kWriteOnly, p.b->qpn(), 0x123);
  s.payload_len = 104;  // pad 0: 104 bytes on the wire, then 3 cut off
  s.ackreq = true;
  s.reth_va = dst.addr();
  s.reth_rkey = dst.key;
  s.reth_len = 101;
  inject_edited(a_, s, payload.data(), [](uint8_t* f, size_t* len) { shorten(f, len, 3); });
  run_for(100 * kNanosPerUs);
  EXPECT_EQ(dst.bytes[0], 0) << "a WRITE with a bad pad count landed";
  EXPECT_EQ(p.b->state(), QpState::kErr);
  EXPECT_EQ(p.b->counters().err_naks_sent, 1u);
}

// ---- 9. a NAK code the requester does not know is counted ----

// Codes 4 (invalid RD request, an RD code) and 5..31 (reserved) mean nothing
// to an RC requester: remote operational error, as rxe's check_ack does, and
// counted in unknown_naks_received.
TEST_F(Hardening, UnknownNakCodeIsRemoteOpErrorAndCounted) {
  for (uint8_t code : {uint8_t(4), uint8_t(7), uint8_t(31)}) {
    SCOPED_TRACE(int(code));
    auto p = rc_pair();
    Buffer src = make_buffer(a_, 64, kAllAccess, 1);
    run_for(kNanosPerMs);  // ARP, both ways
    pump_b_ = false;
    ASSERT_EQ(post(p.a, WrOpcode::kSend, 1, &src, 64), 0);
    run_for(50 * kNanosPerUs);
    wire::PacketSpec nak = spec(b_, a_, op::kAck, p.a->qpn(), 0x123);
    nak.aeth_syndrome = wire::Aeth::make_syndrome(wire::AethType::kNak, code);
    inject(b_, nak);
    auto c = collect(a_.scq, 1);
    ASSERT_EQ(c.size(), 1u);
    EXPECT_EQ(c[0].status, WcStatus::kRemOpErr);
    EXPECT_EQ(p.a->counters().unknown_naks_received, 1u);
    EXPECT_EQ(p.a->counters().err_naks_received, 0u);
    pump_b_ = true;
    run_for(50 * kNanosPerUs);  // b takes a's request off its port
  }
}

// ---- 10. a UD address handle reused after destroy_ah / create_ah ----

// A WQE posted with an AH that is destroyed before it is sent must not go to
// whatever AH takes the slot next (the handle carries a generation): it
// completes with LOC_QP_OP_ERR and the new destination receives nothing.
TEST_F(Hardening, StaleAhHandleDoesNotReachTheNextAh) {
  Qp* ua = make_qp(a_, QpType::kUd);
  Qp* ub = make_qp(b_, QpType::kUd);
  connect(a_, ua, b_, ub);
  connect(b_, ub, a_, ua);
  Buffer src = make_buffer(a_, 64, kAllAccess, 3);
  Buffer dst = make_buffer(b_, 256, kAllAccess);
  ASSERT_EQ(post_recv(ub, 9, dst, 256), 0);
  AddressVector nowhere;
  ipv4_to_gid(parse_ipv4("10.9.0.99").value(), nowhere.dgid);
  auto old_ah = a_.dev->create_ah(a_.pd, nowhere);
  ASSERT_TRUE(old_ah.is_ok());
  SendWqe w = wqe(WrOpcode::kSend, 1);
  Sge sg{src.addr(), 64, src.key};
  w.num_sge = 1;
  w.ah = old_ah.value();
  w.remote_qpn = ub->qpn();
  w.remote_qkey = 0x11111111;
  ASSERT_EQ(ua->post_send(w, &sg, nullptr), 0);  // not sent yet: nobody polled
  ASSERT_TRUE(a_.dev->destroy_ah(old_ah.value()).is_ok());
  auto new_ah = a_.dev->create_ah(a_.pd, av_to(b_));
  ASSERT_TRUE(new_ah.is_ok());
  EXPECT_NE(new_ah.value(), old_ah.value());
  auto c = collect(a_.scq, 1);
  ASSERT_EQ(c.size(), 1u);
  EXPECT_EQ(c[0].status, WcStatus::kLocQpOpErr);
  run_for(kNanosPerMs);
  EXPECT_TRUE(drain(b_.rcq).empty()) << "the stale WQE reached the AH that took its slot";
  EXPECT_EQ(ua->state(), QpState::kRts);  // UD goes on
  // The new handle works.
  w.wr_id = 2;
  w.ah = new_ah.value();
  ASSERT_EQ(ua->post_send(w, &sg, nullptr), 0);
  c = collect(a_.scq, 1);
  ASSERT_EQ(c.size(), 1u);
  EXPECT_EQ(c[0].status, WcStatus::kSuccess);
  EXPECT_EQ(collect(b_.rcq, 1).size(), 1u);
}

// ---- 11. commands run on the engine's clock, not the wall clock ----

// The engine's time comes from poll(now). Commands that start timers (ARP
// for create_ah and for a QP entering RTR, the link check a new device
// schedules) take it from there too, so a fake clock far from the real one
// keeps their timing: ARP gives up after its 3 requests 10 ms apart.
TEST_F(Hardening, CommandsRunOnTheEnginesClock) {
  now_ += 1000 * kNanosPerSec;  // the engine's clock, far ahead of the wall clock
  AddressVector nowhere;
  ipv4_to_gid(parse_ipv4("10.9.0.99").value(), nowhere.dgid);
  ASSERT_TRUE(a_.dev->create_ah(a_.pd, nowhere).is_ok());
  Qp* qp = make_qp(a_, QpType::kRc);
  connect_to(a_, qp, parse_ipv4("10.9.0.98").value(), 0x77);
  const PortCounters& pc = a_.dev->port().counters();
  run_for(15 * kNanosPerMs, kNanosPerMs);
  EXPECT_EQ(pc.arp_failed, 0u) << "ARP ran on another clock than the engine's";
  EXPECT_EQ(pc.arp_tx, 4u);  // two requests each so far
  run_for(30 * kNanosPerMs, kNanosPerMs);
  EXPECT_EQ(pc.arp_failed, 2u);
  EXPECT_EQ(pc.arp_tx, 6u);
}

// A device created while the engine's clock is behind the wall clock checks
// its link from its first poll on, every Device::kLinkCheckNs of engine time.
TEST_F(Hardening, LinkCheckRunsOnTheEnginesClock) {
  now_ /= 2;  // the engine's clock, far behind the wall clock
  events(b_);
  ASSERT_EQ(rte_eth_dev_set_link_down(b_.dev->port().port_id()), 0);
  run_for(3 * Device::kLinkCheckNs, kNanosPerMs);
  const auto evs = events(b_);
  EXPECT_TRUE(has_event(evs, AsyncEventType::kPortErr, 0)) << "no link check in 30 ms";
  ASSERT_EQ(rte_eth_dev_set_link_up(b_.dev->port().port_id()), 0);
  run_for(3 * Device::kLinkCheckNs, kNanosPerMs);
  EXPECT_TRUE(has_event(events(b_), AsyncEventType::kPortActive, 0));
}

// ---- 12. the idle engine does not sleep through a doorbell ----

// A WQE posted after the engine's last poll, while it decides to sleep, rang
// a doorbell that found no sleeper (so wrote nothing to wake it). The sleep
// must not start without a last look: that WQE is sent before any sleep.
TEST_F(Hardening, IdleEngineLooksOnceMoreBeforeSleeping) {
  auto p = rc_pair();
  run_for(kNanosPerMs);  // ARP, both ways
  Buffer src = make_buffer(a_, 64, kAllAccess, 1);
  const uint64_t sent = roce_sent(a_.dev->port());
  ASSERT_EQ(post(p.a, WrOpcode::kSend, 1, &src, 64), 0);  // nobody asleep: no wake-up written
  EXPECT_FALSE(DeviceTestPeer::sleep_until_work(*a_.dev, 2 * kNanosPerSec))
      << "the engine slept with a doorbell pending";
  EXPECT_EQ(roce_sent(a_.dev->port()) - sent, 1u);
  // With nothing to do it sleeps, and a doorbell wakes it early.
  std::thread poster([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    post(p.a, WrOpcode::kSend, 2, &src, 64);
  });
  const Nanos t0 = monotonic_now();
  EXPECT_TRUE(DeviceTestPeer::sleep_until_work(*a_.dev, 30 * kNanosPerSec));
  EXPECT_LT(monotonic_now() - t0, 20 * kNanosPerSec) << "the doorbell did not wake the sleeper";
  poster.join();
}

}  // namespace
}  // namespace droce::nic::test
