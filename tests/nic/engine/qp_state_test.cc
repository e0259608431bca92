// Tests for nic/qp_state.h: the modify_qp table, every (type, state, state)
// cell against a literal copy of Linux's qp_state_table (written with
// libibverbs' constants), with every subset of the cell's relevant mask bits
// and every other bit added one at a time.
#include "nic/qp_state.h"

#include <gtest/gtest.h>
#include <infiniband/verbs.h>

#include <cstdint>
#include <string>
#include <vector>

namespace droce::nic {
namespace {

// ---- droce's enums are libibverbs' values ----------------------------------

static_assert(uint32_t(QpAttr::kState) == IBV_QP_STATE);
static_assert(uint32_t(QpAttr::kCurState) == IBV_QP_CUR_STATE);
static_assert(uint32_t(QpAttr::kEnSqdAsyncNotify) == IBV_QP_EN_SQD_ASYNC_NOTIFY);
static_assert(uint32_t(QpAttr::kAccessFlags) == IBV_QP_ACCESS_FLAGS);
static_assert(uint32_t(QpAttr::kPkeyIndex) == IBV_QP_PKEY_INDEX);
static_assert(uint32_t(QpAttr::kPort) == IBV_QP_PORT);
static_assert(uint32_t(QpAttr::kQkey) == IBV_QP_QKEY);
static_assert(uint32_t(QpAttr::kAv) == IBV_QP_AV);
static_assert(uint32_t(QpAttr::kPathMtu) == IBV_QP_PATH_MTU);
static_assert(uint32_t(QpAttr::kTimeout) == IBV_QP_TIMEOUT);
static_assert(uint32_t(QpAttr::kRetryCnt) == IBV_QP_RETRY_CNT);
static_assert(uint32_t(QpAttr::kRnrRetry) == IBV_QP_RNR_RETRY);
static_assert(uint32_t(QpAttr::kRqPsn) == IBV_QP_RQ_PSN);
static_assert(uint32_t(QpAttr::kMaxQpRdAtomic) == IBV_QP_MAX_QP_RD_ATOMIC);
static_assert(uint32_t(QpAttr::kAltPath) == IBV_QP_ALT_PATH);
static_assert(uint32_t(QpAttr::kMinRnrTimer) == IBV_QP_MIN_RNR_TIMER);
static_assert(uint32_t(QpAttr::kSqPsn) == IBV_QP_SQ_PSN);
static_assert(uint32_t(QpAttr::kMaxDestRdAtomic) == IBV_QP_MAX_DEST_RD_ATOMIC);
static_assert(uint32_t(QpAttr::kPathMigState) == IBV_QP_PATH_MIG_STATE);
static_assert(uint32_t(QpAttr::kCap) == IBV_QP_CAP);
static_assert(uint32_t(QpAttr::kDestQpn) == IBV_QP_DEST_QPN);
static_assert(uint32_t(QpAttr::kRateLimit) == IBV_QP_RATE_LIMIT);

static_assert(uint8_t(QpState::kReset) == IBV_QPS_RESET);
static_assert(uint8_t(QpState::kInit) == IBV_QPS_INIT);
static_assert(uint8_t(QpState::kRtr) == IBV_QPS_RTR);
static_assert(uint8_t(QpState::kRts) == IBV_QPS_RTS);
static_assert(uint8_t(QpState::kSqd) == IBV_QPS_SQD);
static_assert(uint8_t(QpState::kSqe) == IBV_QPS_SQE);
static_assert(uint8_t(QpState::kErr) == IBV_QPS_ERR);
static_assert(kNumQpStates == IBV_QPS_ERR + 1);

static_assert(uint8_t(QpType::kRc) == IBV_QPT_RC);
static_assert(uint8_t(QpType::kUc) == IBV_QPT_UC);
static_assert(uint8_t(QpType::kUd) == IBV_QPT_UD);

// ---- the expected table, written out from the kernel's qp_state_table ------
// (drivers/infiniband/core/verbs.c; IBTA vol. 1 table 91). Every allowed
// (type, cur, next) is one row; anything not listed is not allowed.

struct Row {
  ibv_qp_type type;
  ibv_qp_state cur;
  ibv_qp_state next;
  uint32_t required;
  uint32_t optional;
};

constexpr uint32_t kRtsOptRc = IBV_QP_CUR_STATE | IBV_QP_ALT_PATH | IBV_QP_ACCESS_FLAGS |
                               IBV_QP_MIN_RNR_TIMER | IBV_QP_PATH_MIG_STATE;
constexpr uint32_t kRtsOptUc =
    IBV_QP_CUR_STATE | IBV_QP_ALT_PATH | IBV_QP_ACCESS_FLAGS | IBV_QP_PATH_MIG_STATE;
constexpr uint32_t kRtsOptUd = IBV_QP_CUR_STATE | IBV_QP_QKEY;

const std::vector<Row>& expected_rows() {
  static const std::vector<Row> rows = [] {
    std::vector<Row> v;
    const ibv_qp_type types[] = {IBV_QPT_RC, IBV_QPT_UC, IBV_QPT_UD};
    // Rows that are the same for every type and carry no attributes:
    // RESET -> RESET, and every state except RESET -> RESET and -> ERR.
    for (ibv_qp_type t : types) {
      v.push_back({t, IBV_QPS_RESET, IBV_QPS_RESET, 0, 0});
      for (ibv_qp_state s :
           {IBV_QPS_INIT, IBV_QPS_RTR, IBV_QPS_RTS, IBV_QPS_SQD, IBV_QPS_SQE, IBV_QPS_ERR}) {
        v.push_back({t, s, IBV_QPS_RESET, 0, 0});
        v.push_back({t, s, IBV_QPS_ERR, 0, 0});
      }
      v.push_back({t, IBV_QPS_RTS, IBV_QPS_SQD, 0, IBV_QP_EN_SQD_ASYNC_NOTIFY});
    }
    // RESET -> INIT
    v.push_back({IBV_QPT_RC, IBV_QPS_RESET, IBV_QPS_INIT,
                 IBV_QP_PKEY_INDEX | IBV_QP_PORT | IBV_QP_ACCESS_FLAGS, 0});
    v.push_back({IBV_QPT_UC, IBV_QPS_RESET, IBV_QPS_INIT,
                 IBV_QP_PKEY_INDEX | IBV_QP_PORT | IBV_QP_ACCESS_FLAGS, 0});
    v.push_back({IBV_QPT_UD, IBV_QPS_RESET, IBV_QPS_INIT,
                 IBV_QP_PKEY_INDEX | IBV_QP_PORT | IBV_QP_QKEY, 0});
    // INIT -> INIT
    v.push_back({IBV_QPT_RC, IBV_QPS_INIT, IBV_QPS_INIT, 0,
                 IBV_QP_PKEY_INDEX | IBV_QP_PORT | IBV_QP_ACCESS_FLAGS});
    v.push_back({IBV_QPT_UC, IBV_QPS_INIT, IBV_QPS_INIT, 0,
                 IBV_QP_PKEY_INDEX | IBV_QP_PORT | IBV_QP_ACCESS_FLAGS});
    v.push_back(
        {IBV_QPT_UD, IBV_QPS_INIT, IBV_QPS_INIT, 0, IBV_QP_PKEY_INDEX | IBV_QP_PORT | IBV_QP_QKEY});
    // INIT -> RTR
    v.push_back({IBV_QPT_RC, IBV_QPS_INIT, IBV_QPS_RTR,
                 IBV_QP_AV | IBV_QP_PATH_MTU | IBV_QP_DEST_QPN | IBV_QP_RQ_PSN |
                     IBV_QP_MAX_DEST_RD_ATOMIC | IBV_QP_MIN_RNR_TIMER,
                 IBV_QP_ALT_PATH | IBV_QP_ACCESS_FLAGS | IBV_QP_PKEY_INDEX});
    v.push_back({IBV_QPT_UC, IBV_QPS_INIT, IBV_QPS_RTR,
                 IBV_QP_AV | IBV_QP_PATH_MTU | IBV_QP_DEST_QPN | IBV_QP_RQ_PSN,
                 IBV_QP_ALT_PATH | IBV_QP_ACCESS_FLAGS | IBV_QP_PKEY_INDEX});
    v.push_back({IBV_QPT_UD, IBV_QPS_INIT, IBV_QPS_RTR, 0, IBV_QP_PKEY_INDEX | IBV_QP_QKEY});
    // RTR -> RTS
    v.push_back({IBV_QPT_RC, IBV_QPS_RTR, IBV_QPS_RTS,
                 IBV_QP_TIMEOUT | IBV_QP_RETRY_CNT | IBV_QP_RNR_RETRY | IBV_QP_SQ_PSN |
                     IBV_QP_MAX_QP_RD_ATOMIC,
                 kRtsOptRc});
    v.push_back({IBV_QPT_UC, IBV_QPS_RTR, IBV_QPS_RTS, IBV_QP_SQ_PSN, kRtsOptUc});
    v.push_back({IBV_QPT_UD, IBV_QPS_RTR, IBV_QPS_RTS, IBV_QP_SQ_PSN, kRtsOptUd});
    // RTS -> RTS and SQD -> RTS
    for (ibv_qp_state s : {IBV_QPS_RTS, IBV_QPS_SQD}) {
      v.push_back({IBV_QPT_RC, s, IBV_QPS_RTS, 0, kRtsOptRc});
      v.push_back({IBV_QPT_UC, s, IBV_QPS_RTS, 0, kRtsOptUc});
      v.push_back({IBV_QPT_UD, s, IBV_QPS_RTS, 0, kRtsOptUd});
    }
    // SQD -> SQD
    v.push_back({IBV_QPT_RC, IBV_QPS_SQD, IBV_QPS_SQD, 0,
                 IBV_QP_PORT | IBV_QP_AV | IBV_QP_TIMEOUT | IBV_QP_RETRY_CNT | IBV_QP_RNR_RETRY |
                     IBV_QP_MAX_QP_RD_ATOMIC | IBV_QP_MAX_DEST_RD_ATOMIC | IBV_QP_ALT_PATH |
                     IBV_QP_ACCESS_FLAGS | IBV_QP_PKEY_INDEX | IBV_QP_MIN_RNR_TIMER |
                     IBV_QP_PATH_MIG_STATE});
    v.push_back({IBV_QPT_UC, IBV_QPS_SQD, IBV_QPS_SQD, 0,
                 IBV_QP_AV | IBV_QP_ALT_PATH | IBV_QP_ACCESS_FLAGS | IBV_QP_PKEY_INDEX |
                     IBV_QP_PATH_MIG_STATE});
    v.push_back({IBV_QPT_UD, IBV_QPS_SQD, IBV_QPS_SQD, 0, IBV_QP_PKEY_INDEX | IBV_QP_QKEY});
    // SQE -> RTS (the kernel lists no attributes for RC: allowed, none accepted)
    v.push_back({IBV_QPT_RC, IBV_QPS_SQE, IBV_QPS_RTS, 0, 0});
    v.push_back({IBV_QPT_UC, IBV_QPS_SQE, IBV_QPS_RTS, 0, IBV_QP_CUR_STATE | IBV_QP_ACCESS_FLAGS});
    v.push_back({IBV_QPT_UD, IBV_QPS_SQE, IBV_QPS_RTS, 0, IBV_QP_CUR_STATE | IBV_QP_QKEY});
    return v;
  }();
  return rows;
}

const Row* find_row(ibv_qp_type t, ibv_qp_state cur, ibv_qp_state next) {
  const Row* found = nullptr;
  for (const Row& r : expected_rows()) {
    if (r.type == t && r.cur == cur && r.next == next) {
      EXPECT_EQ(found, nullptr) << "duplicate row in the test's own table";
      found = &r;
    }
  }
  return found;
}

const ibv_qp_type kTypes[] = {IBV_QPT_RC, IBV_QPT_UC, IBV_QPT_UD};

std::string cell_name(ibv_qp_type t, int cur, int next) {
  return std::string(qp_type_name(QpType(t))) + " " + qp_state_name(QpState(cur)) + "->" +
         qp_state_name(QpState(next));
}

// Every subset of `bits` (including 0 and bits itself).
std::vector<uint32_t> subsets(uint32_t bits) {
  std::vector<uint32_t> out;
  uint32_t s = 0;
  do {
    out.push_back(s);
    s = (s - bits) & bits;
  } while (s != 0);
  return out;
}

TEST(QpStateTable, RowCount) {
  // Sanity of the literal table, counted per current state for one type:
  // RESET {RESET, INIT}, INIT {RESET, INIT, RTR, ERR}, RTR {RESET, RTS, ERR},
  // RTS {RESET, RTS, SQD, ERR}, SQD {RESET, RTS, SQD, ERR}, SQE {RESET, RTS,
  // ERR}, ERR {RESET, ERR}: 22 cells, the same set for RC, UC and UD.
  EXPECT_EQ(expected_rows().size(), 3u * 22u);
}

TEST(QpStateTable, EveryCellMatchesKernelTable) {
  int allowed = 0;
  for (ibv_qp_type t : kTypes) {
    for (int cur = 0; cur < kNumQpStates; ++cur) {
      for (int next = 0; next < kNumQpStates; ++next) {
        const Row* row = find_row(t, ibv_qp_state(cur), ibv_qp_state(next));
        const QpTransition tr = qp_transition(QpType(t), QpState(cur), QpState(next));
        SCOPED_TRACE(cell_name(t, cur, next));
        ASSERT_EQ(tr.allowed, row != nullptr);
        if (row != nullptr) {
          ++allowed;
          EXPECT_EQ(tr.required, row->required);
          EXPECT_EQ(tr.optional, row->optional);
        } else {
          EXPECT_EQ(tr.required, 0u);
          EXPECT_EQ(tr.optional, 0u);
        }
      }
    }
  }
  EXPECT_EQ(size_t(allowed), expected_rows().size());
}

// For an allowed cell: all 2^k subsets of (required | optional | STATE),
// each alone and with each of the other 32 - k bits added. The result must
// be ok exactly when every required bit is present and nothing else is, and
// a failure must name exactly the missing and the extra bits.
TEST(QpStateTable, AllowedCellsEveryRelevantMask) {
  uint64_t checks = 0;
  for (const Row& row : expected_rows()) {
    SCOPED_TRACE(cell_name(row.type, row.cur, row.next));
    const QpType type = QpType(row.type);
    const QpState cur = QpState(row.cur);
    const QpState next = QpState(row.next);
    const uint32_t relevant = row.required | row.optional | IBV_QP_STATE;
    for (uint32_t s : subsets(relevant)) {
      const uint32_t missing = row.required & ~s;
      const QpTransitionCheck c = check_modify(type, cur, next, s);
      ++checks;
      if (missing == 0) {
        ASSERT_TRUE(c.ok()) << std::hex << "mask 0x" << s << " " << qp_check_name(c.code);
        ASSERT_EQ(c.missing, 0u);
        ASSERT_EQ(c.extra, 0u);
        ASSERT_EQ(c.first_bad_attr(), 0u);
      } else {
        ASSERT_EQ(c.code, QpCheck::kMissingAttr) << std::hex << "mask 0x" << s;
        ASSERT_EQ(c.missing, missing);
        ASSERT_EQ(c.extra, 0u);
        ASSERT_EQ(c.first_bad_attr(), missing & (~missing + 1));
      }
      for (int b = 0; b < 32; ++b) {
        const uint32_t bit = 1u << b;
        if (relevant & bit) continue;
        const QpTransitionCheck e = check_modify(type, cur, next, s | bit);
        ++checks;
        ASSERT_FALSE(e.ok()) << std::hex << "mask 0x" << (s | bit);
        ASSERT_EQ(e.code, missing ? QpCheck::kMissingAttr : QpCheck::kAttrNotAllowed);
        ASSERT_EQ(e.missing, missing);
        ASSERT_EQ(e.extra, bit);
        if (!missing) {
          ASSERT_EQ(e.first_bad_attr(), bit);
        }
      }
    }
  }
  EXPECT_GT(checks, 100000u);
}

TEST(QpStateTable, DisallowedCellsAlwaysFail) {
  // Masks to try: empty, STATE, every single bit, every pair of the known
  // bits 0..25, all ones, and every allowed cell's required|optional (a mask
  // that works somewhere else must still fail here).
  std::vector<uint32_t> masks = {0, IBV_QP_STATE, 0xFFFFFFFFu};
  for (int b = 0; b < 32; ++b) masks.push_back(1u << b);
  for (int a = 0; a < 26; ++a) {
    for (int b = a + 1; b < 26; ++b) masks.push_back((1u << a) | (1u << b));
  }
  for (const Row& r : expected_rows()) {
    masks.push_back(r.required);
    masks.push_back(r.required | r.optional | IBV_QP_STATE);
  }
  int disallowed = 0;
  for (ibv_qp_type t : kTypes) {
    for (int cur = 0; cur < kNumQpStates; ++cur) {
      for (int next = 0; next < kNumQpStates; ++next) {
        if (find_row(t, ibv_qp_state(cur), ibv_qp_state(next)) != nullptr) continue;
        ++disallowed;
        SCOPED_TRACE(cell_name(t, cur, next));
        for (uint32_t m : masks) {
          const QpTransitionCheck c = check_modify(QpType(t), QpState(cur), QpState(next), m);
          ASSERT_EQ(c.code, QpCheck::kBadTransition) << std::hex << "mask 0x" << m;
          ASSERT_FALSE(c.ok());
        }
      }
    }
  }
  EXPECT_EQ(disallowed, 3 * 49 - int(expected_rows().size()));
}

// ---- the cases the brief calls out, by name ----------------------------------

constexpr uint32_t kRcInit = IBV_QP_STATE | IBV_QP_PKEY_INDEX | IBV_QP_PORT | IBV_QP_ACCESS_FLAGS;
constexpr uint32_t kRcRtr = IBV_QP_STATE | IBV_QP_AV | IBV_QP_PATH_MTU | IBV_QP_DEST_QPN |
                            IBV_QP_RQ_PSN | IBV_QP_MAX_DEST_RD_ATOMIC | IBV_QP_MIN_RNR_TIMER;
constexpr uint32_t kRcRts = IBV_QP_STATE | IBV_QP_TIMEOUT | IBV_QP_RETRY_CNT | IBV_QP_RNR_RETRY |
                            IBV_QP_SQ_PSN | IBV_QP_MAX_QP_RD_ATOMIC;

TEST(QpStateNamed, RcBringUpAsIbvRcPingpong) {
  EXPECT_TRUE(check_modify(QpType::kRc, QpState::kReset, QpState::kInit, kRcInit).ok());
  EXPECT_TRUE(check_modify(QpType::kRc, QpState::kInit, QpState::kRtr, kRcRtr).ok());
  EXPECT_TRUE(check_modify(QpType::kRc, QpState::kRtr, QpState::kRts, kRcRts).ok());
  // Skipping a step is refused.
  EXPECT_EQ(check_modify(QpType::kRc, QpState::kReset, QpState::kRtr, kRcRtr).code,
            QpCheck::kBadTransition);
  EXPECT_EQ(check_modify(QpType::kRc, QpState::kInit, QpState::kRts, kRcRts).code,
            QpCheck::kBadTransition);
  // RC INIT->RTR without MIN_RNR_TIMER names that attribute.
  const QpTransitionCheck c = check_modify(QpType::kRc, QpState::kInit, QpState::kRtr,
                                           kRcRtr & ~uint32_t(IBV_QP_MIN_RNR_TIMER));
  EXPECT_EQ(c.code, QpCheck::kMissingAttr);
  EXPECT_EQ(c.first_bad_attr(), uint32_t(IBV_QP_MIN_RNR_TIMER));
  EXPECT_STREQ(qp_attr_name(c.first_bad_attr()), "MIN_RNR_TIMER");
  // UC needs neither MIN_RNR_TIMER nor MAX_DEST_RD_ATOMIC, and refuses them.
  const QpTransitionCheck u = check_modify(QpType::kUc, QpState::kInit, QpState::kRtr, kRcRtr);
  EXPECT_EQ(u.code, QpCheck::kAttrNotAllowed);
  EXPECT_EQ(u.extra, uint32_t(IBV_QP_MAX_DEST_RD_ATOMIC | IBV_QP_MIN_RNR_TIMER));
}

TEST(QpStateNamed, ResetAndErrRows) {
  for (QpType t : {QpType::kRc, QpType::kUc, QpType::kUd}) {
    EXPECT_TRUE(check_modify(t, QpState::kReset, QpState::kReset, IBV_QP_STATE).ok());
    EXPECT_TRUE(check_modify(t, QpState::kErr, QpState::kReset, IBV_QP_STATE).ok());
    EXPECT_TRUE(check_modify(t, QpState::kErr, QpState::kErr, IBV_QP_STATE).ok());
    // RESET -> ERR is not in the kernel's table.
    EXPECT_EQ(check_modify(t, QpState::kReset, QpState::kErr, IBV_QP_STATE).code,
              QpCheck::kBadTransition);
    for (QpState s : {QpState::kInit, QpState::kRtr, QpState::kRts, QpState::kSqd, QpState::kSqe}) {
      EXPECT_TRUE(check_modify(t, s, QpState::kErr, IBV_QP_STATE).ok()) << qp_state_name(s);
      EXPECT_TRUE(check_modify(t, s, QpState::kReset, IBV_QP_STATE).ok()) << qp_state_name(s);
      // To ERR / RESET carries no attributes at all.
      EXPECT_EQ(check_modify(t, s, QpState::kErr, IBV_QP_STATE | IBV_QP_QKEY).code,
                QpCheck::kAttrNotAllowed);
      EXPECT_EQ(check_modify(t, s, QpState::kErr, IBV_QP_STATE | IBV_QP_CUR_STATE).code,
                QpCheck::kAttrNotAllowed);
    }
    // Nothing leaves ERR except to RESET or ERR.
    EXPECT_EQ(check_modify(t, QpState::kErr, QpState::kRts, IBV_QP_STATE).code,
              QpCheck::kBadTransition);
  }
}

TEST(QpStateNamed, SqdSqeRows) {
  for (QpType t : {QpType::kRc, QpType::kUc, QpType::kUd}) {
    EXPECT_TRUE(check_modify(t, QpState::kRts, QpState::kSqd, IBV_QP_STATE).ok());
    EXPECT_TRUE(
        check_modify(t, QpState::kRts, QpState::kSqd, IBV_QP_STATE | IBV_QP_EN_SQD_ASYNC_NOTIFY)
            .ok());
    EXPECT_TRUE(check_modify(t, QpState::kSqd, QpState::kSqd, IBV_QP_STATE).ok());
    EXPECT_TRUE(check_modify(t, QpState::kSqd, QpState::kRts, IBV_QP_STATE).ok());
    EXPECT_EQ(check_modify(t, QpState::kRts, QpState::kSqe, IBV_QP_STATE).code,
              QpCheck::kBadTransition);  // SQE is entered by the engine, never by modify
    EXPECT_EQ(check_modify(t, QpState::kSqe, QpState::kSqe, IBV_QP_STATE).code,
              QpCheck::kBadTransition);
    EXPECT_EQ(check_modify(t, QpState::kRtr, QpState::kRtr, IBV_QP_STATE).code,
              QpCheck::kBadTransition);
  }
  EXPECT_TRUE(check_modify(QpType::kUd, QpState::kSqe, QpState::kRts,
                           IBV_QP_STATE | IBV_QP_CUR_STATE | IBV_QP_QKEY)
                  .ok());
  EXPECT_TRUE(
      check_modify(QpType::kUc, QpState::kSqe, QpState::kRts, IBV_QP_STATE | IBV_QP_ACCESS_FLAGS)
          .ok());
  EXPECT_EQ(
      check_modify(QpType::kRc, QpState::kSqe, QpState::kRts, IBV_QP_STATE | IBV_QP_CUR_STATE).code,
      QpCheck::kAttrNotAllowed);
  // SQD -> SQD: an RC path change while drained.
  EXPECT_TRUE(check_modify(QpType::kRc, QpState::kSqd, QpState::kSqd,
                           IBV_QP_AV | IBV_QP_TIMEOUT | IBV_QP_PORT)
                  .ok());
}

TEST(QpStateNamed, CurStateOnlyFromRtrRtsSqdSqe) {
  // The kernel's extra rule, which droce's table already implies.
  for (QpType t : {QpType::kRc, QpType::kUc, QpType::kUd}) {
    for (int cur = 0; cur < kNumQpStates; ++cur) {
      for (int next = 0; next < kNumQpStates; ++next) {
        const QpTransition tr = qp_transition(t, QpState(cur), QpState(next));
        if (!tr.allowed) continue;
        const bool cur_ok =
            cur == IBV_QPS_RTR || cur == IBV_QPS_RTS || cur == IBV_QPS_SQD || cur == IBV_QPS_SQE;
        const QpTransitionCheck c =
            check_modify(t, QpState(cur), QpState(next), tr.required | IBV_QP_CUR_STATE);
        if (!cur_ok) {
          EXPECT_FALSE(c.ok()) << cell_name(ibv_qp_type(t), cur, next);
        }
        if (c.ok()) {
          EXPECT_EQ(next, int(IBV_QPS_RTS)) << "CUR_STATE accepted only towards RTS";
        }
      }
    }
  }
  EXPECT_TRUE(check_cur_state(IBV_QP_STATE, QpState::kRts, QpState::kInit));  // not asserted
  EXPECT_TRUE(check_cur_state(IBV_QP_CUR_STATE, QpState::kRts, QpState::kRts));
  EXPECT_FALSE(check_cur_state(IBV_QP_CUR_STATE, QpState::kSqe, QpState::kRts));
}

TEST(QpStateNamed, NoStateBitMeansSameStateModify) {
  // ibv_modify_qp without IBV_QP_STATE: the caller checks cur -> cur.
  EXPECT_TRUE(check_modify(QpType::kRc, QpState::kRts, QpState::kRts, IBV_QP_MIN_RNR_TIMER).ok());
  EXPECT_TRUE(check_modify(QpType::kRc, QpState::kRts, QpState::kRts, 0).ok());
  EXPECT_EQ(check_modify(QpType::kRc, QpState::kRtr, QpState::kRtr, IBV_QP_MIN_RNR_TIMER).code,
            QpCheck::kBadTransition);
}

TEST(QpStateNamed, CapAndRateLimitNeverAllowed) {
  for (QpType t : {QpType::kRc, QpType::kUc, QpType::kUd}) {
    for (int cur = 0; cur < kNumQpStates; ++cur) {
      for (int next = 0; next < kNumQpStates; ++next) {
        const QpTransition tr = qp_transition(t, QpState(cur), QpState(next));
        if (!tr.allowed) continue;
        for (uint32_t bad :
             {uint32_t(IBV_QP_CAP), uint32_t(IBV_QP_RATE_LIMIT), 1u << 21, 1u << 24, 1u << 31}) {
          const QpTransitionCheck c =
              check_modify(t, QpState(cur), QpState(next), tr.required | bad);
          EXPECT_EQ(c.code, QpCheck::kAttrNotAllowed);
          EXPECT_EQ(c.extra, bad);
        }
      }
    }
  }
}

TEST(QpStateNamed, MissingReportedBeforeExtra) {
  const QpTransitionCheck c =
      check_modify(QpType::kUd, QpState::kReset, QpState::kInit, IBV_QP_PORT | IBV_QP_AV);
  EXPECT_EQ(c.code, QpCheck::kMissingAttr);
  EXPECT_EQ(c.missing, uint32_t(IBV_QP_PKEY_INDEX | IBV_QP_QKEY));
  EXPECT_EQ(c.extra, uint32_t(IBV_QP_AV));
  EXPECT_EQ(c.first_bad_attr(), uint32_t(IBV_QP_PKEY_INDEX));
}

TEST(QpStateNamed, InvalidEnumValues) {
  for (uint8_t t : {0, 1, 5, 8, 255}) {
    EXPECT_EQ(check_modify(QpType(t), QpState::kReset, QpState::kInit, kRcInit).code,
              QpCheck::kBadArgument)
        << int(t);
    EXPECT_FALSE(qp_transition(QpType(t), QpState::kReset, QpState::kInit).allowed);
  }
  for (uint8_t s : {7, 8, 255}) {
    EXPECT_EQ(check_modify(QpType::kRc, QpState(s), QpState::kErr, 0).code, QpCheck::kBadArgument);
    EXPECT_EQ(check_modify(QpType::kRc, QpState::kRts, QpState(s), 0).code, QpCheck::kBadArgument);
    EXPECT_FALSE(qp_transition(QpType::kRc, QpState(s), QpState::kErr).allowed);
  }
}

TEST(QpStateNamed, Names) {
  for (int b = 0; b <= 20; ++b) EXPECT_STRNE(qp_attr_name(1u << b), "?") << b;
  EXPECT_STREQ(qp_attr_name(IBV_QP_RATE_LIMIT), "RATE_LIMIT");
  EXPECT_STREQ(qp_attr_name(1u << 21), "?");
  EXPECT_STREQ(qp_attr_name(3), "?");  // not a single bit
  EXPECT_STREQ(qp_state_name(QpState::kSqe), "SQE");
  EXPECT_STREQ(qp_type_name(QpType::kUd), "UD");
  EXPECT_STREQ(qp_check_name(QpCheck::kOk), "ok");
}

}  // namespace
}  // namespace droce::nic
