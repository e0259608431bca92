// Constants and small helpers shared by the QP role files (qp*.cc); not part
// of the QP's interface.
#pragma once

#include <cstdint>

#include "nic/qp.h"
#include "nic/wire/aeth.h"
#include "nic/wqe.h"

namespace droce::nic {

// rxe's RXE_MAX_PKT_PER_ACK: AckReq at least every 64 packets of a long message.
inline constexpr uint32_t kMaxPktsPerAck = 64;
// Request packets one QP may send per poll before the others get a turn.
inline constexpr int kPktsPerPoll = 32;
// Unacknowledged PSNs in flight per RC QP (keeps a burst inside the peer's rx ring).
inline constexpr uint32_t kMaxInflightPsns = 512;
// The PSNs an RC requester has outstanding, from the oldest unacknowledged
// one to the end of the newest request (a READ request covers all its
// response PSNs), stay within a quarter of the 24-bit space: 24-bit serial
// arithmetic orders two PSNs only less than 2^23 apart (IBTA 9.7.1; psn.h),
// and the responder compares against the same span. A request that would
// reach past it waits for acknowledgements.
inline constexpr uint32_t kMaxPsnWindow = 1u << 22;
// A READ of more PSNs than this goes out as several READ requests, so that
// even a 2^31-byte READ at path MTU 256 (2^23 PSNs) fits the window.
inline constexpr uint32_t kMaxReadRequestPsns = kMaxPsnWindow;

constexpr bool is_atomic(WrOpcode op) {
  return op == WrOpcode::kCmpSwap || op == WrOpcode::kFetchAdd;
}
// FLUSH and ATOMIC_WRITE (IBTA A19): one request packet, answered by a
// zero-length READ RESPONSE ONLY from a responder resource, like a READ.
constexpr bool is_placement(WrOpcode op) {
  return op == WrOpcode::kFlush || op == WrOpcode::kAtomicWrite;
}
// One request packet whose PSN the responder answers with a response of its
// own (so an ACK past it means that response was lost), holding an
// initiator-depth credit while outstanding.
constexpr bool is_read_or_atomic(WrOpcode op) {
  return op == WrOpcode::kRdmaRead || is_atomic(op) || is_placement(op);
}

// An error NAK (IBTA 9.7.5.2.x codes 1..3) sent or received: counted in
// err_naks_* and under its code.
inline void count_err_nak(QpCounters* c, wire::NakCode code, bool sent) {
  ++(sent ? c->err_naks_sent : c->err_naks_received);
  switch (code) {
    case wire::NakCode::kInvalidRequest:
      ++(sent ? c->invalid_request_naks_sent : c->invalid_request_naks_received);
      break;
    case wire::NakCode::kRemoteAccessError:
      ++(sent ? c->remote_access_naks_sent : c->remote_access_naks_received);
      break;
    default:
      ++(sent ? c->remote_op_naks_sent : c->remote_op_naks_received);
      break;
  }
}

// ibv_wc_opcode of a send WQE's completion.
constexpr WcOpcode wc_opcode_for(WrOpcode op) {
  switch (op) {
    case WrOpcode::kRdmaWrite:
    case WrOpcode::kRdmaWriteImm: return WcOpcode::kRdmaWrite;
    case WrOpcode::kRdmaRead: return WcOpcode::kRdmaRead;
    case WrOpcode::kCmpSwap: return WcOpcode::kCmpSwap;
    case WrOpcode::kFetchAdd: return WcOpcode::kFetchAdd;
    case WrOpcode::kLocalInv: return WcOpcode::kLocalInv;
    case WrOpcode::kBindMw: return WcOpcode::kBindMw;
    case WrOpcode::kFlush: return WcOpcode::kFlush;
    case WrOpcode::kAtomicWrite: return WcOpcode::kAtomicWrite;
    default: return WcOpcode::kSend;
  }
}

}  // namespace droce::nic
