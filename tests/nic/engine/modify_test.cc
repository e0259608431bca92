// modify_qp through the device on real QPs (IBTA vol. 1, 11.2.4.2; issue 4
// sections 4 and 7): every cell of the table for RC, UC and UD, masks exactly
// as the table says, all-or-nothing on refusal, value checks and cur_state.
#include <string>

#include "tests/nic/engine/engine_checks.h"
#include "tests/nic/engine/engine_fixture.h"

namespace droce::nic::test {
namespace {

constexpr QpType kTypes[] = {QpType::kRc, QpType::kUc, QpType::kUd};
constexpr QpState kStates[] = {QpState::kReset, QpState::kInit, QpState::kRtr, QpState::kRts,
                               QpState::kSqd,   QpState::kSqe,  QpState::kErr};
// Every attribute bit libibverbs defines (bits 21-24 are its deprecated ones).
constexpr uint32_t kKnownBits = ((1u << 21) - 1) | (1u << 25);
constexpr uint32_t kUnknownBits[] = {1u << 21, 1u << 24, 1u << 26, 1u << 31};

constexpr uint32_t operator|(QpAttr a, uint32_t mask) { return uint32_t(a) | mask; }
constexpr uint32_t bits(QpAttr a) { return uint32_t(a); }

class ModifyTest : public EngineTest {
 protected:
  // Values used to bring a QP up (the "before" of every cell).
  QpAttrs base_attrs(QpType t) {
    QpAttrs a;
    a.access = kAccessRemoteWrite;
    a.pkey_index = 0;
    a.port_num = 1;
    a.qkey = 0x11111111;
    a.av = av_to(b_);
    a.path_mtu = 1024;
    a.timeout = 14;
    a.retry_cnt = 7;
    a.rnr_retry = 7;
    a.min_rnr_timer = 1;
    a.rq_psn = 0x123;
    a.sq_psn = 0x321;
    a.max_rd_atomic = 2;
    a.max_dest_rd_atomic = 2;
    a.dest_qpn = 0x55;
    (void)t;
    return a;
  }

  // Other valid values, so that what a modify applies is visible.
  QpAttrs cell_attrs(QpState cur, QpState next) {
    QpAttrs a;
    a.state = next;
    a.cur_state = cur;
    a.en_sqd_async_notify = true;
    a.access = kAccessRemoteWrite | kAccessRemoteRead | kAccessRemoteAtomic;
    a.pkey_index = 0;
    a.port_num = 1;
    a.qkey = 0x0BADF00D;
    a.av = av_to(b_);
    a.av.hop_limit = 33;
    a.av.traffic_class = 8;
    a.av.flow_label = 5;
    a.av.sl = 2;
    a.path_mtu = 512;
    a.timeout = 10;
    a.retry_cnt = 5;
    a.rnr_retry = 4;
    a.min_rnr_timer = 3;
    a.rq_psn = 0x42;
    a.sq_psn = 0x77;
    a.max_rd_atomic = 4;
    a.max_dest_rd_atomic = 8;
    a.dest_qpn = 0x99;
    return a;
  }

  // The required mask of a cell, or 0 when the cell is not allowed.
  static uint32_t required(QpType t, QpState cur, QpState next) {
    return qp_transition(t, cur, next).required;
  }

  // Takes a fresh QP from RESET to s along valid transitions.
  void bring_to(Qp* qp, QpState s) {
    const QpType t = qp->type();
    const QpAttrs b = base_attrs(t);
    const QpState path[] = {QpState::kInit, QpState::kRtr, QpState::kRts};
    QpState cur = QpState::kReset;
    const QpState target =
        s == QpState::kSqd || s == QpState::kSqe || s == QpState::kErr ? QpState::kRts : s;
    for (QpState next : path) {
      if (cur == target) break;
      QpAttrs a = b;
      a.state = next;
      const Status st = a_.dev->modify_qp(qp, a, QpAttr::kState | required(t, cur, next));
      ASSERT_TRUE(st.is_ok()) << qp_state_name(cur) << "->" << qp_state_name(next) << ": "
                              << st.message();
      cur = next;
    }
    if (s == QpState::kSqd || s == QpState::kErr) {
      QpAttrs a = b;
      a.state = s;
      ASSERT_TRUE(a_.dev->modify_qp(qp, a, uint32_t(QpAttr::kState)).is_ok());
    } else if (s == QpState::kSqe) {
      // No modify leads to SQE (only a send error of a UC/UD QP does).
      QpTestPeer::force_state(*a_.dev, qp, QpState::kSqe);
    }
    ASSERT_EQ(qp->state(), s);
    ASSERT_EQ(a_.dev->query_qp(qp).state, s);
  }

  Qp* fresh(QpType t, QpState s) {
    Qp* qp = make_qp(a_, t, 64, 2);
    if (qp != nullptr) bring_to(qp, s);
    return qp;
  }

  void destroy(Qp* qp) {
    ASSERT_TRUE(a_.dev->destroy_qp(qp).is_ok());
    drain(a_.scq);
    drain(a_.rcq);
  }

  // What a post returns in state s (libibverbs: EINVAL where the QP cannot send).
  static int expected_post_send(QpState s) {
    return s == QpState::kReset || s == QpState::kInit || s == QpState::kRtr ? EINVAL : 0;
  }
  static int expected_post_recv(QpState s) { return s == QpState::kReset ? EINVAL : 0; }

  // Posts one send and one receive WR; returns the two results.
  std::pair<int, int> probe_post(Qp* qp) {
    SendWqe w = wqe(WrOpcode::kSend, 9000 + probes_++, 0);
    const int s = qp->post_send(w, nullptr, nullptr);
    const int r = qp->post_recv(9000 + probes_++, nullptr, 0);
    return {s, r};
  }

  // The attributes after a successful modify, as the verbs spec defines them.
  static QpAttrs apply(const QpAttrs& before, const QpAttrs& a, uint32_t mask, QpState next) {
    QpAttrs e = before;
    if (next == QpState::kReset && before.state != QpState::kReset) {
      e = QpAttrs{};  // RESET forgets everything
      e.cap = before.cap;
    } else {
      if (has_attr(mask, QpAttr::kAccessFlags)) e.access = a.access;
      if (has_attr(mask, QpAttr::kPkeyIndex)) e.pkey_index = a.pkey_index;
      if (has_attr(mask, QpAttr::kPort)) e.port_num = a.port_num;
      if (has_attr(mask, QpAttr::kQkey)) e.qkey = a.qkey;
      if (has_attr(mask, QpAttr::kAv)) {
        e.av = a.av;
        e.av.dst_ip = uint32_t(a.av.dgid[12]) << 24 | uint32_t(a.av.dgid[13]) << 16 |
                      uint32_t(a.av.dgid[14]) << 8 | a.av.dgid[15];
      }
      if (has_attr(mask, QpAttr::kPathMtu)) e.path_mtu = a.path_mtu;
      if (has_attr(mask, QpAttr::kTimeout)) e.timeout = a.timeout;
      if (has_attr(mask, QpAttr::kRetryCnt)) e.retry_cnt = a.retry_cnt;
      if (has_attr(mask, QpAttr::kRnrRetry)) e.rnr_retry = a.rnr_retry;
      if (has_attr(mask, QpAttr::kMinRnrTimer)) e.min_rnr_timer = a.min_rnr_timer;
      if (has_attr(mask, QpAttr::kRqPsn)) e.rq_psn = a.rq_psn;
      if (has_attr(mask, QpAttr::kSqPsn)) e.sq_psn = a.sq_psn;
      if (has_attr(mask, QpAttr::kMaxQpRdAtomic)) e.max_rd_atomic = a.max_rd_atomic;
      if (has_attr(mask, QpAttr::kMaxDestRdAtomic)) e.max_dest_rd_atomic = a.max_dest_rd_atomic;
      if (has_attr(mask, QpAttr::kDestQpn)) e.dest_qpn = a.dest_qpn;
      if (has_attr(mask, QpAttr::kEnSqdAsyncNotify)) e.en_sqd_async_notify = a.en_sqd_async_notify;
    }
    e.state = e.cur_state = next;
    return e;
  }

  // A refused modify: kInvalidArgument, and the QP exactly as before
  // (attributes, state, and what posting does).
  void expect_refused(Qp* qp, const QpAttrs& a, uint32_t mask, const std::string& ctx) {
    const QpState s = qp->state();
    const QpAttrs before = a_.dev->query_qp(qp);
    const Status st = a_.dev->modify_qp(qp, a, mask);
    ASSERT_FALSE(st.is_ok()) << ctx << " mask 0x" << std::hex << mask << " was accepted";
    EXPECT_EQ(st.code(), Errc::kInvalidArgument) << ctx << ": " << st.message();
    EXPECT_EQ(diff_attrs(a_.dev->query_qp(qp), before), "")
        << ctx << " mask 0x" << std::hex << mask;
    EXPECT_EQ(qp->state(), s) << ctx;
    if (expected_post_send(s) != 0) {
      // Posting is refused in these states: still refused (no side effects).
      SendWqe w = wqe(WrOpcode::kSend, 1, 0);
      EXPECT_EQ(qp->post_send(w, nullptr, nullptr), EINVAL) << ctx;
    }
    ++refused_;
  }

  void expect_accepted(Qp* qp, const QpAttrs& a, uint32_t mask, QpState next,
                       const std::string& ctx) {
    const QpAttrs before = a_.dev->query_qp(qp);
    const Status st = a_.dev->modify_qp(qp, a, mask);
    ASSERT_TRUE(st.is_ok()) << ctx << " mask 0x" << std::hex << mask << ": " << st.message();
    const QpAttrs after = a_.dev->query_qp(qp);
    EXPECT_EQ(after.state, next) << ctx;
    EXPECT_EQ(after.cur_state, next) << ctx;
    EXPECT_EQ(qp->state(), next) << ctx;
    EXPECT_EQ(diff_attrs(after, apply(before, a, mask, next)), "") << ctx;
    const auto [s, r] = probe_post(qp);
    EXPECT_EQ(s, expected_post_send(next)) << ctx << ": post_send after the modify";
    EXPECT_EQ(r, expected_post_recv(next)) << ctx << ": post_recv after the modify";
    ++accepted_;
  }

  // One (type, cur, next) cell, on real QPs.
  void check_cell(QpType t, QpState cur, QpState next) {
    const std::string ctx =
        std::string(qp_type_name(t)) + " " + qp_state_name(cur) + "->" + qp_state_name(next);
    SCOPED_TRACE(ctx);
    const QpTransition tr = qp_transition(t, cur, next);
    const QpAttrs a = cell_attrs(cur, next);
    const uint32_t state_bit = uint32_t(QpAttr::kState);

    // Refusals, all on one QP (each must leave it untouched).
    Qp* qp = fresh(t, cur);
    ASSERT_NE(qp, nullptr);
    const auto before_posts = std::pair<int, int>{expected_post_send(cur), expected_post_recv(cur)};
    if (!tr.allowed) {
      expect_refused(qp, a, state_bit, ctx + " (bare)");
      expect_refused(qp, a, state_bit | required(t, QpState::kRtr, QpState::kRts), ctx);
      expect_refused(qp, a, state_bit | required(t, QpState::kInit, QpState::kRtr), ctx);
      expect_refused(qp, a, kKnownBits & ~uint32_t(QpAttr::kCurState), ctx + " (every attribute)");
    } else {
      for (uint32_t bit = 1; bit != 0; bit <<= 1) {
        if (tr.required & bit) {
          expect_refused(qp, a, (state_bit | tr.required) & ~bit,
                         ctx + " without " + qp_attr_name(bit));
        } else if ((kKnownBits & bit) && !((tr.optional | state_bit) & bit)) {
          expect_refused(qp, a, state_bit | tr.required | bit, ctx + " with " + qp_attr_name(bit));
        }
      }
      for (uint32_t bit : kUnknownBits) {
        expect_refused(qp, a, state_bit | tr.required | bit, ctx + " with an unknown bit");
      }
      if (has_attr(tr.optional, QpAttr::kCurState)) {
        // The caller's claim of the current state must be the truth.
        QpAttrs wrong = a;
        wrong.cur_state = cur == QpState::kRtr ? QpState::kRts : QpState::kRtr;
        expect_refused(qp, wrong, state_bit | tr.required | QpAttr::kCurState,
                       ctx + " claiming " + qp_state_name(wrong.cur_state));
      }
    }
    // Posting behaves as before all those refusals.
    const auto after_posts = probe_post(qp);
    EXPECT_EQ(after_posts, before_posts) << ctx;
    destroy(qp);
    if (!tr.allowed) return;

    // Exactly the required attributes.
    qp = fresh(t, cur);
    ASSERT_NE(qp, nullptr);
    expect_accepted(qp, a, state_bit | tr.required, next, ctx + " required only");
    destroy(qp);
    // Required plus every optional one.
    qp = fresh(t, cur);
    ASSERT_NE(qp, nullptr);
    expect_accepted(qp, a, state_bit | tr.required | tr.optional, next, ctx + " with optionals");
    destroy(qp);
    if (cur == next && tr.required == 0) {
      // Without kState: change attributes, stay in the state.
      qp = fresh(t, cur);
      ASSERT_NE(qp, nullptr);
      if (tr.optional != 0) {
        expect_accepted(qp, a, tr.optional, next, ctx + " without STATE");
      }
      destroy(qp);
    }
  }

  uint32_t probes_ = 0;
  int refused_ = 0;
  int accepted_ = 0;
};

TEST_F(ModifyTest, EveryCellOfTheTableOnRealQps) {
  for (QpType t : kTypes) {
    for (QpState cur : kStates) {
      for (QpState next : kStates) {
        check_cell(t, cur, next);
        if (HasFatalFailure()) return;
      }
    }
  }
  // The table has 22 allowed cells per type; every one was taken at least twice.
  EXPECT_GE(accepted_, 3 * 22 * 2);
  EXPECT_GT(refused_, 1000);
}

// The table's shape, spelled out independently of qp_state.cc for the usual
// connection path, so a table that allowed nothing would not pass the test above.
TEST_F(ModifyTest, UsualConnectionPathsAndWhatTheyRequire) {
  Qp* rc = make_qp(a_, QpType::kRc);
  QpAttrs a = base_attrs(QpType::kRc);
  a.state = QpState::kInit;
  const uint32_t to_init =
      QpAttr::kState | QpAttr::kPkeyIndex | QpAttr::kPort | QpAttr::kAccessFlags;
  EXPECT_FALSE(a_.dev->modify_qp(rc, a, to_init & ~uint32_t(QpAttr::kAccessFlags)).is_ok());
  ASSERT_TRUE(a_.dev->modify_qp(rc, a, to_init).is_ok());
  a.state = QpState::kRtr;
  const uint32_t to_rtr = QpAttr::kState | QpAttr::kAv | QpAttr::kPathMtu | QpAttr::kDestQpn |
                          QpAttr::kRqPsn | QpAttr::kMaxDestRdAtomic | QpAttr::kMinRnrTimer;
  EXPECT_FALSE(a_.dev->modify_qp(rc, a, to_rtr & ~uint32_t(QpAttr::kMinRnrTimer)).is_ok());
  ASSERT_TRUE(a_.dev->modify_qp(rc, a, to_rtr).is_ok());
  a.state = QpState::kRts;
  const uint32_t to_rts = QpAttr::kState | QpAttr::kTimeout | QpAttr::kRetryCnt |
                          QpAttr::kRnrRetry | QpAttr::kSqPsn | QpAttr::kMaxQpRdAtomic;
  EXPECT_FALSE(a_.dev->modify_qp(rc, a, to_rts & ~uint32_t(QpAttr::kRetryCnt)).is_ok());
  ASSERT_TRUE(a_.dev->modify_qp(rc, a, to_rts).is_ok());
  EXPECT_EQ(a_.dev->query_qp(rc).cur_state, QpState::kRts);

  Qp* ud = make_qp(a_, QpType::kUd);
  a = base_attrs(QpType::kUd);
  a.state = QpState::kInit;
  EXPECT_FALSE(a_.dev->modify_qp(ud, a, to_init).is_ok());  // UD takes a Q_Key, not access flags
  ASSERT_TRUE(
      a_.dev->modify_qp(ud, a, QpAttr::kState | QpAttr::kPkeyIndex | QpAttr::kPort | QpAttr::kQkey)
          .is_ok());
  a.state = QpState::kRtr;
  EXPECT_FALSE(a_.dev->modify_qp(ud, a, to_rtr).is_ok());
  ASSERT_TRUE(a_.dev->modify_qp(ud, a, uint32_t(QpAttr::kState)).is_ok());
  a.state = QpState::kRts;
  ASSERT_TRUE(a_.dev->modify_qp(ud, a, QpAttr::kState | QpAttr::kSqPsn).is_ok());
  EXPECT_EQ(a_.dev->query_qp(ud).state, QpState::kRts);
}

// ---- value checks: all or nothing ----

class ModifyValueTest : public ModifyTest {
 protected:
  // A refused modify whose mask is allowed but one value is bad.
  void refuse_value(Qp* qp, const QpAttrs& a, uint32_t mask, const char* what) {
    SCOPED_TRACE(what);
    expect_refused(qp, a, mask, what);
  }
  static constexpr uint32_t kToRtrRc = QpAttr::kState | QpAttr::kAv | QpAttr::kPathMtu |
                                       QpAttr::kDestQpn | QpAttr::kRqPsn |
                                       QpAttr::kMaxDestRdAtomic | QpAttr::kMinRnrTimer;
  static constexpr uint32_t kToRtsRc = QpAttr::kState | QpAttr::kTimeout | QpAttr::kRetryCnt |
                                       QpAttr::kRnrRetry | QpAttr::kSqPsn | QpAttr::kMaxQpRdAtomic;
};

TEST_F(ModifyValueTest, InitToRtrBadPathMtuAppliesNothing) {
  Qp* qp = fresh(QpType::kRc, QpState::kInit);
  QpAttrs a = cell_attrs(QpState::kInit, QpState::kRtr);
  for (uint32_t mtu : {0u, 128u, 300u, 2048u /* above the port's 1024 */, 4096u, 8192u}) {
    a.path_mtu = mtu;
    refuse_value(qp, a, kToRtrRc, ("path_mtu " + std::to_string(mtu)).c_str());
  }
  // The same modify with a good MTU goes through and applies every value.
  a.path_mtu = 256;
  expect_accepted(qp, a, kToRtrRc, QpState::kRtr, "path_mtu 256");
  EXPECT_EQ(a_.dev->query_qp(qp).dest_qpn, 0x99u);
}

TEST_F(ModifyValueTest, InitToRtrBadGidAppliesNothing) {
  Qp* qp = fresh(QpType::kRc, QpState::kInit);
  QpAttrs a = cell_attrs(QpState::kInit, QpState::kRtr);
  a.av.dgid[10] = 0;  // not ::ffff:a.b.c.d
  refuse_value(qp, a, kToRtrRc, "non-IPv4-mapped GID");
  a = cell_attrs(QpState::kInit, QpState::kRtr);
  std::memset(a.av.dgid, 0, 16);
  a.av.dgid[0] = 0xFE;
  a.av.dgid[1] = 0x80;
  refuse_value(qp, a, kToRtrRc, "link-local IPv6 GID");
  a = cell_attrs(QpState::kInit, QpState::kRtr);
  a.av.sgid_index = 1;
  refuse_value(qp, a, kToRtrRc, "source GID index 1");
  a = cell_attrs(QpState::kInit, QpState::kRtr);
  a.max_dest_rd_atomic = uint8_t(a_.dev->attr().max_qp_rd_atom + 1);
  refuse_value(qp, a, kToRtrRc, "max_dest_rd_atomic above the device");
  a = cell_attrs(QpState::kInit, QpState::kRtr);
  a.min_rnr_timer = 32;
  refuse_value(qp, a, kToRtrRc, "min_rnr_timer 32");
  a = cell_attrs(QpState::kInit, QpState::kRtr);
  a.pkey_index = 1;
  refuse_value(qp, a, kToRtrRc | QpAttr::kPkeyIndex, "pkey index 1");
  a = cell_attrs(QpState::kInit, QpState::kRtr);
  a.access = 1u << 12;
  refuse_value(qp, a, kToRtrRc | QpAttr::kAccessFlags, "unknown access flag");
}

TEST_F(ModifyValueTest, RtrToRtsBadRetryOrTimeoutAppliesNothing) {
  Qp* qp = fresh(QpType::kRc, QpState::kRtr);
  const QpAttrs good = cell_attrs(QpState::kRtr, QpState::kRts);
  QpAttrs a = good;
  a.timeout = 32;
  refuse_value(qp, a, kToRtsRc, "timeout 32");
  a = good;
  a.retry_cnt = 8;
  refuse_value(qp, a, kToRtsRc, "retry_cnt 8");
  a = good;
  a.rnr_retry = 8;
  refuse_value(qp, a, kToRtsRc, "rnr_retry 8");
  a = good;
  a.max_rd_atomic = uint8_t(a_.dev->attr().max_qp_init_rd_atom + 1);
  refuse_value(qp, a, kToRtsRc, "max_rd_atomic above the device");
  a = good;
  a.min_rnr_timer = 40;  // optional here: a bad value still refuses the whole modify
  refuse_value(qp, a, kToRtsRc | QpAttr::kMinRnrTimer, "min_rnr_timer 40");
  // Unchanged means the bring-up values are still there.
  const QpAttrs q = a_.dev->query_qp(qp);
  EXPECT_EQ(q.timeout, 14);
  EXPECT_EQ(q.retry_cnt, 7);
  EXPECT_EQ(q.sq_psn, 0u);
  expect_accepted(qp, good, kToRtsRc, QpState::kRts, "good values");
  EXPECT_EQ(a_.dev->query_qp(qp).timeout, 10);
}

TEST_F(ModifyValueTest, SqdToSqdValidTimeoutWithBadPortKeepsTimeout) {
  Qp* qp = fresh(QpType::kRc, QpState::kSqd);
  QpAttrs a = cell_attrs(QpState::kSqd, QpState::kSqd);
  a.timeout = 3;
  a.port_num = 2;
  refuse_value(qp, a, QpAttr::kState | QpAttr::kTimeout | QpAttr::kPort, "port 2");
  a.port_num = 0;
  refuse_value(qp, a, QpAttr::kState | QpAttr::kTimeout | QpAttr::kPort, "port 0");
  a.port_num = 1;
  a.pkey_index = 7;
  refuse_value(qp, a, QpAttr::kState | QpAttr::kTimeout | QpAttr::kPkeyIndex, "pkey index 7");
  EXPECT_EQ(a_.dev->query_qp(qp).timeout, 14);
  a.pkey_index = 0;
  expect_accepted(qp, a, QpAttr::kState | QpAttr::kTimeout | QpAttr::kPort, QpState::kSqd,
                  "port 1");
  EXPECT_EQ(a_.dev->query_qp(qp).timeout, 3);
}

TEST_F(ModifyValueTest, ResetToInitBadPortOrPkeyIndex) {
  for (QpType t : kTypes) {
    Qp* qp = make_qp(a_, t);
    QpAttrs a = cell_attrs(QpState::kReset, QpState::kInit);
    const uint32_t mask = QpAttr::kState | required(t, QpState::kReset, QpState::kInit);
    a.port_num = 2;
    refuse_value(qp, a, mask, "port 2");
    a.port_num = 1;
    a.pkey_index = 1;
    refuse_value(qp, a, mask, "pkey index 1");
    a.pkey_index = 0;
    expect_accepted(qp, a, mask, QpState::kInit, "good");
    destroy(qp);
  }
}

TEST_F(ModifyValueTest, CurStateClaimMustMatch) {
  for (QpType t : kTypes) {
    Qp* qp = fresh(t, QpState::kRts);
    QpAttrs a = cell_attrs(QpState::kRts, QpState::kRts);
    for (QpState claim : kStates) {
      if (claim == QpState::kRts) continue;
      a.cur_state = claim;
      refuse_value(qp, a, QpAttr::kState | QpAttr::kCurState, qp_state_name(claim));
      // The claim is checked without kState too (attribute change in place).
      refuse_value(qp, a, uint32_t(QpAttr::kCurState), qp_state_name(claim));
    }
    a.cur_state = QpState::kRts;
    expect_accepted(qp, a, QpAttr::kState | QpAttr::kCurState, QpState::kRts, "true claim");
    destroy(qp);
  }
}

TEST_F(ModifyValueTest, RtsAttributeChangeInPlaceKeepsWorking) {
  // An RTS QP refused a bad change still sends and receives.
  Qp* qa = make_qp(a_, QpType::kRc);
  Qp* qb = make_qp(b_, QpType::kRc);
  connect(a_, qa, b_, qb);
  connect(b_, qb, a_, qa);
  QpAttrs a = a_.dev->query_qp(qa);
  a.min_rnr_timer = 99;
  const QpAttrs before = a_.dev->query_qp(qa);
  EXPECT_EQ(a_.dev->modify_qp(qa, a, QpAttr::kMinRnrTimer | QpAttr::kAccessFlags).code(),
            Errc::kInvalidArgument);
  EXPECT_EQ(a_.dev->modify_qp(qa, a, bits(QpAttr::kPathMtu)).code(), Errc::kInvalidArgument);
  EXPECT_EQ(diff_attrs(a_.dev->query_qp(qa), before), "");
  ASSERT_EQ(qb->post_recv(1, nullptr, 0), 0);
  SendWqe w = wqe(WrOpcode::kSend, 2);
  ASSERT_EQ(qa->post_send(w, nullptr, nullptr), 0);
  auto sc = wait_cqes(a_.scq, 1);
  auto rc = wait_cqes(b_.rcq, 1);
  ASSERT_EQ(sc.size(), 1u);
  ASSERT_EQ(rc.size(), 1u);
  EXPECT_EQ(sc[0].status, WcStatus::kSuccess);
  EXPECT_EQ(rc[0].status, WcStatus::kSuccess);
}

// RESET forgets everything the engine kept for the QP, whatever state it was
// in, so a QP taken back through INIT, RTR and RTS behaves as a new one.
TEST_F(ModifyTest, ResetForgetsAllEngineState) {
  for (QpType t : kTypes) {
    for (QpState s : {QpState::kInit, QpState::kRtr, QpState::kRts, QpState::kSqd, QpState::kErr}) {
      Qp* fresh_qp = make_qp(a_, t, 64, 2);
      const std::string want = QpTestPeer::engine_state(*a_.dev, fresh_qp);
      Qp* qp = fresh(t, s);
      ASSERT_NE(qp, nullptr);
      QpTestPeer::dirty(*a_.dev, qp);
      QpAttrs a;
      a.state = QpState::kReset;
      ASSERT_TRUE(a_.dev->modify_qp(qp, a, bits(QpAttr::kState)).is_ok());
      EXPECT_EQ(QpTestPeer::engine_state(*a_.dev, qp), want)
          << qp_type_name(t) << " from " << qp_state_name(s);
      destroy(qp);
      destroy(fresh_qp);
    }
  }
}

// ---- SQD: the send queue drains (IBTA 10.3.1, 11.2.4.2) ----

class SqdTest : public ModifyTest {
 protected:
  void to_sqd(Qp* qp, bool notify) {
    QpAttrs a;
    a.state = QpState::kSqd;
    a.en_sqd_async_notify = notify;
    ASSERT_TRUE(a_.dev->modify_qp(qp, a, QpAttr::kState | QpAttr::kEnSqdAsyncNotify).is_ok());
  }
  int sq_drained_events(uint32_t qpn) {
    int n = 0;
    for (const AsyncEvent& e : drain_events(*a_.dev)) {
      n += e.type == AsyncEventType::kSqDrained && e.qpn == qpn;
    }
    return n;
  }
  int post_write(Qp* qp, uint64_t wr_id, const Buffer& src, const Buffer& dst, uint32_t len) {
    SendWqe w = wqe(WrOpcode::kRdmaWrite, wr_id);
    Sge s{src.addr(), len, src.key};
    w.num_sge = 1;
    w.remote_addr = dst.addr();
    w.rkey = dst.key;
    return qp->post_send(w, &s, nullptr);
  }
};

TEST_F(SqdTest, InProgressWqeFinishesNewOnesWaitThenSqDrained) {
  constexpr uint32_t kAll = kAccessLocalWrite | kAccessRemoteWrite;
  Qp* qa = make_qp(a_, QpType::kRc);
  Qp* qb = make_qp(b_, QpType::kRc);
  connect(a_, qa, b_, qb);
  connect(b_, qb, a_, qa);
  Buffer src = make_buffer(a_, 64 * 1024, kAll, 7);
  Buffer dst = make_buffer(b_, 64 * 1024, kAll);
  ASSERT_EQ(post_write(qa, 1, src, dst, 64), 0);  // resolves ARP
  ASSERT_EQ(wait_cqes(a_.scq, 1).size(), 1u);
  drain_events(*a_.dev);

  ASSERT_EQ(post_write(qa, 2, src, dst, 40 * 1024), 0);  // 40 packets
  ASSERT_EQ(post_write(qa, 3, src, dst, 100), 0);
  ASSERT_EQ(post_write(qa, 4, src, dst, 100), 0);
  poll_once(*a_.dev);  // 32 packets of WQE 2 leave; 3 and 4 wait
  const uint64_t tx_partial = qa->counters().tx_packets;
  to_sqd(qa, true);
  EXPECT_TRUE(a_.dev->query_qp(qa).sq_draining);  // WQE 2 is half sent
  EXPECT_EQ(sq_drained_events(qa->qpn()), 0);
  auto sc = wait_cqes(a_.scq, 1);
  ASSERT_EQ(sc.size(), 1u);
  EXPECT_EQ(sc[0].wr_id, 2u);
  EXPECT_EQ(sc[0].status, WcStatus::kSuccess);
  EXPECT_EQ(qa->counters().tx_packets - tx_partial, 8u);  // the rest of 2, nothing of 3 and 4
  EXPECT_EQ(std::memcmp(src.bytes.data(), dst.bytes.data(), 40 * 1024), 0);
  pump([] { return false; }, 10 * kNanosPerMs);
  EXPECT_TRUE(drain(a_.scq).empty());
  EXPECT_FALSE(a_.dev->query_qp(qa).sq_draining);
  EXPECT_EQ(sq_drained_events(qa->qpn()), 1);
  // Posting in SQD is allowed; the WQE waits too.
  ASSERT_EQ(post_write(qa, 5, src, dst, 100), 0);
  pump([] { return false; }, 5 * kNanosPerMs);
  EXPECT_TRUE(drain(a_.scq).empty());
  EXPECT_EQ(sq_drained_events(qa->qpn()), 0);  // once

  QpAttrs a;
  a.state = QpState::kRts;
  ASSERT_TRUE(a_.dev->modify_qp(qa, a, uint32_t(QpAttr::kState)).is_ok());
  sc = wait_cqes(a_.scq, 3);
  ASSERT_EQ(sc.size(), 3u);
  for (size_t i = 0; i < 3; ++i) {
    EXPECT_EQ(sc[i].wr_id, 3 + i);
    EXPECT_EQ(sc[i].status, WcStatus::kSuccess);
  }
}

TEST_F(SqdTest, NothingOutstandingRaisesSqDrainedAtOnce) {
  Qp* qa = make_qp(a_, QpType::kRc);
  Qp* qb = make_qp(b_, QpType::kRc);
  connect(a_, qa, b_, qb);
  connect(b_, qb, a_, qa);
  drain_events(*a_.dev);
  to_sqd(qa, true);
  EXPECT_FALSE(a_.dev->query_qp(qa).sq_draining);
  pump([] { return false; }, 2 * kNanosPerMs);
  EXPECT_EQ(sq_drained_events(qa->qpn()), 1);
  // Without the notify flag: no event.
  Qp* qc = make_qp(a_, QpType::kUd);
  Qp* qd = make_qp(b_, QpType::kUd);
  connect(a_, qc, b_, qd);
  to_sqd(qc, false);
  pump([] { return false; }, 2 * kNanosPerMs);
  EXPECT_EQ(sq_drained_events(qc->qpn()), 0);
  // SQD -> SQD and back to RTS.
  QpAttrs a;
  a.state = QpState::kRts;
  ASSERT_TRUE(a_.dev->modify_qp(qa, a, uint32_t(QpAttr::kState)).is_ok());
  EXPECT_EQ(a_.dev->query_qp(qa).state, QpState::kRts);
}

}  // namespace
}  // namespace droce::nic::test
