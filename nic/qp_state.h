// QP types, states and the modify_qp transition table: which (state -> state)
// moves are allowed per QP type and which attributes each requires or allows
// (IBTA vol. 1, 11.2.4.2 / table 91, as Linux's ib_modify_qp_is_ok encodes it).
#pragma once

#include <cstdint>

namespace droce::nic {

// Values equal enum ibv_qp_type, so verbs/ converts with a checked cast.
enum class QpType : uint8_t {
  kRc = 2,
  kUc = 3,
  kUd = 4,
};

// Values equal enum ibv_qp_state.
enum class QpState : uint8_t {
  kReset = 0,
  kInit = 1,
  kRtr = 2,
  kRts = 3,
  kSqd = 4,
  kSqe = 5,
  kErr = 6,
};
inline constexpr int kNumQpStates = 7;

// modify_qp attribute mask bits. Values are identical to enum
// ibv_qp_attr_mask (libibverbs), so an ibv attr_mask is used unchanged;
// nic/ does not include <infiniband/verbs.h> (the test checks equality).
enum class QpAttr : uint32_t {
  kState = 1u << 0,
  kCurState = 1u << 1,
  kEnSqdAsyncNotify = 1u << 2,
  kAccessFlags = 1u << 3,
  kPkeyIndex = 1u << 4,
  kPort = 1u << 5,
  kQkey = 1u << 6,
  kAv = 1u << 7,
  kPathMtu = 1u << 8,
  kTimeout = 1u << 9,
  kRetryCnt = 1u << 10,
  kRnrRetry = 1u << 11,
  kRqPsn = 1u << 12,
  kMaxQpRdAtomic = 1u << 13,
  kAltPath = 1u << 14,
  kMinRnrTimer = 1u << 15,
  kSqPsn = 1u << 16,
  kMaxDestRdAtomic = 1u << 17,
  kPathMigState = 1u << 18,
  kCap = 1u << 19,
  kDestQpn = 1u << 20,
  // Bits 21-24 are libibverbs' deprecated _IBV_QP_SMAC/ALT_SMAC/VID/ALT_VID.
  kRateLimit = 1u << 25,
};

constexpr uint32_t operator|(QpAttr a, QpAttr b) { return uint32_t(a) | uint32_t(b); }
constexpr uint32_t operator|(uint32_t mask, QpAttr a) { return mask | uint32_t(a); }
constexpr bool has_attr(uint32_t mask, QpAttr a) { return (mask & uint32_t(a)) != 0; }

// What the table says about one (type, current state, next state) cell.
struct QpTransition {
  bool allowed = false;
  uint32_t required = 0;  // attributes that must be in the mask
  uint32_t optional = 0;  // attributes that may be in the mask
};

// The cell for (type, cur, next). Out-of-range values give allowed = false.
QpTransition qp_transition(QpType type, QpState cur, QpState next);

enum class QpCheck : uint8_t {
  kOk = 0,
  kBadArgument,     // type or state is not a valid enum value
  kBadTransition,   // cur -> next is not allowed for this QP type
  kMissingAttr,     // a required attribute is absent (missing lists them)
  kAttrNotAllowed,  // an attribute outside required + optional (extra lists them)
};

struct QpTransitionCheck {
  QpCheck code = QpCheck::kOk;
  uint32_t missing = 0;  // required bits absent from the mask
  uint32_t extra = 0;    // bits present that the transition does not accept
  // The lowest offending bit (missing first, then extra), 0 when none.
  uint32_t first_bad_attr() const {
    const uint32_t m = missing ? missing : extra;
    return m & (~m + 1);
  }
  bool ok() const { return code == QpCheck::kOk; }
};

// Checks a modify_qp request against the table, with the kernel's rules:
// - `next` is the requested state; a mask without kState means "change
//   attributes, stay in cur" and the caller passes next == cur (as the
//   kernel does), so e.g. an RTS -> RTS attribute change is checked.
// - kState itself is accepted in every allowed cell and never required.
// - kCurState is accepted exactly where the table lists it as optional
//   (X -> RTS from RTR, RTS, SQD and for UC/UD from SQE); elsewhere it is an
//   attribute that is not allowed. This is equivalent to the kernel's extra
//   rule "CUR_STATE only from RTR/RTS/SQD/SQE". Its value (the caller's idea
//   of the current state) is compared by the caller with check_cur_state().
// - When both required bits are missing and extra bits are present, the
//   code is kMissingAttr and both masks are filled in.
// - SQE -> RTS for RC is allowed with no attributes, as in the kernel table
//   (which lists no attributes for RC there); an RC QP never enters SQE, so
//   the cell is unreachable in droce.
// Pure: no side effects, so a failed check leaves the QP untouched.
QpTransitionCheck check_modify(QpType type, QpState cur, QpState next, uint32_t mask);

// When the mask carries kCurState, libibverbs programs assert the QP is in
// `claimed`; droce refuses the modify (EINVAL) if it is not the real state.
constexpr bool check_cur_state(uint32_t mask, QpState actual, QpState claimed) {
  return !has_attr(mask, QpAttr::kCurState) || actual == claimed;
}

const char* qp_state_name(QpState s);
const char* qp_type_name(QpType t);
// The name of one attribute bit ("kAv" -> "AV"), or "?" for unknown bits.
const char* qp_attr_name(uint32_t bit);
const char* qp_check_name(QpCheck c);

}  // namespace droce::nic
