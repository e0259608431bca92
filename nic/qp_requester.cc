// Requester (IBTA vol. 1, 9.7.1-9.7.4; rxe_req.c): turns send WQEs into
// request packets: opcode per segment, PSN assignment, AckReq, fences and the
// RDMA READ / atomic initiator depth, and the restart point for go-back-N.
#include <rte_mbuf.h>

#include <algorithm>
#include <cstring>

#include "nic/base/log.h"
#include "nic/base/psn.h"
#include "nic/base/rnr.h"
#include "nic/device.h"
#include "nic/qp.h"
#include "nic/qp_internal.h"
#include "nic/wire/builder.h"

namespace droce::nic {

namespace op = wire::op;

namespace {

// The wire opcode of the packet at byte offset `off` of a message of `len` bytes.
uint8_t request_opcode(QpType type, const SendWqe& w, uint32_t off, uint32_t mtu) {
  const uint8_t base = type == QpType::kUc ? op::kUc : type == QpType::kUd ? op::kUd : op::kRc;
  const bool first = off == 0;
  const bool last = w.length - off <= mtu;
  switch (w.opcode) {
    case WrOpcode::kSend:
    case WrOpcode::kSendImm:
    case WrOpcode::kSendInv: {
      const bool imm = w.opcode == WrOpcode::kSendImm;
      const bool inv = w.opcode == WrOpcode::kSendInv;
      if (type == QpType::kUd) return base | (imm ? op::kSendOnlyImm : op::kSendOnly);
      if (first && last)
        return base | (imm ? op::kSendOnlyImm : inv ? op::kSendOnlyInv : op::kSendOnly);
      if (first) return base | op::kSendFirst;
      if (!last) return base | op::kSendMiddle;
      return base | (imm ? op::kSendLastImm : inv ? op::kSendLastInv : op::kSendLast);
    }
    case WrOpcode::kRdmaWrite:
    case WrOpcode::kRdmaWriteImm: {
      const bool imm = w.opcode == WrOpcode::kRdmaWriteImm;
      if (first && last) return base | (imm ? op::kWriteOnlyImm : op::kWriteOnly);
      if (first) return base | op::kWriteFirst;
      if (!last) return base | op::kWriteMiddle;
      return base | (imm ? op::kWriteLastImm : op::kWriteLast);
    }
    case WrOpcode::kRdmaRead:
      return op::kReadRequest;
    case WrOpcode::kCmpSwap:
      return op::kCmpSwap;
    case WrOpcode::kFetchAdd:
      return op::kFetchAdd;
    case WrOpcode::kFlush:
      return op::kFlush;
    case WrOpcode::kAtomicWrite:
      return op::kAtomicWrite;
    default:
      return 0xFF;
  }
}

}  // namespace

bool Qp::start_wqe(uint32_t index, Nanos now) {
  SendWqe& w = wqe_at(index);
  SendMeta& m = meta_at(index);
  (void)now;
  // Fence (IBTA 10.8.3.3): wait until every earlier READ / atomic completed.
  if ((w.flags & kSendFence) && rd_atomic_inflight_ > 0) return false;
  if (w.opcode == WrOpcode::kLocalInv) {
    // Executed locally, no packet. Only memory windows and fast-register MRs
    // can be invalidated, and droce has neither: an ibv_reg_mr key or an
    // unknown key completes with LOC_QP_OP_ERR, as rxe_do_local_ops does.
    complete_send_now(index, WcStatus::kLocQpOpErr);
    return false;
  }
  // Local SGEs: every lkey, PD and range checked before one byte is read.
  if (!(w.flags & kSendInline)) {
    for (uint32_t i = 0; i < w.num_sge; ++i) {
      const Sge& s = w.sges()[i];
      uint8_t* host;
      const uint32_t need = is_read_or_atomic(w.opcode) ? uint32_t(kAccessLocalWrite) : 0u;
      if (dev_->mrs().check(s.lkey, pd_, s.addr, s.length, need, &host) != MrCheck::kOk) {
        DROCE_DEBUG("qp %u: send WQE %lu: local key 0x%x does not cover [0x%lx, +%u)", qpn_,
                    (unsigned long)w.wr_id, s.lkey, (unsigned long)s.addr, s.length);
        complete_send_now(index, WcStatus::kLocProtErr);
        return false;
      }
    }
  }
  m.first_psn = psn_;
  m.npkts = is_atomic(w.opcode) || is_placement(w.opcode) ? 1 : psns_for(w.length);
  m.last_psn = psn_add(psn_, m.npkts - 1);
  m.started = true;
  m.done = false;
  m.requested = false;
  m.status = WcStatus::kSuccess;
  send_off_ = 0;
  return true;
}

// Copies `len` bytes at message offset `off` of a WQE's SGE list into dst.
// Re-checks each key (an MR may have been deregistered since the WQE started).
bool Qp::gather(const SendWqe& w, uint32_t off, uint8_t* dst, uint32_t len) {
  if (w.flags & kSendInline) {
    std::memcpy(dst, w.inline_data() + off, len);
    return true;
  }
  return copy_sges(w.sges(), w.num_sge, off, dst, len, /*scatter=*/false);
}

// RC only: its WQE completes when the ACK comes, so the pages stay the
// application's unchanged until the peer has the bytes (the verbs contract);
// a retransmission attaches them again. UC and UD complete a WQE as soon as
// its last packet is handed to the PMD, and net_ring hands a frame to its
// peer port by pointer, which reads it later: they copy.
const MrEntry* Qp::zero_copy_source(const SendWqe& w, uint32_t off, uint32_t len,
                                    uint8_t** host) {
  if (type_ != QpType::kRc || (w.flags & kSendInline) || w.opcode == WrOpcode::kAtomicWrite ||
      !dev_->zero_copy(len)) {
    return nullptr;
  }
  const Sge* sge = w.sges();
  uint32_t i = 0;
  while (i < w.num_sge && off >= sge[i].length) off -= sge[i++].length;
  if (i == w.num_sge || len > sge[i].length - off) return nullptr;  // spans SGEs: copied
  if (dev_->mrs().check(sge[i].lkey, pd_, sge[i].addr + off, len, 0, host) != MrCheck::kOk) {
    return nullptr;  // gather fails it with LOC_PROT_ERR
  }
  return dev_->mrs().find(sge[i].lkey);
}

// One request packet of the SQ, as rxe_requester does it: pick the WQE and
// check the windows (next_request), find where it goes (resolve_request),
// fill the headers (init_request), copy the payload and send
// (transmit_request), then move the WQE and PSN on (advance_request).
// False: nothing more to send this poll.
bool Qp::send_one_packet(Nanos now) {
  uint32_t npsns = 1;
  if (!next_request(now, &npsns)) return false;
  SendWqe& w = wqe_at(sq_send_);
  RequestDest d;
  const RequestStep r = resolve_request(w, now, &d);
  if (r != RequestStep::kGo) return r == RequestStep::kNext;
  bool last = false;
  wire::PacketSpec s = init_request(w, d, npsns, &last);
  if (d.unresolved) {
    ++counters_.tx_unresolved;  // RC: "sent" into the void; the retransmit timer runs
  } else if (!transmit_request(w, s, d)) {
    return false;
  }
  advance_request(s, npsns, last, now);
  return true;
}

// rxe req_next_wqe and check_init_depth: the WQE at sq_send_ may send its
// next packet when the SQ has one, the QP's PSN windows have room, its fence
// and the initiator depth (IBTA 9.7.5.1.3, max_rd_atomic) allow it. *npsns:
// the PSNs the packet occupies.
bool Qp::next_request(Nanos now, uint32_t* npsns) {
  if (sq_send_ == sq_->published()) return false;
  // psn_ never runs more than kMaxPsnWindow ahead of comp_psn_ (below), so
  // the unsigned 24-bit distance is the true one.
  const uint32_t outstanding = (psn_ - comp_psn_) & kPsnMask;
  if (type_ == QpType::kRc && outstanding >= kMaxInflightPsns) return false;
  const SendWqe& w = wqe_at(sq_send_);
  const SendMeta& m = meta_at(sq_send_);
  if (!m.started) {
    // SQD (IBTA 10.3.1): no new WQE starts; those in progress finish.
    if (state() == QpState::kSqd) return false;
    // False: waiting for a fence, or completed locally (in error, QP in ERR).
    if (!start_wqe(sq_send_, now)) return false;
  }
  const bool rd_atomic = is_read_or_atomic(w.opcode);
  if (rd_atomic && !m.requested && rd_atomic_inflight_ >= attrs_.max_rd_atomic) return false;
  // PSNs this request occupies: a READ request all the responses of its part
  // of the message (at most read_request_psns_, ending on a multiple of it
  // from the WQE's first PSN, so a restart inside a part asks for its rest).
  *npsns = 1;
  if (w.opcode == WrOpcode::kRdmaRead) {
    const uint32_t done_psns = send_off_ / attrs_.path_mtu;
    *npsns = std::min(m.npkts - done_psns, read_request_psns_ - done_psns % read_request_psns_);
  }
  return !(type_ == QpType::kRc && outstanding + *npsns > kMaxPsnWindow);
}

// The address part of rxe's init_req_packet: the destination MAC, IPv4
// address, QPN and Q_Key of the next packet of w. kWait: ARP pending, or a
// UC WQE failed; kNext: a UD WQE failed, the next one may go.
Qp::RequestStep Qp::resolve_request(const SendWqe& w, Nanos now, RequestDest* d) {
  d->qpn = attrs_.dest_qpn;
  if (type_ == QpType::kUd) {
    const ResolveResult r = resolve_ah(w.ah, now, &d->mac, &d->ip);
    if (r == ResolveResult::kPending) return RequestStep::kWait;
    if (r == ResolveResult::kNoAh) {
      // The AH was destroyed after the post (an application error, IBTA
      // 11.2.2: an AH in use must not be destroyed): the WQE fails as rxe's
      // does when its AH is gone (LOC_QP_OP_ERR); UD has no connection to break.
      DROCE_DEBUG("qp %u: UD send WQE %lu: address handle 0x%x destroyed", qpn_,
                  (unsigned long)w.wr_id, w.ah);
      complete_send_now(sq_send_, WcStatus::kLocQpOpErr, /*fatal=*/false);
      return RequestStep::kNext;
    }
    if (r == ResolveResult::kFailed) {
      DROCE_DEBUG("qp %u: UD send WQE %lu: destination did not answer ARP", qpn_,
                  (unsigned long)w.wr_id);
      // The datagram is lost; the WQE reports it, the QP goes on (UD has no
      // connection to break).
      complete_send_now(sq_send_, WcStatus::kGeneralErr, /*fatal=*/false);
      return RequestStep::kNext;
    }
    d->qpn = w.remote_qpn;
    // IBTA 10.2.5: a Q_Key with the high bit set means "use the QP's own".
    d->qkey = (w.remote_qkey & 0x80000000u) ? attrs_.qkey : w.remote_qkey;
    return RequestStep::kGo;
  }
  const ResolveResult r = resolve_peer(now, &d->mac);
  if (r == ResolveResult::kPending) return RequestStep::kWait;
  d->ip = attrs_.av.dst_ip;
  if (r == ResolveResult::kFailed) {
    // No frame leaves without its destination MAC. UC fails the WQE as rxe
    // fails one to an unreachable peer (init_req_packet: LOC_QP_OP_ERR, QP
    // to ERR); RC counts the packet as lost and lets its retransmit timer
    // decide, as it would for a packet the link dropped.
    if (type_ == QpType::kUc) {
      DROCE_DEBUG("qp %u: UC send WQE %lu: peer %s did not answer ARP", qpn_,
                  (unsigned long)w.wr_id, format_ipv4(d->ip).c_str());
      ++counters_.tx_unresolved;
      complete_send_now(sq_send_, WcStatus::kLocQpOpErr);
      return RequestStep::kWait;
    }
    d->unresolved = true;
  }
  return RequestStep::kGo;
}

// The headers of rxe's init_req_packet (IBTA 9.2-9.5): opcode for the
// packet's place in the message, PSN, SE on the last packet of a SEND or
// WRITE with immediate (9.2.3), AckReq on the last packet and every
// kMaxPktsPerAck (9.7.2), and the extended headers the opcode carries.
// *last: the packet ends the message (or is the WQE's only request).
wire::PacketSpec Qp::init_request(const SendWqe& w, const RequestDest& d, uint32_t npsns,
                                  bool* last) {
  const SendMeta& m = meta_at(sq_send_);
  // UD: one packet per datagram whatever its size (post_send bounds it by
  // the MTU; a UD QP has no path MTU attribute of its own).
  const uint32_t mtu = type_ == QpType::kUd ? std::max<uint32_t>(w.length, 1) : attrs_.path_mtu;
  const uint32_t off = send_off_;
  wire::PacketSpec s;
  s.opcode = request_opcode(type_, w, off, mtu);
  const wire::OpcodeInfo& info = wire::opcode_info(s.opcode);
  *last = !info.has(wire::kOpPayload) || w.length - off <= mtu;
  s.payload_len = info.has(wire::kOpPayload) ? std::min(mtu, w.length - off) : 0;
  s.psn = psn_add(m.first_psn, off / mtu);
  s.dest_qp = d.qpn;
  s.se = *last && (w.flags & kSendSolicited) &&
         (w.opcode == WrOpcode::kSend || w.opcode == WrOpcode::kSendImm ||
          w.opcode == WrOpcode::kSendInv || w.opcode == WrOpcode::kRdmaWriteImm);
  ++noack_pkts_;
  s.ackreq = type_ == QpType::kRc && (*last || noack_pkts_ >= kMaxPktsPerAck);
  if (s.ackreq) noack_pkts_ = 0;
  if (info.has(wire::kOpReth)) {
    s.reth_va = w.remote_addr + off;
    s.reth_rkey = w.rkey;
    // FLUSH: the range to flush (its WQE moves no data of its own); READ:
    // this request's part of the message.
    s.reth_len = w.opcode == WrOpcode::kFlush       ? uint32_t(w.compare_add)
                 : w.opcode == WrOpcode::kRdmaRead ? std::min(w.length - off, npsns * mtu)
                                                   : w.length - off;
  }
  if (info.has(wire::kOpFeth)) {
    s.feth_placement = w.flush_type;
    s.feth_selectivity = w.flush_level;
  }
  if (info.has(wire::kOpAtomicEth)) {
    s.atomic_va = w.remote_addr;
    s.atomic_rkey = w.rkey;
    s.atomic_swap_add = w.opcode == WrOpcode::kCmpSwap ? w.swap : w.compare_add;
    s.atomic_compare = w.opcode == WrOpcode::kCmpSwap ? w.compare_add : 0;
  }
  if (info.has(wire::kOpImm)) s.imm_raw = w.imm_or_inv;
  if (info.has(wire::kOpIeth)) s.ieth_rkey = w.imm_or_inv;
  if (info.has(wire::kOpDeth)) {
    s.deth_qkey = d.qkey;
    s.deth_src_qp = qpn_;
  }
  return s;
}

// rxe finish_packet: build the frame, copy the payload out of the WQE and
// send. False: no mbuf (try again next poll; the port counts it), or an SGE
// key no longer valid (the WQE fails with LOC_PROT_ERR, QP to ERR).
bool Qp::transmit_request(const SendWqe& w, wire::PacketSpec& s, const RequestDest& d) {
  if (s.payload_len > 0) {
    uint8_t* host;
    if (const MrEntry* mr = zero_copy_source(w, send_off_, s.payload_len, &host)) {
      if (rte_mbuf* mb = build_attached(s, d.mac, d.ip, *mr, host)) {
        finish_packet(mb, s);
        return true;
      }
    }
  }
  uint8_t* payload = nullptr;
  rte_mbuf* mb = build_packet(s, d.mac, d.ip, &payload);
  if (mb == nullptr) return false;
  if (w.opcode == WrOpcode::kAtomicWrite) {
    std::memcpy(payload, &w.swap, sizeof(w.swap));  // the 8 bytes as the application gave them
  } else if (s.payload_len > 0 && !gather(w, send_off_, payload, s.payload_len)) {
    rte_pktmbuf_free(mb);
    DROCE_DEBUG("qp %u: send WQE %lu: local key no longer valid", qpn_, (unsigned long)w.wr_id);
    complete_send_now(sq_send_, WcStatus::kLocProtErr);
    return false;
  }
  finish_packet(mb, s);
  return true;
}

// rxe update_wqe_state / update_wqe_psn / update_state: after packet s of
// the WQE at sq_send_, the next PSN and offset, the next WQE after the last
// packet, the initiator-depth credit a READ / atomic request takes, and, for
// RC, the local ACK timer (the QP's timeout attribute; rxe's retrans_timer).
void Qp::advance_request(const wire::PacketSpec& s, uint32_t npsns, bool last, Nanos now) {
  const SendWqe& w = wqe_at(sq_send_);
  SendMeta& m = meta_at(sq_send_);
  const bool rd_atomic = is_read_or_atomic(w.opcode);
  const uint32_t end = psn_add(s.psn, rd_atomic ? npsns : 1);
  if (type_ == QpType::kRc) {
    if (psn_before(s.psn, psn_max_sent_)) ++counters_.retransmits;
    if (psn_after(end, psn_max_sent_)) psn_max_sent_ = end;
  }
  if (rd_atomic) {
    ++rd_atomic_inflight_;  // one per request: each takes a responder resource
    psn_ = end;
    send_off_ += s.reth_len;
    if (!(w.opcode == WrOpcode::kRdmaRead && send_off_ < w.length)) {
      m.requested = true;  // the last (or only) request of the WQE
      ++sq_send_;
      send_off_ = 0;
    }
  } else {
    send_off_ += s.payload_len;
    psn_ = psn_add(s.psn, 1);
    if (last) {
      ++sq_send_;
      send_off_ = 0;
      if (type_ != QpType::kRc) {
        // UC and UD complete once the last packet is on its way (IBTA 9.8.4).
        m.done = true;
        retire_sends();
      }
    }
  }
  if (type_ == QpType::kRc && retransmit_at_ == 0) arm_retransmit(now);
}

void Qp::run_requester(Nanos now) {
  if (resolve_pending_) {
    resolve_pending_ = false;
    wire::MacAddr mac;
    if (attrs_.state != QpState::kReset) resolve_peer(now, &mac);
  }
  const QpState st = state();
  if (st == QpState::kErr) {
    enter_error();  // WQEs posted in ERR complete at once with WR_FLUSH_ERR
    return;
  }
  send_resp_resources(now);
  if (st != QpState::kRts && st != QpState::kSqd) return;
  if (rnr_until_ != 0) {
    if (now < rnr_until_) return;
    rnr_until_ = 0;
    restart_from(comp_psn_);
  }
  for (int budget = kPktsPerPoll; budget > 0; --budget) {
    if (!send_one_packet(now)) break;
    if (state() == QpState::kErr) return;
  }
}

// Go-back-N (IBTA 9.7.5.2; rxe req_retry): the next packet sent is the one
// with PSN psn, inside the first WQE not yet complete whose PSNs reach it.
// WQEs after it keep the PSNs they were given and are sent again; a READ
// restarts at the offset of psn, an atomic from the start.
void Qp::restart_from(uint32_t psn) {
  // Never past the first unacknowledged PSN: a NAK for a later PSN that
  // could not acknowledge everything before it (a READ or atomic is still
  // missing responses) must not skip that WQE. Never before it either: a
  // retry decided before a later ACK moved comp_psn_ on (an implicit NAK
  // whose round an ACK for later PSNs overtook) would resend acknowledged
  // packets and leave psn_ behind comp_psn_, where the window distance in
  // next_request wraps and the QP would never send again.
  if (psn_before(comp_psn_, psn) || psn_before(psn, comp_psn_)) psn = comp_psn_;
  const uint32_t end = sq_->published();
  uint32_t i = sq_comp_;
  uint32_t next_psn = psn_max_sent_;  // where the first WQE not yet started will begin
  while (i != end && meta_at(i).started) {
    const SendMeta& m = meta_at(i);
    if (!m.done && psn_le(psn, m.last_psn)) break;
    next_psn = psn_add(m.last_psn, 1);
    ++i;
  }
  sq_send_ = i;
  if (i == end || !meta_at(i).started) {
    send_off_ = 0;
    psn_ = next_psn;
  } else {
    const SendMeta& m = meta_at(i);
    const SendWqe& w = wqe_at(i);
    if (psn_before(psn, m.first_psn) || is_atomic(w.opcode) || is_placement(w.opcode)) {
      psn = m.first_psn;
    }
    send_off_ = uint32_t(psn_diff(psn, m.first_psn)) * attrs_.path_mtu;
    psn_ = psn;
  }
  // READ / atomic requests before the restart point still hold their
  // initiator-depth credit; those from it on are requested again.
  rd_atomic_inflight_ = 0;
  for (uint32_t j = sq_comp_; j != sq_send_; ++j) {
    if (is_read_or_atomic(wqe_at(j).opcode) && !meta_at(j).done && meta_at(j).requested) {
      ++rd_atomic_inflight_;
    }
  }
  for (uint32_t j = sq_send_; j != end && meta_at(j).started; ++j) meta_at(j).requested = false;
  noack_pkts_ = 0;
}

ResolveResult Qp::resolve_peer(Nanos now, wire::MacAddr* mac) {
  const ArpResult r = dev_->port().resolve(attrs_.av.dst_ip, mac, now);
  if (r == ArpResult::kResolved) return ResolveResult::kResolved;
  return r == ArpResult::kPending ? ResolveResult::kPending : ResolveResult::kFailed;
}

ResolveResult Qp::resolve_ah(uint32_t ah, Nanos now, wire::MacAddr* mac, uint32_t* ip) {
  const AddressVector* av = dev_->ah(ah);
  if (av == nullptr) return ResolveResult::kNoAh;
  *ip = av->dst_ip;
  const ArpResult r = dev_->port().resolve(av->dst_ip, mac, now);
  if (r == ArpResult::kResolved) return ResolveResult::kResolved;
  return r == ArpResult::kPending ? ResolveResult::kPending : ResolveResult::kFailed;
}

}  // namespace droce::nic
