// Completer (IBTA vol. 1, 9.7.5.x requester side, 9.9; rxe_comp.c): ACKs,
// NAKs and RNR NAKs, READ responses and atomic acknowledgements turn send
// WQEs into completions in order; the retransmit and RNR timers drive
// go-back-N retries until retry_cnt / rnr_retry run out.
#include <cstring>

#include "nic/base/log.h"
#include "nic/base/psn.h"
#include "nic/base/rnr.h"
#include "nic/device.h"
#include "nic/qp.h"
#include "nic/qp_internal.h"

namespace droce::nic {

namespace op = wire::op;
using wire::AethType;
using wire::NakCode;

void Qp::arm_retransmit(Nanos now) {
  const Nanos t = ack_timeout_ns(attrs_.timeout);
  retransmit_at_ = t == kNeverNs ? 0 : now + t;
}

// Everything up to and including psn is acknowledged: SEND / WRITE WQEs whose
// last PSN is covered complete. A READ or atomic that is covered but has no
// response yet means its responses were lost (implicit NAK, C9-?): retry.
void Qp::ack_up_to(uint32_t psn, Nanos now) {
  bool progress = false;
  uint32_t i = sq_comp_;
  for (; i != sq_send_ || (i == sq_send_ && meta_at(i).started && send_off_ > 0); ++i) {
    if (i == sq_->published()) break;
    SendMeta& m = meta_at(i);
    if (!m.started || m.done) continue;
    if (psn_after(m.last_psn, psn)) break;
    if (is_read_or_atomic(wqe_at(i).opcode)) {
      // Implicit NAK: a later PSN was acknowledged, the response is missing.
      if (!need_retry_) {
        need_retry_ = true;
        retry_psn_ = m.first_psn;
      }
      break;
    }
    m.done = true;
    progress = true;
  }
  if (psn_after(psn_add(psn, 1), comp_psn_)) {
    comp_psn_ = psn_add(psn, 1);
    progress = true;
  }
  if (progress) {
    retry_left_ = attrs_.retry_cnt;
    rnr_left_ = attrs_.rnr_retry;
    retry_started_ = false;
  }
  retire_sends();
  // Timer: off when nothing is outstanding, else restarted on progress.
  if (sq_comp_ == sq_send_ && send_off_ == 0) {
    retransmit_at_ = 0;
  } else if (progress) {
    arm_retransmit(now);
  }
}

// Completes the WQE holding psn with an error status (a NAK) and fails the QP.
void Qp::complete_error_at(uint32_t psn, WcStatus status) {
  for (uint32_t i = sq_comp_; i != sq_->published(); ++i) {
    SendMeta& m = meta_at(i);
    if (!m.started) break;
    if (m.done) continue;
    if (psn_le(psn, m.last_psn)) {
      complete_send_now(i, status);
      break;
    }
  }
  enter_error();
}

void Qp::handle_response(const RxPacket& pkt) {
  const wire::PacketView& v = *pkt.v;
  const QpState st = state();
  if (type_ != QpType::kRc || (st != QpState::kRts && st != QpState::kSqd && st != QpState::kSqe)) {
    ++counters_.drops;
    return;
  }
  ++counters_.rx_packets;
  counters_.rx_bytes += v.payload_len;
  const wire::OpcodeInfo& info = *v.op;
  const uint32_t psn = v.bth().psn();

  if (info.has(wire::kOpAeth)) {
    const wire::Aeth& aeth = v.aeth();
    switch (aeth.type()) {
      case AethType::kAck:
        break;  // handled below with the opcode
      case AethType::kRnrNak: {
        ++counters_.rnr_naks_received;
        if (psn_before(psn, comp_psn_)) return;  // stale
        ack_up_to(psn_sub(psn, 1), pkt.now);
        if (!retry_is_infinite(attrs_.rnr_retry)) {
          if (rnr_left_ == 0) {
            DROCE_DEBUG("qp %u: RNR retries exhausted at PSN 0x%x (peer has no receive WQE)",
                        qpn_, psn);
            complete_error_at(psn, WcStatus::kRnrRetryExcErr);
            return;
          }
          --rnr_left_;
        }
        rnr_until_ = pkt.now + rnr_timer_ns(aeth.value());
        retransmit_at_ = 0;
        restart_from(psn);
        // Packets behind the RNR-NAKed one draw a sequence NAK for the same PSN.
        retry_started_ = true;
        return;
      }
      case AethType::kNak: {
        if (psn_before(psn, comp_psn_)) return;
        const bool implied_ack = psn_after(psn, comp_psn_);
        ack_up_to(psn_sub(psn, 1), pkt.now);
        const NakCode code = NakCode(aeth.value());
        if (code == NakCode::kPsnSeqError) {
          ++counters_.seq_naks_received;
          if (!implied_ack && (retry_started_ || rnr_until_ != 0)) {
            // We already went back to this PSN (RNR wait, or a retry with no
            // progress since): the NAK answers a packet of the earlier round.
            // Going back again would only burn a retry; a real loss of the
            // resent packet is caught by the retransmit timer (rxe: started_retry).
            ++counters_.stale_naks;
            return;
          }
          retry(pkt.now, false, psn);
          retry_started_ = true;
          return;
        }
        ++counters_.err_naks_received;
        const WcStatus s = code == NakCode::kInvalidRequest    ? WcStatus::kRemInvReqErr
                           : code == NakCode::kRemoteAccessError ? WcStatus::kRemAccessErr
                                                                 : WcStatus::kRemOpErr;
        DROCE_DEBUG("qp %u: peer NAK %u at PSN 0x%x: %s", qpn_, unsigned(code), psn,
                    s == WcStatus::kRemAccessErr ? "remote access error (bad rkey, range or rights)"
                    : s == WcStatus::kRemInvReqErr ? "invalid request"
                                                   : "remote operational error");
        complete_error_at(psn, s);
        return;
      }
      case AethType::kReserved:
        ++counters_.drops;
        return;
    }
  }

  if (v.bth().opcode == op::kAck) {
    if (psn_before(psn, psn_sub(comp_psn_, 1))) return;  // old ACK
    ack_up_to(psn, pkt.now);
    return;
  }

  // READ response or atomic acknowledge: must be the next expected PSN.
  if (psn_before(psn, comp_psn_)) return;  // duplicate response
  // Everything before the response is implicitly acknowledged.
  uint32_t i = sq_comp_;
  while (i != sq_send_) {
    SendMeta& m = meta_at(i);
    if (!m.done && psn_le(psn, m.last_psn) && psn_ge(psn, m.first_psn)) break;
    ++i;
  }
  if (i == sq_send_) {
    ++counters_.drops;  // response to nothing we asked
    return;
  }
  SendMeta& m = meta_at(i);
  SendWqe& w = wqe_at(i);
  const bool want_read = w.opcode == WrOpcode::kRdmaRead;
  if (want_read != info.has(wire::kOpReadResp) || (!want_read && !is_atomic(w.opcode))) {
    ++counters_.drops;
    return;
  }
  if (psn != comp_psn_) {
    // A gap inside or before this response: lost packets (implicit NAK).
    if (psn_after(psn, comp_psn_) && !need_retry_ && !psn_ge(comp_psn_, m.first_psn)) {
      // earlier WQEs' ACKs are implied by this response
    }
    const uint32_t prev = psn_sub(m.first_psn, 1);
    if (psn_after(psn, m.first_psn) || psn_after(comp_psn_, m.first_psn)) {
      ack_up_to(prev, pkt.now);
      if (!need_retry_) {
        need_retry_ = true;
        retry_psn_ = comp_psn_;
      }
      return;
    }
  }
  ack_up_to(psn_sub(m.first_psn, 1), pkt.now);

  if (want_read) {
    const uint32_t mtu = attrs_.path_mtu;
    const uint32_t off = uint32_t(psn_diff(psn, m.first_psn)) * mtu;
    const bool last = info.has(wire::kOpEnd);
    const uint32_t expect = std::min(mtu, w.length - std::min(off, w.length));
    if (off >= w.length + (w.length == 0 ? 1 : 0) || (last ? v.payload_len != expect : v.payload_len != mtu)) {
      complete_error_at(psn, WcStatus::kBadRespErr);
      return;
    }
    // Scatter into the WQE's SGEs (local write access needed).
    uint32_t skip = off, left = v.payload_len;
    const uint8_t* src = v.payload();
    const Sge* sge = w.sges();
    uint32_t k = 0;
    while (k < w.num_sge && skip >= sge[k].length) skip -= sge[k++].length;
    while (left > 0 && k < w.num_sge) {
      const uint32_t n = std::min(left, sge[k].length - skip);
      uint8_t* host;
      if (dev_->mrs().check(sge[k].lkey, pd_, sge[k].addr + skip, n, kAccessLocalWrite, &host) !=
          MrCheck::kOk) {
        complete_error_at(psn, WcStatus::kLocProtErr);
        return;
      }
      std::memcpy(host, src, n);
      src += n;
      left -= n;
      skip = 0;
      ++k;
    }
    comp_psn_ = psn_add(psn, 1);
    retry_left_ = attrs_.retry_cnt;
    retry_started_ = false;
    if (last) {
      m.done = true;
      if (rd_atomic_inflight_ > 0) --rd_atomic_inflight_;
    }
  } else {
    if (v.bth().opcode != op::kAtomicAck) {
      ++counters_.drops;
      return;
    }
    const uint64_t orig = v.atomic_ack().orig.get();
    if (w.num_sge > 0 && w.sges()[0].length > 0) {
      uint8_t* host;
      if (dev_->mrs().check(w.sges()[0].lkey, pd_, w.sges()[0].addr, 8, kAccessLocalWrite,
                            &host) != MrCheck::kOk) {
        complete_error_at(psn, WcStatus::kLocProtErr);
        return;
      }
      std::memcpy(host, &orig, 8);
    }
    comp_psn_ = psn_add(psn, 1);
    retry_left_ = attrs_.retry_cnt;
    retry_started_ = false;
    m.done = true;
    if (rd_atomic_inflight_ > 0) --rd_atomic_inflight_;
  }
  retire_sends();
  if (sq_comp_ == sq_send_ && send_off_ == 0) {
    retransmit_at_ = 0;
  } else {
    arm_retransmit(pkt.now);
  }
}

// One retry of everything from `from` (go-back-N). A timeout or a PSN
// sequence NAK costs one of retry_cnt; 7 means seven retries (the spec), not
// infinity (rxe's reading).
void Qp::retry(Nanos now, bool timeout, uint32_t from) {
  if (timeout) ++counters_.timeouts;
  if (retry_left_ == 0) {
    DROCE_DEBUG("qp %u: transport retries exhausted at PSN 0x%x (peer not answering)", qpn_,
                comp_psn_);
    complete_error_at(comp_psn_, WcStatus::kRetryExcErr);
    return;
  }
  --retry_left_;
  restart_from(from);
  arm_retransmit(now);
}

void Qp::run_timers(Nanos now) {
  if (type_ != QpType::kRc || state() == QpState::kErr) return;
  if (need_retry_) {
    need_retry_ = false;
    retry(now, false, retry_psn_);
    retry_started_ = true;
    return;
  }
  if (retransmit_at_ != 0 && now >= retransmit_at_) {
    if (sq_comp_ == sq_send_ && send_off_ == 0) {
      retransmit_at_ = 0;
      return;
    }
    retry(now, true, comp_psn_);
  }
}

}  // namespace droce::nic
