// The modify_qp transition table (IBTA vol. 1, 11.2.4.2 / table 91), laid out
// as Linux's qp_state_table in drivers/infiniband/core/verbs.c, for RC/UC/UD.
#include "nic/qp_state.h"

namespace droce::nic {
namespace {

using A = QpAttr;

struct Cell {
  bool allowed;
  uint32_t required[3];  // by type index: RC, UC, UD
  uint32_t optional[3];
};

constexpr int type_index(QpType t) {
  switch (t) {
    case QpType::kRc:
      return 0;
    case QpType::kUc:
      return 1;
    case QpType::kUd:
      return 2;
  }
  return -1;
}

constexpr bool valid_state(QpState s) { return uint8_t(s) < kNumQpStates; }

// Allowed with no attributes (X -> RESET, X -> ERR, RESET -> RESET).
constexpr Cell kBare = {true, {0, 0, 0}, {0, 0, 0}};
constexpr Cell kNo = {false, {0, 0, 0}, {0, 0, 0}};

// Attribute groups that recur in the table.
constexpr uint32_t kPkeyPort = A::kPkeyIndex | A::kPort;
constexpr uint32_t kToRtsRc =
    A::kCurState | A::kAltPath | A::kAccessFlags | A::kMinRnrTimer | uint32_t(A::kPathMigState);
constexpr uint32_t kToRtsUc = A::kCurState | A::kAltPath | A::kAccessFlags | A::kPathMigState;
constexpr uint32_t kToRtsUd = A::kCurState | A::kQkey;

constexpr Cell kResetToInit = {
    true,
    {kPkeyPort | A::kAccessFlags, kPkeyPort | A::kAccessFlags, kPkeyPort | A::kQkey},
    {0, 0, 0}};

constexpr Cell kInitToInit = {
    true,
    {0, 0, 0},
    {kPkeyPort | A::kAccessFlags, kPkeyPort | A::kAccessFlags, kPkeyPort | A::kQkey}};

constexpr uint32_t kRtrUc = A::kAv | A::kPathMtu | A::kDestQpn | A::kRqPsn;
constexpr Cell kInitToRtr = {
    true,
    {kRtrUc | A::kMaxDestRdAtomic | A::kMinRnrTimer, kRtrUc, 0},
    {A::kAltPath | A::kAccessFlags | A::kPkeyIndex, A::kAltPath | A::kAccessFlags | A::kPkeyIndex,
     A::kPkeyIndex | A::kQkey}};

constexpr Cell kRtrToRts = {
    true,
    {A::kTimeout | A::kRetryCnt | A::kRnrRetry | A::kSqPsn | A::kMaxQpRdAtomic, uint32_t(A::kSqPsn),
     uint32_t(A::kSqPsn)},
    {kToRtsRc, kToRtsUc, kToRtsUd}};

// RTS -> RTS and SQD -> RTS: no requirements, the usual "to RTS" options.
constexpr Cell kToRts = {true, {0, 0, 0}, {kToRtsRc, kToRtsUc, kToRtsUd}};

constexpr Cell kRtsToSqd = {true,
                            {0, 0, 0},
                            {uint32_t(A::kEnSqdAsyncNotify), uint32_t(A::kEnSqdAsyncNotify),
                             uint32_t(A::kEnSqdAsyncNotify)}};

constexpr Cell kSqdToSqd = {
    true,
    {0, 0, 0},
    {A::kPort | A::kAv | A::kTimeout | A::kRetryCnt | A::kRnrRetry | A::kMaxQpRdAtomic |
         A::kMaxDestRdAtomic | A::kAltPath | A::kAccessFlags | A::kPkeyIndex | A::kMinRnrTimer |
         A::kPathMigState,
     A::kAv | A::kAltPath | A::kAccessFlags | A::kPkeyIndex | A::kPathMigState,
     A::kPkeyIndex | A::kQkey}};

// SQE exists for UC and UD only; the kernel leaves the RC entry empty.
constexpr Cell kSqeToRts = {true, {0, 0, 0}, {0, A::kCurState | A::kAccessFlags, kToRtsUd}};

// [current][next], states in enum order RESET INIT RTR RTS SQD SQE ERR.
constexpr Cell kTable[kNumQpStates][kNumQpStates] = {
    /* RESET */ {kBare, kResetToInit, kNo, kNo, kNo, kNo, kNo},
    /* INIT  */ {kBare, kInitToInit, kInitToRtr, kNo, kNo, kNo, kBare},
    /* RTR   */ {kBare, kNo, kNo, kRtrToRts, kNo, kNo, kBare},
    /* RTS   */ {kBare, kNo, kNo, kToRts, kRtsToSqd, kNo, kBare},
    /* SQD   */ {kBare, kNo, kNo, kToRts, kSqdToSqd, kNo, kBare},
    /* SQE   */ {kBare, kNo, kNo, kSqeToRts, kNo, kNo, kBare},
    /* ERR   */ {kBare, kNo, kNo, kNo, kNo, kNo, kBare},
};

}  // namespace

QpTransition qp_transition(QpType type, QpState cur, QpState next) {
  const int t = type_index(type);
  if (t < 0 || !valid_state(cur) || !valid_state(next)) return {};
  const Cell& c = kTable[uint8_t(cur)][uint8_t(next)];
  if (!c.allowed) return {};
  return {true, c.required[t], c.optional[t]};
}

QpTransitionCheck check_modify(QpType type, QpState cur, QpState next, uint32_t mask) {
  QpTransitionCheck r;
  if (type_index(type) < 0 || !valid_state(cur) || !valid_state(next)) {
    r.code = QpCheck::kBadArgument;
    return r;
  }
  const QpTransition tr = qp_transition(type, cur, next);
  if (!tr.allowed) {
    r.code = QpCheck::kBadTransition;
    return r;
  }
  r.missing = tr.required & ~mask;
  r.extra = mask & ~(tr.required | tr.optional | uint32_t(QpAttr::kState));
  if (r.missing != 0) {
    r.code = QpCheck::kMissingAttr;
  } else if (r.extra != 0) {
    r.code = QpCheck::kAttrNotAllowed;
  }
  return r;
}

const char* qp_state_name(QpState s) {
  switch (s) {
    case QpState::kReset:
      return "RESET";
    case QpState::kInit:
      return "INIT";
    case QpState::kRtr:
      return "RTR";
    case QpState::kRts:
      return "RTS";
    case QpState::kSqd:
      return "SQD";
    case QpState::kSqe:
      return "SQE";
    case QpState::kErr:
      return "ERR";
  }
  return "?";
}

const char* qp_type_name(QpType t) {
  switch (t) {
    case QpType::kRc:
      return "RC";
    case QpType::kUc:
      return "UC";
    case QpType::kUd:
      return "UD";
  }
  return "?";
}

const char* qp_attr_name(uint32_t bit) {
  switch (QpAttr(bit)) {
    case QpAttr::kState:
      return "STATE";
    case QpAttr::kCurState:
      return "CUR_STATE";
    case QpAttr::kEnSqdAsyncNotify:
      return "EN_SQD_ASYNC_NOTIFY";
    case QpAttr::kAccessFlags:
      return "ACCESS_FLAGS";
    case QpAttr::kPkeyIndex:
      return "PKEY_INDEX";
    case QpAttr::kPort:
      return "PORT";
    case QpAttr::kQkey:
      return "QKEY";
    case QpAttr::kAv:
      return "AV";
    case QpAttr::kPathMtu:
      return "PATH_MTU";
    case QpAttr::kTimeout:
      return "TIMEOUT";
    case QpAttr::kRetryCnt:
      return "RETRY_CNT";
    case QpAttr::kRnrRetry:
      return "RNR_RETRY";
    case QpAttr::kRqPsn:
      return "RQ_PSN";
    case QpAttr::kMaxQpRdAtomic:
      return "MAX_QP_RD_ATOMIC";
    case QpAttr::kAltPath:
      return "ALT_PATH";
    case QpAttr::kMinRnrTimer:
      return "MIN_RNR_TIMER";
    case QpAttr::kSqPsn:
      return "SQ_PSN";
    case QpAttr::kMaxDestRdAtomic:
      return "MAX_DEST_RD_ATOMIC";
    case QpAttr::kPathMigState:
      return "PATH_MIG_STATE";
    case QpAttr::kCap:
      return "CAP";
    case QpAttr::kDestQpn:
      return "DEST_QPN";
    case QpAttr::kRateLimit:
      return "RATE_LIMIT";
  }
  return "?";
}

const char* qp_check_name(QpCheck c) {
  switch (c) {
    case QpCheck::kOk:
      return "ok";
    case QpCheck::kBadArgument:
      return "invalid QP type or state";
    case QpCheck::kBadTransition:
      return "state transition not allowed";
    case QpCheck::kMissingAttr:
      return "required attribute missing";
    case QpCheck::kAttrNotAllowed:
      return "attribute not allowed in this transition";
  }
  return "?";
}

}  // namespace droce::nic
