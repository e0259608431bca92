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

// Everything up to and including psn is acknowledged (an ACK, or implied by a
// NAK or by a later response, responses being in PSN order): SEND / WRITE WQEs
// whose last PSN is covered complete. A READ or atomic reached by psn without
// all its responses means they were lost (implicit NAK, IBTA 9.7.5.1.x; rxe
// check_psn): nothing from its first missing response on is acknowledged, and
// the requester goes back there.
void Qp::ack_up_to(uint32_t psn, Nanos now) {
  // Nothing beyond what was sent can be acknowledged.
  if (!psn_before(psn, psn_max_sent_)) psn = psn_sub(psn_max_sent_, 1);
  uint32_t acked_end = psn_add(psn, 1);  // becomes comp_psn_
  bool progress = false;
  const uint32_t end = sq_->published();
  for (uint32_t i = sq_comp_; i != end; ++i) {
    SendMeta& m = meta_at(i);
    if (!m.started) break;
    if (m.done) continue;
    if (is_read_or_atomic(wqe_at(i).opcode)) {
      if (psn_before(psn, m.first_psn)) break;
      const uint32_t missing = psn_ge(comp_psn_, m.first_psn) ? comp_psn_ : m.first_psn;
      acked_end = missing;
      if (!need_retry_ && !retry_started_) {
        need_retry_ = true;
        retry_psn_ = missing;
      }
      break;
    }
    if (psn_after(m.last_psn, psn)) break;
    m.done = true;
    progress = true;
  }
  if (psn_after(acked_end, comp_psn_)) {
    comp_psn_ = acked_end;
    progress = true;
  }
  if (progress) note_progress(now);
}

// comp_psn_ moved or a WQE completed: retry budgets refill, a go-back-N that
// lags behind the acknowledgements skips forward, done WQEs retire, and the
// retransmit timer restarts (or stops when nothing sent is unacknowledged).
void Qp::note_progress(Nanos now) {
  retry_left_ = attrs_.retry_cnt;
  rnr_left_ = attrs_.rnr_retry;
  retry_started_ = false;
  // After a go-back-N the send cursor can be behind what the peer has now
  // acknowledged (an ACK or response of the earlier round): skip that part.
  if (psn_before(psn_, comp_psn_)) restart_from(comp_psn_);
  retire_sends();
  if (psn_before(comp_psn_, psn_max_sent_)) {
    arm_retransmit(now);
  } else {
    retransmit_at_ = 0;
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

// ---- the response chain (rxe_comp.c): check_psn -> check_ack ->
// complete_ack for an ACK; for READ responses and atomic acknowledgements
// check_response -> do_read / do_atomic / do_placement -> finish_response.

void Qp::handle_response(const RxPacket& pkt) {
  const wire::PacketView& v = *pkt.v;
  ++counters_.rx_packets;
  counters_.rx_bytes += v.payload_len;
  if (!check_response_psn(pkt)) return;
  if (v.op->has(wire::kOpAeth) && !check_ack(pkt)) return;
  if (v.bth().opcode == op::kAck) {
    complete_ack(pkt);
    return;
  }
  uint32_t index;
  if (!check_response(pkt, &index)) return;
  const WrOpcode wop = wqe_at(index).opcode;
  const bool done = is_placement(wop)            ? do_placement(pkt, index)
                    : wop == WrOpcode::kRdmaRead ? do_read(pkt, index)
                                                 : do_atomic(pkt, index);
  if (done) finish_response(pkt, index);
}

// rxe check_psn: a response answers a request this QP sent, so nothing past
// the highest PSN sent (a ghost) may acknowledge anything. A PSN sequence
// error NAK names the PSN its responder expects next, which may be the next
// one to send.
bool Qp::check_response_psn(const RxPacket& pkt) {
  const wire::PacketView& v = *pkt.v;
  const uint32_t psn = v.bth().psn();
  const bool seq_nak = v.op->has(wire::kOpAeth) && v.aeth().type() == AethType::kNak &&
                       NakCode(v.aeth().value()) == NakCode::kPsnSeqError;
  if (seq_nak ? psn_after(psn, psn_max_sent_) : !psn_before(psn, psn_max_sent_)) {
    ++counters_.ghost_responses;
    return false;
  }
  return true;
}

// rxe check_ack: the AETH's type. An ACK (or a READ response / atomic ACK,
// which carry one) goes on; NAKs and RNR NAKs are handled here.
bool Qp::check_ack(const RxPacket& pkt) {
  switch (pkt.v->aeth().type()) {
    case AethType::kAck:
      return true;
    case AethType::kRnrNak:
      on_rnr_nak(pkt);
      return false;
    case AethType::kNak:
      on_nak(pkt);
      return false;
    case AethType::kReserved:
      count_drop(&QpCounters::drop_bad_aeth);
      return false;
  }
  return false;
}

// IBTA 9.7.5.2.8: the responder had no receive WQE for the request at this
// PSN. Everything before it is acknowledged; it and what follows go again
// after the RNR timer, rnr_retry times (7: without end).
void Qp::on_rnr_nak(const RxPacket& pkt) {
  const uint32_t psn = pkt.v->bth().psn();
  ++counters_.rnr_naks_received;
  if (psn_before(psn, comp_psn_)) {
    ++counters_.duplicate_responses;  // for a PSN already acknowledged
    return;
  }
  if (rnr_until_ != 0 && psn == comp_psn_) {
    ++counters_.stale_naks;  // a copy of the RNR NAK we are already waiting on
    return;
  }
  ack_up_to(psn_sub(psn, 1), pkt.now);
  if (!retry_is_infinite(attrs_.rnr_retry)) {
    if (rnr_left_ == 0) {
      DROCE_DEBUG("qp %u: RNR retries exhausted at PSN 0x%x (peer has no receive WQE)", qpn_, psn);
      complete_error_at(psn, WcStatus::kRnrRetryExcErr);
      return;
    }
    --rnr_left_;
  }
  rnr_until_ = pkt.now + rnr_timer_ns(pkt.v->aeth().value());
  retransmit_at_ = 0;
  restart_from(psn);
  // Packets behind the RNR-NAKed one draw a sequence NAK for the same PSN.
  retry_started_ = true;
}

// IBTA 9.7.5.2.x: a NAK acknowledges everything before its PSN. A PSN
// sequence error asks for a go-back-N from it; the others fail the WQE that
// holds the PSN and the QP. Codes 1..3 are the RC errors; 4 (invalid RD
// request) belongs to RD and 5..31 are reserved: a remote operational
// error, as rxe's check_ack has it, counted apart.
void Qp::on_nak(const RxPacket& pkt) {
  const uint32_t psn = pkt.v->bth().psn();
  if (psn_before(psn, comp_psn_)) {
    ++counters_.duplicate_responses;
    return;
  }
  const uint32_t comp_before = comp_psn_;
  ack_up_to(psn_sub(psn, 1), pkt.now);
  const bool implied_ack = comp_psn_ != comp_before;
  const NakCode code = NakCode(pkt.v->aeth().value());
  if (code == NakCode::kPsnSeqError) {
    ++counters_.seq_naks_received;
    if (!implied_ack && (retry_started_ || rnr_until_ != 0)) {
      // We already went back to this PSN (RNR wait, or a retry with no
      // progress since): the NAK answers a packet of the earlier round.
      // Going back again would only burn a retry; a real loss of the resent
      // packet is caught by the retransmit timer (rxe: started_retry).
      ++counters_.stale_naks;
      return;
    }
    retry(pkt.now, false, psn);
    retry_started_ = true;
    return;
  }
  const bool known = code == NakCode::kInvalidRequest || code == NakCode::kRemoteAccessError ||
                     code == NakCode::kRemoteOpError;
  if (known) {
    count_err_nak(&counters_, code, /*sent=*/false);
  } else {
    ++counters_.unknown_naks_received;
  }
  const WcStatus s = code == NakCode::kInvalidRequest      ? WcStatus::kRemInvReqErr
                     : code == NakCode::kRemoteAccessError ? WcStatus::kRemAccessErr
                                                           : WcStatus::kRemOpErr;
  DROCE_DEBUG("qp %u: peer NAK %u at PSN 0x%x: %s", qpn_, unsigned(code), psn,
              s == WcStatus::kRemAccessErr   ? "remote access error (bad rkey, range or rights)"
              : s == WcStatus::kRemInvReqErr ? "invalid request"
                                             : "remote operational error");
  complete_error_at(psn, s);
}

// rxe complete_ack: an ACK acknowledges everything up to its PSN (older ones
// are duplicates of an earlier round).
void Qp::complete_ack(const RxPacket& pkt) {
  const uint32_t psn = pkt.v->bth().psn();
  if (psn_before(psn, psn_sub(comp_psn_, 1))) {
    ++counters_.duplicate_responses;  // an old ACK
    return;
  }
  ack_up_to(psn, pkt.now);
}

// A READ response or atomic ACK: the WQE it answers (WQEs after a go-back-N
// point keep their PSNs), of the kind that WQE asked for, next in PSN order.
// Responses come in PSN order (IBTA 9.7.5.1.3), so this one implies every
// request before its WQE was carried out; one past a missing response is an
// implicit NAK (rxe check_psn): go back to the first missing PSN, once per round.
bool Qp::check_response(const RxPacket& pkt, uint32_t* index) {
  const wire::PacketView& v = *pkt.v;
  const uint32_t psn = v.bth().psn();
  if (psn_before(psn, comp_psn_)) {
    ++counters_.duplicate_responses;  // an earlier round's response, already used
    return false;
  }
  const uint32_t end = sq_->published();
  uint32_t i = sq_comp_;
  for (; i != end && meta_at(i).started; ++i) {
    const SendMeta& m = meta_at(i);
    if (!m.done && psn_ge(psn, m.first_psn) && psn_le(psn, m.last_psn)) break;
  }
  if (i == end || !meta_at(i).started) {
    ++counters_.unexpected_responses;  // no READ / atomic outstanding at that PSN
    return false;
  }
  // FLUSH / ATOMIC_WRITE (IBTA A19) are answered by a READ RESPONSE ONLY.
  const WrOpcode wop = wqe_at(i).opcode;
  const bool want_read_resp = wop == WrOpcode::kRdmaRead || is_placement(wop);
  if (want_read_resp ? !v.op->has(wire::kOpReadResp) : v.bth().opcode != op::kAtomicAck) {
    ++counters_.unexpected_responses;  // a READ response to an atomic, or the other way
    return false;
  }
  const SendMeta& m = meta_at(i);
  if (psn_before(comp_psn_, m.first_psn)) ack_up_to(psn_sub(m.first_psn, 1), pkt.now);
  if (psn != comp_psn_) {
    ++counters_.response_gaps;
    if (!need_retry_ && !retry_started_) {
      need_retry_ = true;
      retry_psn_ = comp_psn_;
    }
    return false;
  }
  *index = i;
  return true;
}

// FLUSH / ATOMIC_WRITE: one zero-length READ RESPONSE ONLY (A19.4).
bool Qp::do_placement(const RxPacket& pkt, uint32_t index) {
  const wire::PacketView& v = *pkt.v;
  if (v.bth().opcode != op::kReadRespOnly || v.payload_len != 0) {
    DROCE_DEBUG("qp %u: %s answered by %s with %u bytes (a zero-length READ RESPONSE ONLY expected)",
                qpn_, wqe_at(index).opcode == WrOpcode::kFlush ? "FLUSH" : "ATOMIC_WRITE",
                v.op->name, v.payload_len);
    complete_error_at(v.bth().psn(), WcStatus::kBadRespErr);
    return false;
  }
  meta_at(index).done = true;
  return true;
}

// rxe do_read: a READ goes out as requests of read_request_psns_ PSNs (the
// requester splits it), each answered by a response stream that ends on its
// last PSN. The WQE's last response carries the rest of the message, every
// other one a full MTU (a BAD_RESP_ERR otherwise, as rxe's do_read). The data
// goes into the WQE's SGEs (local write access).
bool Qp::do_read(const RxPacket& pkt, uint32_t index) {
  const wire::PacketView& v = *pkt.v;
  const uint32_t psn = v.bth().psn();
  SendMeta& m = meta_at(index);
  const SendWqe& w = wqe_at(index);
  const uint32_t mtu = attrs_.path_mtu;
  const uint32_t rel = uint32_t(psn_diff(psn, m.first_psn));
  const uint32_t off = rel * mtu;
  const bool wqe_end = psn == m.last_psn;
  const bool request_end = wqe_end || (rel + 1) % read_request_psns_ == 0;
  const uint32_t expect = wqe_end ? w.length - off : mtu;
  if (v.op->has(wire::kOpEnd) != request_end || v.payload_len != expect) {
    DROCE_DEBUG("qp %u: READ response PSN 0x%x: %u bytes, %u expected", qpn_, psn, v.payload_len,
                expect);
    complete_error_at(psn, WcStatus::kBadRespErr);
    return false;
  }
  if (!copy_sges(w.sges(), w.num_sge, off, v.payload(), v.payload_len, /*scatter=*/true)) {
    complete_error_at(psn, WcStatus::kLocProtErr);
    return false;
  }
  // The request's initiator-depth credit, if this round requested it (after
  // a go-back-N, parts not yet asked again hold none).
  const bool requested = m.requested || (index == sq_send_ && off < send_off_);
  if (request_end && requested && rd_atomic_inflight_ > 0) --rd_atomic_inflight_;
  if (wqe_end) m.done = true;
  return true;
}

// rxe do_atomic: the original value goes to the WQE's one 8-byte SGE.
bool Qp::do_atomic(const RxPacket& pkt, uint32_t index) {
  const uint64_t orig = pkt.v->atomic_ack().orig.get();
  const SendWqe& w = wqe_at(index);
  if (w.num_sge > 0 && w.sges()[0].length > 0) {
    uint8_t* host;
    if (dev_->mrs().check(w.sges()[0].lkey, pd_, w.sges()[0].addr, 8, kAccessLocalWrite, &host) !=
        MrCheck::kOk) {
      complete_error_at(pkt.v->bth().psn(), WcStatus::kLocProtErr);
      return false;
    }
    std::memcpy(host, &orig, 8);
  }
  meta_at(index).done = true;
  return true;
}

// The response is used: its PSN is acknowledged, an atomic or placement
// WQE gives back its initiator-depth credit (a READ did, per request, in
// do_read), and the WQEs done retire in order.
void Qp::finish_response(const RxPacket& pkt, uint32_t index) {
  const SendMeta& m = meta_at(index);
  if (wqe_at(index).opcode != WrOpcode::kRdmaRead && m.done && m.requested &&
      rd_atomic_inflight_ > 0) {
    --rd_atomic_inflight_;
  }
  comp_psn_ = psn_add(pkt.v->bth().psn(), 1);
  note_progress(pkt.now);
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
    if (!psn_before(comp_psn_, psn_max_sent_)) {
      retransmit_at_ = 0;  // everything sent is acknowledged
      return;
    }
    retry(now, true, comp_psn_);
  }
}

}  // namespace droce::nic
