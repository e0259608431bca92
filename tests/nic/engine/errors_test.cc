// Every NAK path and every work-completion status the transport produces,
// each provoked on purpose (IBTA vol. 1 9.7.5.2, 9.9 error classes; rxe's
// mapping of each to an ibv_wc_status), asserting the requester's completion,
// the responder's side (state, receive completion, async event, memory
// untouched) and the counters. Timers run on a fake clock.
#include <tuple>

#include "tests/nic/engine/fake_clock.h"

namespace droce::nic::test {
namespace {

namespace op = wire::op;

class Errors : public FakeClockTest {
 protected:
  // Expects the requester's completions, in order, with these statuses.
  void expect_send_wcs(const std::vector<std::pair<uint64_t, WcStatus>>& want) {
    auto got = collect(a_.scq, want.size());
    ASSERT_EQ(got.size(), want.size());
    for (size_t i = 0; i < want.size(); ++i) {
      EXPECT_EQ(got[i].wr_id, want[i].first) << i;
      EXPECT_EQ(got[i].status, want[i].second) << i;
      EXPECT_EQ(got[i].qp_num, qa_->qpn());
    }
    run_for(2 * kNanosPerMs);
    EXPECT_TRUE(drain(a_.scq).empty());  // nothing more
  }

  Qp* qa_ = nullptr;
  Qp* qb_ = nullptr;
};

// ---- remote access errors: NAK 0x62 -> REM_ACCESS_ERR ----

enum class Fault { kBadKey, kStaleKey, kOutOfBounds, kNoRights, kOtherPd };
const char* fault_name(Fault f) {
  switch (f) {
    case Fault::kBadKey:
      return "BadKey";
    case Fault::kStaleKey:
      return "StaleKey";
    case Fault::kOutOfBounds:
      return "OutOfBounds";
    case Fault::kNoRights:
      return "NoRights";
    case Fault::kOtherPd:
      return "OtherPd";
  }
  return "?";
}

class RemoteAccess : public Errors,
                     public ::testing::WithParamInterface<std::tuple<WrOpcode, Fault>> {};

TEST_P(RemoteAccess, NakRemoteAccessErrorFailsBothQps) {
  const WrOpcode opc = std::get<0>(GetParam());
  const Fault fault = std::get<1>(GetParam());
  auto p = rc_pair();
  qa_ = p.a;
  qb_ = p.b;
  const bool atomic = opc == WrOpcode::kFetchAdd || opc == WrOpcode::kCmpSwap;
  const uint32_t len = atomic ? 8 : 2000;
  Buffer local = make_buffer(a_, 4096, kAllAccess, 0x11);
  // The remote region, and what the WQE names.
  uint32_t access = kAllAccess;
  uint32_t pd = b_.pd;
  if (fault == Fault::kNoRights) {
    access = kAccessLocalWrite;  // no remote right of any kind
  } else if (fault == Fault::kOtherPd) {
    pd = b_.dev->alloc_pd().value();
  }
  Buffer remote;
  remote.bytes.assign(4096, 0x22);
  remote.key = b_.dev->reg_mr(pd, remote.bytes.data(), remote.addr(), 4096, access).value();
  Buffer named = remote;
  named.bytes.clear();
  uint64_t off = 0;
  switch (fault) {
    case Fault::kBadKey:
      named.key = 0x3FFF01;
      break;  // a slot nobody registered
    case Fault::kStaleKey:
      // The slot of a live MR with another tag: what a key of an earlier
      // registration of that slot looks like.
      named.key = (remote.key & ~0xFFu) | ((remote.key + 0x80) & 0xFFu);
      break;
    case Fault::kOutOfBounds:
      off = 4096 - (atomic ? 0 : 1000);
      break;
    default:
      break;
  }
  Buffer good = make_buffer(b_, 4096, kAllAccess, 0x22);
  ASSERT_EQ(post(qa_, WrOpcode::kRdmaWrite, 1, &local, 100, &good, 3000), 0);  // fine
  SendWqe w = wqe(opc, 2);
  Sge s{local.addr(), len, local.key};
  w.num_sge = 1;
  w.remote_addr = remote.addr() + off;
  w.rkey = named.key;
  w.compare_add = 1;
  ASSERT_EQ(qa_->post_send(w, &s, nullptr), 0);
  ASSERT_EQ(post(qa_, WrOpcode::kRdmaWrite, 3, &local, 100, &good, 0), 0);  // flushed
  expect_send_wcs(
      {{1, WcStatus::kSuccess}, {2, WcStatus::kRemAccessErr}, {3, WcStatus::kWrFlushErr}});
  EXPECT_EQ(qa_->state(), QpState::kErr);
  EXPECT_EQ(qb_->state(), QpState::kErr);
  EXPECT_EQ(qb_->counters().err_naks_sent, 1u);
  EXPECT_EQ(qa_->counters().err_naks_received, 1u);
  EXPECT_EQ(qb_->counters().remote_access_naks_sent, 1u);  // and under its code
  EXPECT_EQ(qa_->counters().remote_access_naks_received, 1u);
  EXPECT_TRUE(has_event(events(b_), AsyncEventType::kQpAccessErr, qb_->qpn()));
  // Memory: only the first WRITE landed; nothing of the failed one.
  EXPECT_EQ(remote.bytes, std::vector<uint8_t>(4096, 0x22));
  for (size_t i = 0; i < good.bytes.size(); ++i) {
    ASSERT_EQ(good.bytes[i], (i >= 3000 && i < 3100) ? 0x11 : 0x22) << i;
  }
  if (opc == WrOpcode::kRdmaRead || atomic) {
    EXPECT_EQ(local.bytes[0], 0x11);  // nothing read back
  }
}

INSTANTIATE_TEST_SUITE_P(
    All, RemoteAccess,
    ::testing::Combine(::testing::Values(WrOpcode::kRdmaWrite, WrOpcode::kRdmaRead,
                                         WrOpcode::kFetchAdd, WrOpcode::kCmpSwap),
                       ::testing::Values(Fault::kBadKey, Fault::kStaleKey, Fault::kOutOfBounds,
                                         Fault::kNoRights, Fault::kOtherPd)),
    [](const auto& info) {
      const WrOpcode o = std::get<0>(info.param);
      const char* n = o == WrOpcode::kRdmaWrite  ? "Write"
                      : o == WrOpcode::kRdmaRead ? "Read"
                      : o == WrOpcode::kFetchAdd ? "FetchAdd"
                                                 : "CmpSwap";
      return std::string(n) + fault_name(std::get<1>(info.param));
    });

// ---- invalid requests: NAK 0x61 -> REM_INV_REQ_ERR ----

class NotEnabled : public Errors, public ::testing::WithParamInterface<WrOpcode> {};

TEST_P(NotEnabled, OperationWithoutQpRemoteAccessIsInvalidRequest) {
  const WrOpcode opc = GetParam();
  const bool atomic = opc == WrOpcode::kFetchAdd || opc == WrOpcode::kCmpSwap;
  // The responder QP grants every remote right except the one this opcode needs.
  const uint32_t need = opc == WrOpcode::kRdmaWrite || opc == WrOpcode::kRdmaWriteImm
                            ? kAccessRemoteWrite
                        : opc == WrOpcode::kRdmaRead ? kAccessRemoteRead
                                                     : kAccessRemoteAtomic;
  auto p = rc_pair((kAccessRemoteWrite | kAccessRemoteRead | kAccessRemoteAtomic) & ~need);
  qa_ = p.a;
  qb_ = p.b;
  Buffer local = make_buffer(a_, 64, kAllAccess, 0x11);
  Buffer remote = make_buffer(b_, 64, kAllAccess, 0x22);
  ASSERT_EQ(post(qa_, opc, 9, &local, atomic ? 8 : 64, &remote), 0);
  expect_send_wcs({{9, WcStatus::kRemInvReqErr}});
  EXPECT_EQ(qb_->state(), QpState::kErr);
  EXPECT_EQ(qb_->counters().err_naks_sent, 1u);
  EXPECT_TRUE(has_event(events(b_), AsyncEventType::kQpReqErr, qb_->qpn()));
  EXPECT_EQ(remote.bytes, std::vector<uint8_t>(64, 0x22));
}

INSTANTIATE_TEST_SUITE_P(All, NotEnabled,
                         ::testing::Values(WrOpcode::kRdmaWrite, WrOpcode::kRdmaWriteImm,
                                           WrOpcode::kRdmaRead, WrOpcode::kFetchAdd,
                                           WrOpcode::kCmpSwap));

TEST_F(Errors, OtherRightsStillWorkWhenOneIsMissing) {
  auto p = rc_pair(kAccessRemoteRead);  // READ yes, WRITE no
  qa_ = p.a;
  Buffer local = make_buffer(a_, 64, kAllAccess, 0x11);
  Buffer remote = make_buffer(b_, 64, kAllAccess, 0x22);
  ASSERT_EQ(post(qa_, WrOpcode::kRdmaRead, 1, &local, 64, &remote), 0);
  auto wc = collect(a_.scq, 1);
  ASSERT_EQ(wc.size(), 1u);
  EXPECT_EQ(wc[0].status, WcStatus::kSuccess);
  EXPECT_EQ(local.bytes[0], 0x22);
}

TEST_F(Errors, ReadOrAtomicToAQpWithoutResponderResourcesIsInvalidRequest) {
  // max_dest_rd_atomic 0: no READ or atomic may be accepted (IBTA 9.9.3 class
  // C "too many RDMA READ or atomic requests"; rxe check_resource).
  for (WrOpcode opc : {WrOpcode::kRdmaRead, WrOpcode::kFetchAdd}) {
    qa_ = make_qp(a_, QpType::kRc);
    qb_ = make_qp(b_, QpType::kRc);
    connect(a_, qa_, b_, qb_);
    QpAttrs at;
    at.state = QpState::kInit;
    at.access = kAllAccess;
    ASSERT_TRUE(
        b_.dev
            ->modify_qp(qb_, at,
                        QpAttr::kState | QpAttr::kPkeyIndex | QpAttr::kPort | QpAttr::kAccessFlags)
            .is_ok());
    at.state = QpState::kRtr;
    at.path_mtu = 1024;
    at.dest_qpn = qa_->qpn();
    at.rq_psn = 0x123;
    at.av = av_to(a_);
    at.max_dest_rd_atomic = 0;
    at.min_rnr_timer = 1;
    ASSERT_TRUE(b_.dev
                    ->modify_qp(qb_, at,
                                QpAttr::kState | QpAttr::kAv | QpAttr::kPathMtu | QpAttr::kDestQpn |
                                    QpAttr::kRqPsn | QpAttr::kMaxDestRdAtomic |
                                    QpAttr::kMinRnrTimer)
                    .is_ok());
    at.state = QpState::kRts;
    at.sq_psn = 0x123;
    ASSERT_TRUE(b_.dev
                    ->modify_qp(qb_, at,
                                QpAttr::kState | QpAttr::kSqPsn | QpAttr::kTimeout |
                                    QpAttr::kRetryCnt | QpAttr::kRnrRetry | QpAttr::kMaxQpRdAtomic)
                    .is_ok());
    Buffer local = make_buffer(a_, 64, kAllAccess);
    Buffer remote = make_buffer(b_, 64, kAllAccess, 0x22);
    ASSERT_EQ(post(qa_, opc, 1, &local, 8, &remote), 0);
    expect_send_wcs({{1, WcStatus::kRemInvReqErr}});
    EXPECT_EQ(qb_->state(), QpState::kErr);
    EXPECT_EQ(remote.bytes, std::vector<uint8_t>(64, 0x22));
    events(b_);
  }
}

TEST_F(Errors, MisalignedAtomicIsInvalidRequest) {
  auto p = rc_pair();
  qa_ = p.a;
  qb_ = p.b;
  Buffer local = make_buffer(a_, 64, kAllAccess);
  Buffer remote = make_buffer(b_, 64, kAllAccess, 0x22);
  ASSERT_EQ(post(qa_, WrOpcode::kFetchAdd, 4, &local, 8, &remote, 4), 0);
  expect_send_wcs({{4, WcStatus::kRemInvReqErr}});
  EXPECT_EQ(qb_->state(), QpState::kErr);
  EXPECT_TRUE(has_event(events(b_), AsyncEventType::kQpReqErr, qb_->qpn()));
  EXPECT_EQ(remote.bytes, std::vector<uint8_t>(64, 0x22));
}

class SendTooLong : public Errors,
                    public ::testing::WithParamInterface<std::pair<uint32_t, uint32_t>> {};

TEST_P(SendTooLong, RequesterGetsInvalidRequestResponderLocalLengthError) {
  const uint32_t recv_len = GetParam().first, send_len = GetParam().second;
  auto p = rc_pair();
  qa_ = p.a;
  qb_ = p.b;
  Buffer src = make_buffer(a_, send_len, kAllAccess, 0x33);
  Buffer dst = make_buffer(b_, recv_len + 64, kAllAccess, 0x44);
  ASSERT_EQ(post_recv(qb_, 50, dst, recv_len), 0);
  ASSERT_EQ(post_recv(qb_, 51, dst, recv_len), 0);
  ASSERT_EQ(post(qa_, WrOpcode::kSend, 5, &src, send_len), 0);
  expect_send_wcs({{5, WcStatus::kRemInvReqErr}});
  auto rc = drain(b_.rcq);
  ASSERT_EQ(rc.size(), 2u);
  EXPECT_EQ(rc[0].wr_id, 50u);
  EXPECT_EQ(rc[0].status, WcStatus::kLocLenErr);
  EXPECT_EQ(rc[1].wr_id, 51u);
  EXPECT_EQ(rc[1].status, WcStatus::kWrFlushErr);
  EXPECT_EQ(qb_->state(), QpState::kErr);
  // Nothing written past the receive buffer.
  for (uint32_t i = recv_len; i < dst.bytes.size(); ++i) ASSERT_EQ(dst.bytes[i], 0x44) << i;
}

INSTANTIATE_TEST_SUITE_P(Sizes, SendTooLong,
                         ::testing::Values(std::make_pair(100u, 200u), std::make_pair(0u, 1u),
                                           std::make_pair(1500u, 3000u),
                                           std::make_pair(2048u, 2049u)));

// ---- local errors on the requester ----

TEST_F(Errors, BadLocalKeyOnSendIsLocalProtectionErrorAndSendsNothing) {
  auto p = rc_pair();
  qa_ = p.a;
  Buffer src = make_buffer(a_, 256, kAllAccess);
  Buffer remote = make_buffer(b_, 256, kAllAccess);
  run_for(kNanosPerMs);  // ARP settled
  const uint64_t tx_before = a_.dev->port().counters().tx_packets;
  Buffer bogus = src;
  bogus.bytes.clear();
  bogus.key = src.key ^ 0x5500;
  SendWqe w = wqe(WrOpcode::kSend, 1);
  Sge s{src.addr(), 256, bogus.key};
  w.num_sge = 1;
  ASSERT_EQ(qa_->post_send(w, &s, nullptr), 0);
  ASSERT_EQ(post(qa_, WrOpcode::kRdmaWrite, 2, &src, 256, &remote), 0);
  expect_send_wcs({{1, WcStatus::kLocProtErr}, {2, WcStatus::kWrFlushErr}});
  EXPECT_EQ(qa_->counters().tx_packets, 0u);
  EXPECT_EQ(a_.dev->port().counters().tx_packets, tx_before);
  EXPECT_EQ(qa_->state(), QpState::kErr);
}

TEST_F(Errors, LocalKeyBeyondItsRegionOrOfAnotherPdIsLocalProtectionError) {
  for (int variant = 0; variant < 3; ++variant) {
    SCOPED_TRACE(variant);
    auto p = rc_pair();
    qa_ = p.a;
    Buffer src = make_buffer(a_, 256, kAllAccess);
    Buffer remote = make_buffer(b_, 256, kAllAccess);
    uint32_t other_pd = a_.dev->alloc_pd().value();
    std::vector<uint8_t> other(256);
    const uint32_t other_key =
        a_.dev->reg_mr(other_pd, other.data(), uint64_t(other.data()), 256, kAllAccess).value();
    Buffer ro;  // READ target registered without local write
    ro.bytes.assign(256, 0);
    ro.key = a_.dev->reg_mr(a_.pd, ro.bytes.data(), ro.addr(), 256, kAccessRemoteRead).value();
    SendWqe w = wqe(variant == 2 ? WrOpcode::kRdmaRead : WrOpcode::kRdmaWrite, 7);
    Sge s = variant == 0   ? Sge{src.addr() + 200, 100, src.key}  // runs past the end
            : variant == 1 ? Sge{uint64_t(other.data()), 100, other_key}
                           : Sge{ro.addr(), 100, ro.key};
    w.num_sge = 1;
    w.remote_addr = remote.addr();
    w.rkey = remote.key;
    ASSERT_EQ(qa_->post_send(w, &s, nullptr), 0);
    expect_send_wcs({{7, WcStatus::kLocProtErr}});
    EXPECT_EQ(qa_->counters().tx_packets, 0u);
  }
}

TEST_F(Errors, ReceiveBufferWithBadKeyIsRemoteOperationalError) {
  for (int variant = 0; variant < 2; ++variant) {
    SCOPED_TRACE(variant);
    auto p = rc_pair();
    qa_ = p.a;
    qb_ = p.b;
    Buffer src = make_buffer(a_, 300, kAllAccess, 0x33);
    Buffer dst;
    dst.bytes.assign(512, 0x44);
    // 0: a key that does not exist; 1: a region without local write access.
    dst.key =
        variant == 0
            ? 0x7777700u
            : b_.dev->reg_mr(b_.pd, dst.bytes.data(), dst.addr(), 512, kAccessRemoteRead).value();
    ASSERT_EQ(post_recv(qb_, 60, dst, 512), 0);
    ASSERT_EQ(post(qa_, WrOpcode::kSend, 6, &src, 300), 0);
    expect_send_wcs({{6, WcStatus::kRemOpErr}});
    auto rc = drain(b_.rcq);
    ASSERT_EQ(rc.size(), 1u);
    EXPECT_EQ(rc[0].wr_id, 60u);
    EXPECT_EQ(rc[0].status, WcStatus::kLocProtErr);
    EXPECT_EQ(qb_->state(), QpState::kErr);
    EXPECT_EQ(qb_->counters().err_naks_sent, 1u);
    EXPECT_EQ(dst.bytes, std::vector<uint8_t>(512, 0x44));
    events(b_);
  }
}

TEST_F(Errors, LocalInvalidateOfARegisteredMrIsLocalQpOperationError) {
  // rxe: only fast-register MRs and memory windows can be invalidated; an
  // ibv_reg_mr region (droce has no other kind) or an unknown key ends the
  // WQE with IBV_WC_LOC_QP_OP_ERR.
  for (int variant = 0; variant < 2; ++variant) {
    auto p = rc_pair();
    qa_ = p.a;
    Buffer mr = make_buffer(a_, 64, kAllAccess);
    SendWqe w = wqe(WrOpcode::kLocalInv, 8);
    w.imm_or_inv = variant == 0 ? mr.key : 0x4242400u;
    ASSERT_EQ(qa_->post_send(w, nullptr, nullptr), 0);
    auto wc = collect(a_.scq, 1);
    ASSERT_EQ(wc.size(), 1u);
    EXPECT_EQ(wc[0].status, WcStatus::kLocQpOpErr) << variant;
    EXPECT_EQ(wc[0].opcode, WcOpcode::kLocalInv);
    EXPECT_EQ(qa_->counters().tx_packets, 0u);
  }
}

// ---- RNR ----

TEST_F(Errors, RnrNakThenSuccessOnceAReceiveIsPosted) {
  auto p = rc_pair(kAccessRemoteWrite, 1024, 14, 7, /*rnr_retry=*/7);
  qa_ = p.a;
  qb_ = p.b;
  Buffer src = make_buffer(a_, 3000, kAllAccess);
  fill_pattern(src.bytes, 3);
  Buffer dst = make_buffer(b_, 3000, kAllAccess);
  ASSERT_EQ(post(qa_, WrOpcode::kSend, 1, &src, 3000), 0);
  run_for(5 * kNanosPerMs);
  for (const Cqe& c : drain(a_.scq))
    ADD_FAILURE() << "unexpected completion, status " << int(c.status);
  const uint64_t naks = qb_->counters().rnr_naks_sent;
  EXPECT_GE(naks, 10u);
  // Every RNR NAK b sent reached a, but for the one b's last poll may have
  // sent after a's last poll.
  EXPECT_LE(qa_->counters().rnr_naks_received, naks);
  EXPECT_GE(qa_->counters().rnr_naks_received + 1, naks);
  EXPECT_EQ(qb_->state(), QpState::kRts);  // RNR is not an error for the responder
  ASSERT_EQ(post_recv(qb_, 70, dst, 3000), 0);
  auto wc = collect(a_.scq, 1);
  ASSERT_EQ(wc.size(), 1u);
  EXPECT_EQ(wc[0].status, WcStatus::kSuccess);
  auto rc = drain(b_.rcq);
  ASSERT_EQ(rc.size(), 1u);
  EXPECT_EQ(rc[0].status, WcStatus::kSuccess);
  EXPECT_EQ(rc[0].byte_len, 3000u);
  EXPECT_EQ(src.bytes, dst.bytes);
}

class RnrRetry : public Errors, public ::testing::WithParamInterface<int> {};

TEST_P(RnrRetry, ExhaustedAfterExactlyRnrRetryRetries) {
  const uint8_t rnr_retry = uint8_t(GetParam());
  auto p = rc_pair(kAccessRemoteWrite, 1024, 14, 7, rnr_retry);
  qa_ = p.a;
  qb_ = p.b;
  Buffer src = make_buffer(a_, 100, kAllAccess);
  ASSERT_EQ(post(qa_, WrOpcode::kSend, 1, &src, 100), 0);
  expect_send_wcs({{1, WcStatus::kRnrRetryExcErr}});
  // The first attempt plus rnr_retry retries, each answered by an RNR NAK.
  EXPECT_EQ(qb_->counters().rnr_naks_sent, rnr_retry + 1u);
  EXPECT_EQ(qa_->counters().rnr_naks_received, rnr_retry + 1u);
  EXPECT_EQ(qa_->counters().retransmits, uint64_t(rnr_retry));
  EXPECT_EQ(qa_->state(), QpState::kErr);
  EXPECT_EQ(qb_->state(), QpState::kRts);
}

INSTANTIATE_TEST_SUITE_P(Counts, RnrRetry, ::testing::Values(0, 1, 2, 3, 4, 5, 6));

TEST_F(Errors, RnrOnWriteWithImmediate) {
  auto p = rc_pair(kAccessRemoteWrite, 1024, 14, 7, 2);
  qa_ = p.a;
  qb_ = p.b;
  Buffer src = make_buffer(a_, 100, kAllAccess, 0x55);
  Buffer dst = make_buffer(b_, 100, kAllAccess);
  ASSERT_EQ(post(qa_, WrOpcode::kRdmaWriteImm, 1, &src, 100, &dst), 0);
  expect_send_wcs({{1, WcStatus::kRnrRetryExcErr}});
  EXPECT_EQ(qb_->counters().rnr_naks_sent, 3u);
}

// ---- transport retries (peer silent) ----

class RetryCount : public Errors, public ::testing::WithParamInterface<std::tuple<int, bool>> {};

TEST_P(RetryCount, RetryExceededAfterExactlyRetryCntRetries) {
  const uint8_t retry = uint8_t(std::get<0>(GetParam()));
  const bool missing_qp = std::get<1>(GetParam());
  // timeout 8: 4.096 us * 2^8 = 1.05 ms.
  qa_ = make_qp(a_, QpType::kRc);
  qb_ = make_qp(b_, QpType::kRc);
  Qp* target = qb_;
  if (missing_qp) {
    // A peer QP number nobody has: b's engine drops every packet (counted).
    target = make_qp(b_, QpType::kRc);
    ASSERT_TRUE(b_.dev->destroy_qp(target).is_ok());
    target = nullptr;
  }
  connect(b_, qb_, a_, qa_);
  if (missing_qp) {
    QpAttrs a;
    a.state = QpState::kInit;
    a.access = kAllAccess;
    ASSERT_TRUE(
        a_.dev
            ->modify_qp(qa_, a,
                        QpAttr::kState | QpAttr::kPkeyIndex | QpAttr::kPort | QpAttr::kAccessFlags)
            .is_ok());
    a.state = QpState::kRtr;
    a.path_mtu = 1024;
    a.dest_qpn = qb_->qpn() + 1;  // the destroyed one
    a.rq_psn = 0x123;
    a.av = av_to(b_);
    a.max_dest_rd_atomic = 1;
    a.min_rnr_timer = 1;
    ASSERT_TRUE(a_.dev
                    ->modify_qp(qa_, a,
                                QpAttr::kState | QpAttr::kAv | QpAttr::kPathMtu | QpAttr::kDestQpn |
                                    QpAttr::kRqPsn | QpAttr::kMaxDestRdAtomic |
                                    QpAttr::kMinRnrTimer)
                    .is_ok());
    a.state = QpState::kRts;
    a.sq_psn = 0x123;
    a.timeout = 8;
    a.retry_cnt = retry;
    a.rnr_retry = 7;
    a.max_rd_atomic = 1;
    ASSERT_TRUE(a_.dev
                    ->modify_qp(qa_, a,
                                QpAttr::kState | QpAttr::kSqPsn | QpAttr::kTimeout |
                                    QpAttr::kRetryCnt | QpAttr::kRnrRetry | QpAttr::kMaxQpRdAtomic)
                    .is_ok());
  } else {
    connect(a_, qa_, b_, qb_, kAllAccess, 1024, 8, retry, 7);
  }
  Buffer src = make_buffer(a_, 100, kAllAccess);
  Buffer dst = make_buffer(b_, 100, kAllAccess);
  run_for(kNanosPerMs);              // ARP answered
  if (!missing_qp) pump_b_ = false;  // the peer stops: nothing is ever acknowledged
  const uint64_t no_qp_before = b_.dev->counters().rx_no_qp;
  ASSERT_EQ(post(qa_, WrOpcode::kRdmaWrite, 1, &src, 100, &dst), 0);
  ASSERT_EQ(post(qa_, WrOpcode::kRdmaWrite, 2, &src, 100, &dst), 0);
  // retry 7 is seven retries, not infinity (the spec; rxe retries for ever).
  auto wc = collect(a_.scq, 2, 50 * kNanosPerUs, 400000);
  ASSERT_EQ(wc.size(), 2u) << "retry_cnt " << int(retry);
  EXPECT_EQ(wc[0].wr_id, 1u);
  EXPECT_EQ(wc[0].status, WcStatus::kRetryExcErr);
  EXPECT_EQ(wc[1].wr_id, 2u);
  EXPECT_EQ(wc[1].status, WcStatus::kWrFlushErr);
  EXPECT_EQ(qa_->counters().timeouts, retry + 1u);
  // Two packets per attempt (both WRITEs), the first attempt is not a retransmit.
  EXPECT_EQ(qa_->counters().tx_packets, 2u * (retry + 1u));
  EXPECT_EQ(qa_->counters().retransmits, 2u * retry);
  if (missing_qp) {
    EXPECT_EQ(b_.dev->counters().rx_no_qp - no_qp_before, 2u * (retry + 1u));
  }
  EXPECT_EQ(qa_->state(), QpState::kErr);
}

INSTANTIATE_TEST_SUITE_P(Counts, RetryCount,
                         ::testing::Combine(::testing::Values(0, 1, 3, 7), ::testing::Bool()));

TEST_F(Errors, RetryTimerWaitsTheLocalAckTimeout) {
  // timeout 10: 4.096 us * 1024 = 4.19 ms: nothing is resent before that.
  auto p = rc_pair(kAllAccess, 1024, 10, 7, 7);
  qa_ = p.a;
  Buffer src = make_buffer(a_, 100, kAllAccess);
  Buffer dst = make_buffer(b_, 100, kAllAccess);
  run_for(kNanosPerMs);
  pump_b_ = false;
  ASSERT_EQ(post(qa_, WrOpcode::kRdmaWrite, 1, &src, 100, &dst), 0);
  step(0);
  EXPECT_EQ(qa_->counters().tx_packets, 1u);
  run_for(4100 * kNanosPerUs, 20 * kNanosPerUs);
  EXPECT_EQ(qa_->counters().tx_packets, 1u);
  run_for(200 * kNanosPerUs, 20 * kNanosPerUs);
  EXPECT_EQ(qa_->counters().tx_packets, 2u);
  EXPECT_EQ(qa_->counters().timeouts, 1u);
}

// ---- remote invalidate, unknown NAKs, bad responses ----

TEST_F(Errors, SendWithInvalidateOfARegisteredMrFails) {
  // Documented in qp_responder.cc: droce has no memory windows or
  // fast-register MRs, so the rkey to invalidate is never valid (class J):
  // the receive WQE completes with REM_INV_REQ_ERR, the responder QP goes to
  // ERR and NAKs invalid request, so the requester sees REM_INV_REQ_ERR.
  auto p = rc_pair();
  qa_ = p.a;
  qb_ = p.b;
  Buffer src = make_buffer(a_, 64, kAllAccess);
  Buffer dst = make_buffer(b_, 64, kAllAccess);
  ASSERT_EQ(post_recv(qb_, 80, dst, 64), 0);
  SendWqe w = wqe(WrOpcode::kSendInv, 8);
  Sge s{src.addr(), 64, src.key};
  w.num_sge = 1;
  w.imm_or_inv = dst.key;
  ASSERT_EQ(qa_->post_send(w, &s, nullptr), 0);
  expect_send_wcs({{8, WcStatus::kRemInvReqErr}});
  auto rc = drain(b_.rcq);
  ASSERT_EQ(rc.size(), 1u);
  EXPECT_EQ(rc[0].wr_id, 80u);
  EXPECT_EQ(rc[0].status, WcStatus::kRemInvReqErr);
  EXPECT_EQ(qb_->state(), QpState::kErr);
  EXPECT_NE(b_.dev->mrs().find(dst.key), nullptr);  // still registered
}

TEST_F(Errors, UnknownNakCodeIsRemoteOperationalError) {
  // rxe: a NAK code other than 0..3 completes with IBV_WC_REM_OP_ERR.
  for (uint8_t code : {uint8_t(4), uint8_t(0x1F)}) {
    SCOPED_TRACE(int(code));
    auto p = rc_pair();
    qa_ = p.a;
    Buffer src = make_buffer(a_, 64, kAllAccess);
    Buffer dst = make_buffer(b_, 64, kAllAccess);
    run_for(kNanosPerMs);
    pump_b_ = false;  // b will not answer; we answer for it
    ASSERT_EQ(post(qa_, WrOpcode::kRdmaWrite, 1, &src, 64, &dst), 0);
    step(10 * kNanosPerUs);
    wire::PacketSpec s = spec(b_, a_, op::kAck, qa_->qpn(), 0x123);
    s.aeth_syndrome = wire::Aeth::make_syndrome(wire::AethType::kNak, code);
    inject(b_, s);
    expect_send_wcs({{1, WcStatus::kRemOpErr}});
    pump_b_ = true;  // b takes what a sent (its QP acknowledges; a is in ERR and drops it)
    run_for(kNanosPerMs);
  }
}

TEST_F(Errors, ReadResponseOfTheWrongLengthIsBadResponse) {
  auto p = rc_pair();
  qa_ = p.a;
  Buffer local = make_buffer(a_, 4096, kAllAccess);
  Buffer remote = make_buffer(b_, 4096, kAllAccess);
  run_for(kNanosPerMs);
  pump_b_ = false;
  ASSERT_EQ(post(qa_, WrOpcode::kRdmaRead, 1, &local, 500, &remote), 0);
  step(10 * kNanosPerUs);
  wire::PacketSpec s = spec(b_, a_, op::kReadRespOnly, qa_->qpn(), 0x123);
  s.aeth_syndrome = wire::Aeth::make_syndrome(wire::AethType::kAck, 0x1F);
  s.payload_len = 400;  // 500 asked
  inject(b_, s);
  expect_send_wcs({{1, WcStatus::kBadRespErr}});
  EXPECT_EQ(qa_->state(), QpState::kErr);
}

TEST_F(Errors, PsnSequenceNakResendsFromTheExpectedPsn) {
  // A NAK "PSN sequence error" (class B) is no error for the WQE: the
  // requester goes back to the PSN it names and the WRITE completes.
  auto p = rc_pair();
  qa_ = p.a;
  Buffer src = make_buffer(a_, 4096, kAllAccess);
  fill_pattern(src.bytes, 9);
  Buffer dst = make_buffer(b_, 4096, kAllAccess);
  run_for(kNanosPerMs);
  pump_b_ = false;
  ASSERT_EQ(post(qa_, WrOpcode::kRdmaWrite, 1, &src, 4096, &dst), 0);
  step(10 * kNanosPerUs);
  EXPECT_EQ(qa_->counters().tx_packets, 4u);
  // Throw away what a sent, then NAK "PSN sequence error, expected 0x123".
  {
    auto l = b_.dev->lock_engine();
    rte_mbuf* m[16];
    wire::PacketView v[16];
    const uint16_t n = b_.dev->port().receive(m, v, 16, now_);
    EXPECT_EQ(n, 4);
    rte_pktmbuf_free_bulk(m, n);
  }
  wire::PacketSpec s = spec(b_, a_, op::kAck, qa_->qpn(), 0x123);
  s.aeth_syndrome = wire::Aeth::make_syndrome(wire::AethType::kNak, 0);
  inject(b_, s);
  step(10 * kNanosPerUs);
  EXPECT_EQ(qa_->counters().seq_naks_received, 1u);
  EXPECT_EQ(qa_->counters().tx_packets, 8u);  // all four again
  EXPECT_EQ(qa_->counters().retransmits, 4u);
  EXPECT_EQ(qa_->counters().timeouts, 0u);
  pump_b_ = true;
  auto wc = collect(a_.scq, 1);
  ASSERT_EQ(wc.size(), 1u);
  EXPECT_EQ(wc[0].status, WcStatus::kSuccess);
  EXPECT_EQ(src.bytes, dst.bytes);
}

}  // namespace
}  // namespace droce::nic::test
