// Responder (IBTA vol. 1, 9.7.5, 9.8.3, 9.9; rxe_resp.c): checks each request
// packet in the order rxe does (PSN, opcode sequence, opcode valid, resources,
// length, rkey), executes it, completes receive WQEs, and acknowledges.
// READ responses and atomic replies come from responder resources, so that a
// duplicate request is answered again and an atomic never executes twice;
// FLUSH and ATOMIC_WRITE (annex A19) likewise, answered by an empty READ response.
#include <rte_mbuf.h>

#include <atomic>
#include <cstring>

#include "nic/base/log.h"
#include "nic/base/tsan.h"
#include "nic/base/psn.h"
#include "nic/device.h"
#include "nic/qp.h"
#include "nic/qp_internal.h"
#include "nic/srq.h"
#include "nic/wire/builder.h"

namespace droce::nic {

namespace op = wire::op;
using wire::AethType;
using wire::NakCode;

namespace {

constexpr uint8_t kAckSyndrome =
    wire::Aeth::make_syndrome(AethType::kAck, wire::kAethCreditInvalid);

constexpr uint8_t nak_syndrome(NakCode c) {
  return wire::Aeth::make_syndrome(AethType::kNak, uint8_t(c));
}

// The MR rights a FLUSH of these placement types needs (A19.4.1.1; rxe check_rkey).
uint32_t flush_access(uint8_t placement) {
  return ((placement & wire::kFlushGlobal) ? uint32_t(kAccessFlushGlobal) : 0u) |
         ((placement & wire::kFlushPersistent) ? uint32_t(kAccessFlushPersistent) : 0u);
}

bool length_ok(const wire::OpcodeInfo& info, uint32_t len, uint32_t mtu) {
  // IBA C9-92 / C9-94 (rxe check_length): FIRST/MIDDLE exactly the path MTU,
  // LAST 1..MTU, ONLY up to the MTU.
  if (info.has(wire::kOpFirst) || info.has(wire::kOpMiddle)) return len == mtu;
  if (info.has(wire::kOpLast)) return len >= 1 && len <= mtu;
  return len <= mtu;
}

}  // namespace

void Qp::send_ack(uint8_t syndrome, uint32_t psn, Nanos now) {
  // A NAK or RNR NAK is never held; an ACK deferred for earlier PSNs of this
  // burst leaves before it.
  if (syndrome != kAckSyndrome && ack_deferred_) release_held_ack(now);
  wire::MacAddr mac;
  if (resolve_peer(now, &mac) != ResolveResult::kResolved) {
    ++counters_.tx_unresolved;  // the requester retries
    return;
  }
  wire::PacketSpec s;
  s.opcode = op::kAck;
  s.dest_qp = attrs_.dest_qpn;
  s.psn = psn;
  s.aeth_syndrome = syndrome;
  s.aeth_msn = msn_;
  uint8_t* payload;
  rte_mbuf* m = build_packet(s, mac, attrs_.av.dst_ip, &payload);
  if (m == nullptr) return;
  finish_packet(m, s);
  if (syndrome == kAckSyndrome) ++counters_.acks_sent;
}

void Qp::hold_ack(uint32_t psn, Nanos now) {
  if (ack_held_) ++counters_.acks_coalesced;
  ack_held_ = true;
  held_ack_psn_ = psn;
  if (responses_owed() || ack_deferred_) return;
  if (dev_->defer_ack(this)) {
    ack_deferred_ = true;
    return;
  }
  release_held_ack(now);
}

void Qp::release_held_ack(Nanos now) {
  if (!ack_held_ || responses_owed()) return;
  ack_held_ = false;
  send_ack(kAckSyndrome, held_ack_psn_, now);
}

// Only a QP whose receive side runs answers (the states Device::dispatch
// takes requests in); one that failed during the burst sends nothing more.
void Qp::send_deferred_ack(Nanos now) {
  ack_deferred_ = false;
  const QpState st = attrs_.state;
  if (st == QpState::kRtr || st == QpState::kRts || st == QpState::kSqd ||
      st == QpState::kSqe) {
    release_held_ack(now);
  } else {
    ack_held_ = false;
  }
}

// A class C or class A responder error (IBTA 9.9.3): NAK, complete the receive
// WQE in progress with its status, QP to ERR.
void Qp::responder_error(NakCode code, WcStatus status, uint32_t psn, Nanos now,
                         AsyncEventType event) {
  if (type_ == QpType::kRc) {
    send_ack(nak_syndrome(code), psn, now);
    count_err_nak(&counters_, code, /*sent=*/true);
  }
  if (have_recv_) {
    post_recv_cqe(status, WcOpcode::kRecv, recv_off_, 0, 0, 0, false);
    have_recv_ = false;
  }
  dev_->raise_event({event, qpn_});
  enter_error();
}

bool Qp::take_recv_wqe() {
  if (have_recv_) return true;
  const RecvWqe* w = nullptr;
  if (srq_ != nullptr) {
    w = srq_->take(recv_copy_.get(), recv_copy_size_);
  } else if (rq_->completed() != rq_->published()) {
    const uint32_t idx = rq_->completed();
    std::memcpy(recv_copy_.get(), rq_->slot(idx), recv_copy_size_);
    rq_->retire(idx + 1);
    w = reinterpret_cast<const RecvWqe*>(recv_copy_.get());
  }
  if (w == nullptr) return false;
  have_recv_ = true;
  recv_off_ = 0;
  return true;
}

// Scatters payload into the receive WQE at recv_off_. Returns the status to
// complete with on failure (length or protection), kSuccess otherwise.
WcStatus Qp::scatter_recv(const uint8_t* src, uint32_t len) {
  const RecvWqe& w = *reinterpret_cast<const RecvWqe*>(recv_copy_.get());
  if (uint64_t(recv_off_) + len > w.length) return WcStatus::kLocLenErr;
  if (!copy_sges(w.sges(), w.num_sge, recv_off_, const_cast<uint8_t*>(src), len,
                 /*scatter=*/true)) {
    return WcStatus::kLocProtErr;
  }
  recv_off_ += len;
  return WcStatus::kSuccess;
}

Qp::Reject Qp::Reject::invalid(const char* why) {
  return {Kind::kError, NakCode::kInvalidRequest, WcStatus::kRemInvReqErr,
          AsyncEventType::kQpReqErr, why};
}

Qp::Reject Qp::Reject::access(const char* why) {
  return {Kind::kError, NakCode::kRemoteAccessError, WcStatus::kRemAccessErr,
          AsyncEventType::kQpAccessErr, why};
}

// ---- the request chain (rxe_resp.c): check_psn -> check_op_seq ->
// check_op_valid -> check_resource -> check_length -> check_rkey ->
// check_receive -> execute -> complete -> acknowledge. A check that fails
// fills a Reject and the chain stops there (reject()).

void Qp::handle_request(const RxPacket& pkt) {
  const wire::PacketView& v = *pkt.v;
  ++counters_.rx_packets;
  counters_.rx_bytes += v.payload_len;
  if (type_ == QpType::kUd) {
    handle_ud_send(pkt);
    return;
  }
  if (!check_psn(pkt)) return;
  Reject r;
  if (!check_op_seq(pkt, &r) || !check_op_valid(pkt, &r) || !check_resource(pkt, &r) ||
      !check_length(pkt, &r) || !check_rkey(pkt, &r) || !check_receive(pkt, &r)) {
    reject(pkt, r);
    return;
  }
  if (!execute(pkt)) return;  // answered from a responder resource, or failed
  if (!complete(pkt)) return;
  acknowledge(pkt);
}

// IBTA 9.7.5.1.1 (RC) / 9.8.3 (UC). RC: the expected PSN goes on; one ahead
// of it draws one PSN sequence error NAK carrying the expected PSN, then
// silence until it arrives (class B, 9.9.2); one behind is a duplicate
// (C9-105). UC: a gap loses the rest of the message in progress, and the
// packet starts over from its own PSN; no NAKs, no ACKs.
bool Qp::check_psn(const RxPacket& pkt) {
  const uint32_t psn = pkt.v->bth().psn();
  const int32_t d = psn_diff(psn, epsn_);
  if (type_ == QpType::kUc) {
    if (d != 0) {
      ++counters_.out_of_sequence;
      in_msg_ = InMsg::kNone;
      recv_off_ = 0;  // a receive WQE in progress is reused by the next message
      write_resid_ = 0;
    }
    epsn_ = psn_add(psn, 1);
    return true;
  }
  if (d > 0) {
    ++counters_.out_of_sequence;
    if (!seq_nak_sent_) {
      send_ack(nak_syndrome(NakCode::kPsnSeqError), epsn_, pkt.now);
      seq_nak_sent_ = true;
      ++counters_.seq_naks_sent;
    }
    return false;
  }
  if (d < 0) {
    ++counters_.duplicates;
    replay_duplicate(pkt);
    return false;
  }
  seq_nak_sent_ = false;
  return true;
}

// C9-34 (rxe check_op_seq): a message in progress goes on with MIDDLE or LAST
// of its own kind; MIDDLE and LAST need a FIRST before them. UC drops the
// rest of a message whose FIRST was lost (9.8.3).
bool Qp::check_op_seq(const RxPacket& pkt, Reject* r) {
  const wire::OpcodeInfo& info = *pkt.v->op;
  const bool cont = info.has(wire::kOpMiddle) || info.has(wire::kOpLast);
  if (in_msg_ == InMsg::kSend && !(cont && info.has(wire::kOpSend))) {
    *r = Reject::invalid("SEND message interrupted");
    return false;
  }
  if (in_msg_ == InMsg::kWrite && !(cont && info.has(wire::kOpWrite))) {
    *r = Reject::invalid("RDMA WRITE message interrupted");
    return false;
  }
  if (in_msg_ == InMsg::kNone && cont) {
    *r = type_ == QpType::kRc ? Reject::invalid("MIDDLE or LAST without FIRST") : Reject::drop();
    return false;
  }
  return true;
}

// rxe check_op_valid: the QP grants the remote operation (its access flags,
// IBTA 10.2.3.1; A19: ATOMIC_WRITE is a write, a FLUSH needs the QP's right
// for each placement type it names).
bool Qp::check_op_valid(const RxPacket& pkt, Reject* r) {
  const wire::PacketView& v = *pkt.v;
  const wire::OpcodeInfo& info = *v.op;
  if ((info.has(wire::kOpWrite) && !(attrs_.access & kAccessRemoteWrite)) ||
      (info.has(wire::kOpRead) && !(attrs_.access & kAccessRemoteRead)) ||
      (info.has(wire::kOpAtomic) && !(attrs_.access & kAccessRemoteAtomic))) {
    *r = Reject::invalid("operation not enabled on this QP (access flags)");
    return false;
  }
  if ((info.has(wire::kOpAtomicWrite) && !(attrs_.access & kAccessRemoteWrite)) ||
      (info.has(wire::kOpFlush) && (flush_access(v.feth().placement()) & ~attrs_.access))) {
    *r = Reject::invalid("FLUSH / ATOMIC_WRITE not enabled on this QP (access flags)");
    return false;
  }
  return true;
}

// Responder resources (IBTA 9.9.3 class C, rxe check_resource): with
// max_dest_rd_atomic 0 no READ, atomic, FLUSH or ATOMIC_WRITE is accepted
// (rxe checks only ATOMIC_WRITE here, droce all four, as each takes a
// resource). Otherwise keeping within the limit is the requester's job, and
// the ring recycles its oldest entry.
bool Qp::check_resource(const RxPacket& pkt, Reject* r) {
  if ((pkt.v->op->flags &
       (wire::kOpRead | wire::kOpAtomic | wire::kOpFlush | wire::kOpAtomicWrite)) &&
      attrs_.max_dest_rd_atomic == 0) {
    *r = Reject::invalid(
        "READ, atomic, FLUSH or ATOMIC_WRITE with no responder resources (max_dest_rd_atomic 0)");
    return false;
  }
  return true;
}

// C9-92 / C9-94 (rxe check_length): FIRST/MIDDLE carry exactly the path MTU,
// LAST 1..MTU, ONLY up to it; a WRITE's DMA length is at most 2^31 (9.4.4);
// an ATOMIC_WRITE carries exactly 8 bytes (A19.4.2).
bool Qp::check_length(const RxPacket& pkt, Reject* r) {
  const wire::PacketView& v = *pkt.v;
  const wire::OpcodeInfo& info = *v.op;
  if (info.has(wire::kOpPayload) && !length_ok(info, v.payload_len, attrs_.path_mtu)) {
    *r = Reject::invalid("payload length breaks the path MTU rules");
    return false;
  }
  if (info.has(wire::kOpWrite) && info.has(wire::kOpStart) &&
      v.reth().dma_length.get() > kMaxMessageBytes) {
    *r = Reject::invalid("DMA length above 2^31");
    return false;
  }
  if (info.has(wire::kOpAtomicWrite) &&
      (v.reth().dma_length.get() != 8 || v.payload_len != 8 || v.pad != 0)) {
    *r = Reject::invalid("ATOMIC_WRITE length is not 8 bytes");
    return false;
  }
  return true;
}

// C9-88 / 9.4.x (rxe check_rkey): the R_Key names a region of this QP's PD
// that grants the operation over the whole range, before a byte is touched.
bool Qp::check_rkey(const RxPacket& pkt, Reject* r) {
  const wire::OpcodeInfo& info = *pkt.v->op;
  if (info.has(wire::kOpWrite)) return check_write_rkey(pkt, r);
  if (info.has(wire::kOpRead)) return check_read_rkey(pkt, r);
  if (info.has(wire::kOpAtomic)) return check_atomic_rkey(pkt, r);
  if (info.has(wire::kOpAtomicWrite)) return check_atomic_write_rkey(pkt, r);
  if (info.has(wire::kOpFlush)) return check_flush_rkey(pkt, r);
  return true;  // SEND: the receive WQE's lkeys are checked as it is filled
}

// A WRITE's FIRST/ONLY checks the key for the whole DMA length and keeps
// where the message lands; every packet then fits what is left of it, with
// the pad count its payload needs (IBTA 9.2.3; rxe check_rkey: a length
// error otherwise).
bool Qp::check_write_rkey(const RxPacket& pkt, Reject* r) {
  const wire::PacketView& v = *pkt.v;
  const wire::OpcodeInfo& info = *v.op;
  if (info.has(wire::kOpStart)) {
    const wire::Reth& reth = v.reth();
    const uint32_t len = reth.dma_length.get();
    uint8_t* host = nullptr;
    const MrCheck c =
        dev_->mrs().check(reth.rkey.get(), pd_, reth.va.get(), len, kAccessRemoteWrite, &host);
    if (c != MrCheck::kOk) {
      DROCE_DEBUG("qp %u: RDMA WRITE rkey 0x%x [0x%lx, +%u): %s", qpn_, reth.rkey.get(),
                  (unsigned long)reth.va.get(), len, mr_check_name(c));
      *r = Reject::access("bad rkey or range");
      return false;
    }
    write_host_ = host;
    write_rkey_ = reth.rkey.get();
    write_resid_ = len;
    write_len_ = len;
  }
  if (v.payload_len > write_resid_ || (info.has(wire::kOpEnd) && v.payload_len != write_resid_)) {
    *r = Reject::invalid("payload does not match the RETH DMA length");
    return false;
  }
  if (v.pad != wire::pad_for(v.payload_len)) {
    *r = Reject::invalid("pad count does not fit the payload length");
    return false;
  }
  return true;
}

bool Qp::check_read_rkey(const RxPacket& pkt, Reject* r) {
  const wire::Reth& reth = pkt.v->reth();
  const uint32_t len = reth.dma_length.get();
  uint8_t* host = nullptr;
  const MrCheck c =
      len > kMaxMessageBytes
          ? MrCheck::kOutOfBounds
          : dev_->mrs().check(reth.rkey.get(), pd_, reth.va.get(), len, kAccessRemoteRead, &host);
  if (c != MrCheck::kOk) {
    DROCE_DEBUG("qp %u: RDMA READ rkey 0x%x [0x%lx, +%u): %s", qpn_, reth.rkey.get(),
                (unsigned long)reth.va.get(), len, mr_check_name(c));
    *r = Reject::access("bad rkey or range");
    return false;
  }
  return true;
}

// An atomic's VA is 8-byte aligned (class C invalid request), and so is the
// host word it maps to: a region registered at an IOVA other than its
// address can put an aligned VA on a misaligned word, a split lock (rxe's
// rxe_mr_do_atomic_op checks the host address too).
bool Qp::check_atomic_rkey(const RxPacket& pkt, Reject* r) {
  const wire::AtomicEth& a = pkt.v->atomic_eth();
  const uint64_t va = a.va.get();
  if (va & 7) {
    *r = Reject::invalid("atomic address not 8-byte aligned");
    return false;
  }
  uint8_t* host = nullptr;
  if (dev_->mrs().check(a.rkey.get(), pd_, va, 8, kAccessRemoteAtomic, &host) != MrCheck::kOk) {
    *r = Reject::access("bad rkey or range for atomic");
    return false;
  }
  if (reinterpret_cast<uintptr_t>(host) & 7) {
    *r = Reject::invalid("atomic host address not 8-byte aligned");
    return false;
  }
  rkey_host_ = host;
  return true;
}

// A19.4.2 (rxe check_rkey / atomic_write_reply): 8 bytes to an 8-byte
// aligned address of a region with remote write access.
bool Qp::check_atomic_write_rkey(const RxPacket& pkt, Reject* r) {
  const wire::Reth& reth = pkt.v->reth();
  const uint64_t va = reth.va.get();
  uint8_t* host = nullptr;
  const MrCheck c = dev_->mrs().check(reth.rkey.get(), pd_, va, 8, kAccessRemoteWrite, &host);
  if (c != MrCheck::kOk) {
    DROCE_DEBUG("qp %u: ATOMIC_WRITE rkey 0x%x [0x%lx, +8): %s", qpn_, reth.rkey.get(),
                (unsigned long)va, mr_check_name(c));
    *r = Reject::access("bad rkey or range for ATOMIC_WRITE");
    return false;
  }
  if ((va & 7) || (reinterpret_cast<uintptr_t>(host) & 7)) {
    *r = Reject::invalid("ATOMIC_WRITE address not 8-byte aligned");
    return false;
  }
  rkey_host_ = host;
  return true;
}

// A19.4.1 (rxe check_rkey / process_flush): the key must grant the placement
// types; the range is checked unless the whole region is named.
bool Qp::check_flush_rkey(const RxPacket& pkt, Reject* r) {
  const wire::PacketView& v = *pkt.v;
  const wire::Reth& reth = v.reth();
  const uint32_t key = reth.rkey.get();
  const uint32_t need = flush_access(v.feth().placement());
  const MrEntry* e = dev_->mrs().find(key);
  MrCheck c = e == nullptr                 ? MrCheck::kBadKey
              : e->pd != pd_               ? MrCheck::kWrongPd
              : (e->access & need) != need ? MrCheck::kNoAccess
                                           : MrCheck::kOk;
  uint8_t* host = nullptr;
  if (c == MrCheck::kOk && v.feth().selectivity() != wire::kFlushMr) {
    c = dev_->mrs().check(key, pd_, reth.va.get(), reth.dma_length.get(), need, &host);
  }
  if (c != MrCheck::kOk) {
    DROCE_DEBUG("qp %u: FLUSH type %u level %u rkey 0x%x [0x%lx, +%u): %s", qpn_,
                v.feth().placement(), v.feth().selectivity(), key, (unsigned long)reth.va.get(),
                reth.dma_length.get(), mr_check_name(c));
    *r = Reject::access("bad rkey, rights or range for FLUSH");
    return false;
  }
  return true;
}

// Class B (9.7.5.2.8): a SEND's FIRST/ONLY and a WRITE with immediate's
// LAST/ONLY consume a receive WQE; without one, RC answers RNR NAK (the
// requester retries after the timer), UC drops the message. Taken after the
// rkey, so a bad WRITE fails as such rather than waiting for a receive.
bool Qp::check_receive(const RxPacket& pkt, Reject* r) {
  const wire::OpcodeInfo& info = *pkt.v->op;
  const bool needs = (info.has(wire::kOpSend) && info.has(wire::kOpStart)) ||
                     (info.has(wire::kOpWrite) && info.has(wire::kOpImm));
  if (needs && !take_recv_wqe()) {
    *r = Reject::rnr();
    return false;
  }
  return true;
}

// A failed check: RC follows the class of the error (IBTA 9.9); UC drops.
void Qp::reject(const RxPacket& pkt, const Reject& r) {
  const bool rc = type_ == QpType::kRc;
  const uint32_t psn = pkt.v->bth().psn();
  switch (r.kind) {
    case Reject::Kind::kDrop:
      count_drop(&QpCounters::drop_msg_lost);  // UC: the rest of a message whose start was lost
      return;
    case Reject::Kind::kRnr:
      if (rc) {
        send_ack(wire::Aeth::make_syndrome(AethType::kRnrNak, attrs_.min_rnr_timer), psn, pkt.now);
        ++counters_.rnr_naks_sent;
      } else {
        count_drop(&QpCounters::drop_no_recv_wqe);
        in_msg_ = InMsg::kNone;
      }
      return;
    case Reject::Kind::kError:
      DROCE_DEBUG("qp %u: request PSN 0x%x (%s) rejected: %s", qpn_, psn, pkt.v->op->name, r.why);
      if (!rc) {
        count_drop(&QpCounters::drop_uc_reject);
        in_msg_ = InMsg::kNone;
        recv_off_ = 0;
        return;
      }
      responder_error(r.code, r.status, psn, pkt.now, r.event);
      return;
  }
}

// Carries the request out. False when nothing more follows: READs, atomics,
// FLUSH and ATOMIC_WRITE are answered from their responder resource, and a
// SEND whose receive WQE could not take it failed here.
bool Qp::execute(const RxPacket& pkt) {
  const wire::OpcodeInfo& info = *pkt.v->op;
  if (info.has(wire::kOpSend)) return execute_send(pkt);
  if (info.has(wire::kOpWrite)) {
    execute_write(pkt);
    return true;
  }
  // Responses from a responder resource follow an ACK held for earlier PSNs.
  release_held_ack(pkt.now);
  if (info.has(wire::kOpRead)) {
    execute_read(pkt);
  } else if (info.has(wire::kOpAtomic)) {
    execute_atomic(pkt);
  } else if (info.has(wire::kOpAtomicWrite)) {
    execute_atomic_write(pkt);
  } else if (info.has(wire::kOpFlush)) {
    execute_flush(pkt);
  }
  return false;
}

// The payload goes into the receive WQE (IBTA 9.7.5; rxe send_data_in).
// A WQE too short (class C) or whose lkey fails (class A) fails the QP on
// RC; on UC the WQE completes in error and the QP goes on.
bool Qp::execute_send(const RxPacket& pkt) {
  const wire::PacketView& v = *pkt.v;
  const WcStatus st = scatter_recv(v.payload(), v.payload_len);
  if (st != WcStatus::kSuccess) {
    if (type_ != QpType::kRc) {
      post_recv_cqe(st, WcOpcode::kRecv, recv_off_, 0, 0, 0, false);
      have_recv_ = false;
      in_msg_ = InMsg::kNone;
      return false;
    }
    const NakCode code =
        st == WcStatus::kLocLenErr ? NakCode::kInvalidRequest : NakCode::kRemoteOpError;
    responder_error(code, st, v.bth().psn(), pkt.now, AsyncEventType::kQpFatal);
    return false;
  }
  in_msg_ = v.op->has(wire::kOpEnd) ? InMsg::kNone : InMsg::kSend;
  return true;
}

void Qp::execute_write(const RxPacket& pkt) {
  const wire::PacketView& v = *pkt.v;
  if (v.payload_len > 0) {
    // memmove: a chained frame's payload is the sender's registered memory
    // (zero-copy transmit), which a loopback WRITE may overlap. Not seen by
    // ThreadSanitizer, as a NIC's DMA (nic/base/tsan.h).
    dma_write(write_host_, v.payload(), v.payload_len);
    write_host_ += v.payload_len;
    write_resid_ -= v.payload_len;
  }
  in_msg_ = v.op->has(wire::kOpEnd) ? InMsg::kNone : InMsg::kWrite;
}

// A READ takes a responder resource; its responses leave from there
// (send_resp_resources), and the MSN counts it at the request (C9-148).
void Qp::execute_read(const RxPacket& pkt) {
  const wire::Reth& reth = pkt.v->reth();
  const uint32_t psn = pkt.v->bth().psn();
  const uint32_t len = reth.dma_length.get();
  RespResource& r = alloc_resource();
  r.kind = RespResource::Kind::kRead;
  r.first_psn = psn;
  r.last_psn = psn_add(psn, psns_for(len) - 1);
  r.va = reth.va.get();
  r.rkey = reth.rkey.get();
  r.length = len;
  r.cur_psn = psn;
  r.cur_off = 0;
  r.sending = true;
  msn_ = psn_add(msn_, 1);
  epsn_ = psn_add(r.last_psn, 1);
}

// The 64-bit value in host order (as rxe), atomic against other QPs and the
// host's own atomics on the word; the result is kept in a responder resource
// so a duplicate is answered again, never executed twice (C9-105).
void Qp::execute_atomic(const RxPacket& pkt) {
  const wire::PacketView& v = *pkt.v;
  const wire::AtomicEth& a = v.atomic_eth();
  const uint32_t psn = v.bth().psn();
  auto* word = reinterpret_cast<uint64_t*>(rkey_host_);
  uint64_t orig;
  if (v.bth().opcode == op::kCmpSwap) {
    orig = a.compare.get();
    __atomic_compare_exchange_n(word, &orig, a.swap_add.get(), false, __ATOMIC_SEQ_CST,
                                __ATOMIC_SEQ_CST);
  } else {
    orig = __atomic_fetch_add(word, a.swap_add.get(), __ATOMIC_SEQ_CST);
  }
  RespResource& r = alloc_resource();
  r.kind = RespResource::Kind::kAtomic;
  r.first_psn = r.last_psn = psn;
  r.atomic_orig = orig;
  msn_ = psn_add(msn_, 1);
  epsn_ = psn_add(psn, 1);
  if (responses_owed()) {
    r.sending = true;  // after the READ responses before it
  } else {
    send_atomic_ack(r, pkt.now);
  }
}

// A19.4.2: stored in one piece, after everything before it.
void Qp::execute_atomic_write(const RxPacket& pkt) {
  uint64_t value;  // the payload's bytes land as they are (rxe: *(u64 *)payload)
  std::memcpy(&value, pkt.v->payload(), sizeof(value));
  __atomic_store_n(reinterpret_cast<uint64_t*>(rkey_host_), value, __ATOMIC_RELEASE);
  queue_placement_response(pkt.v->bth().psn());
}

// A19.4.1: what the engine stored is globally visible once stored; the fence
// orders every earlier placement before the response (rxe: wmb). Persistence
// would need pmem, which no region has: registration refuses
// kAccessFlushPersistent, so a persistent FLUSH failed check_rkey, as rxe's
// does on a region that is not pmem.
void Qp::execute_flush(const RxPacket& pkt) {
  std::atomic_thread_fence(std::memory_order_seq_cst);
  queue_placement_response(pkt.v->bth().psn());
}

// The end of a SEND or of a WRITE with immediate completes its receive WQE
// (IBTA 9.7.5.1.2); every message end counts in the MSN. False when the
// message failed here (a SEND with invalidate: droce has no memory windows or
// fast-register MRs to invalidate, a class J error as rxe's for an
// ibv_reg_mr region, IBTA 9.4.1.2.3).
bool Qp::complete(const RxPacket& pkt) {
  const wire::PacketView& v = *pkt.v;
  const wire::OpcodeInfo& info = *v.op;
  if (!info.has(wire::kOpEnd)) return true;
  if (info.has(wire::kOpSend)) {
    uint8_t flags = 0;
    uint32_t extra = 0;
    if (info.has(wire::kOpImm)) {
      flags |= kWcWithImm;
      extra = v.immdt().imm.raw();
    }
    if (info.has(wire::kOpIeth)) {
      reject(pkt, Reject::invalid("rkey to invalidate is not a memory window"));
      return false;
    }
    post_recv_cqe(WcStatus::kSuccess, WcOpcode::kRecv, recv_off_, flags, extra, 0, v.bth().se());
    have_recv_ = false;
  } else if (info.has(wire::kOpImm)) {
    post_recv_cqe(WcStatus::kSuccess, WcOpcode::kRecvRdmaImm, write_len_, kWcWithImm,
                  v.immdt().imm.raw(), 0, v.bth().se());
    have_recv_ = false;
  }
  msn_ = psn_add(msn_, 1);
  return true;
}

// IBTA 9.7.5 acknowledgement (rxe acknowledge): an ACK when the requester
// asked for one (AckReq), coalescing the packets before it; it is held while
// READ responses or atomic replies are still owed, which it would overtake
// (and imply), and to the end of the receive burst, so that the burst's
// later requests asking for one share it (9.7.5.1.2: an ACK acknowledges
// every PSN before its own).
void Qp::acknowledge(const RxPacket& pkt) {
  const uint32_t psn = pkt.v->bth().psn();
  epsn_ = psn_add(psn, 1);
  if (type_ != QpType::kRc || !pkt.v->bth().ackreq()) return;
  hold_ack(psn, pkt.now);
}

// FLUSH / ATOMIC_WRITE done: its response, a zero-length READ RESPONSE ONLY,
// leaves from a responder resource behind any READ responses still owed.
void Qp::queue_placement_response(uint32_t psn) {
  RespResource& r = alloc_resource();
  r.kind = RespResource::Kind::kPlacement;
  r.first_psn = r.last_psn = r.cur_psn = psn;
  r.length = 0;
  r.cur_off = 0;
  r.sending = true;
  msn_ = psn_add(msn_, 1);
  epsn_ = psn_add(psn, 1);
}

void Qp::send_atomic_ack(const RespResource& r, Nanos now) {
  wire::MacAddr mac;
  if (resolve_peer(now, &mac) != ResolveResult::kResolved) {
    ++counters_.tx_unresolved;  // the requester asks again; the reply is kept
    return;
  }
  wire::PacketSpec s;
  s.opcode = op::kAtomicAck;
  s.dest_qp = attrs_.dest_qpn;
  s.psn = r.first_psn;
  s.aeth_syndrome = kAckSyndrome;
  s.aeth_msn = msn_;
  s.atomic_ack_orig = r.atomic_orig;
  uint8_t* payload;
  rte_mbuf* m = build_packet(s, mac, attrs_.av.dst_ip, &payload);
  if (m != nullptr) finish_packet(m, s);
}

void Qp::replay_duplicate(const RxPacket& pkt) {
  const wire::PacketView& v = *pkt.v;
  const wire::OpcodeInfo& info = *v.op;
  const uint32_t psn = v.bth().psn();
  // An ACK deferred earlier in this burst leaves before a replayed response,
  // as it would have without coalescing: held behind a replayed READ stream
  // that each retried READ starts again, it would never leave.
  if (!info.has(wire::kOpSend) && !info.has(wire::kOpWrite)) release_held_ack(pkt.now);
  if (info.has(wire::kOpRead)) {
    // C9-105: answer again from memory, from the PSN asked for.
    for (uint32_t i = 0; i < res_count_; ++i) {
      RespResource& r = res_[i];
      if (r.kind != RespResource::Kind::kRead) continue;
      if (psn_before(psn, r.first_psn) || psn_after(psn, r.last_psn)) continue;
      const uint32_t off = uint32_t(psn_diff(psn, r.first_psn)) * attrs_.path_mtu;
      if (v.reth().va.get() != r.va + off || v.reth().rkey.get() != r.rkey) break;
      r.cur_psn = psn;
      r.cur_off = off;
      r.sending = true;
      return;
    }
    // Resource already reused, or a RETH that is not the original's (class D):
    // the requester will time out.
    count_drop(&QpCounters::drop_stale_duplicate);
    return;
  }
  if (info.has(wire::kOpAtomic)) {
    for (uint32_t i = 0; i < res_count_; ++i) {
      const RespResource& r = res_[i];
      if (r.kind == RespResource::Kind::kAtomic && r.first_psn == psn) {
        send_atomic_ack(r, pkt.now);  // the stored result, never executed again
        return;
      }
    }
    count_drop(&QpCounters::drop_stale_duplicate);
    return;
  }
  if (info.has(wire::kOpFlush) || info.has(wire::kOpAtomicWrite)) {
    // oA19-14 / oA19-15 (rxe duplicate_request): answer again, never redo.
    for (uint32_t i = 0; i < res_count_; ++i) {
      RespResource& r = res_[i];
      if (r.kind == RespResource::Kind::kPlacement && r.first_psn == psn) {
        r.cur_psn = psn;
        r.cur_off = 0;
        r.sending = true;
        return;
      }
    }
    count_drop(&QpCounters::drop_stale_duplicate);  // resource already reused (class D), as rxe
    return;
  }
  // SEND / WRITE: acknowledge again up to the last PSN received (rxe: epsn - 1),
  // behind any READ responses or atomic replies still owed (an ACK now would
  // overtake them, and the requester would take it as an implicit NAK).
  hold_ack(psn_sub(epsn_, 1), pkt.now);
}

RespResource& Qp::alloc_resource() {
  // A ring of max_dest_rd_atomic entries; the oldest is reused.
  const uint32_t cap = std::max<uint32_t>(1, attrs_.max_dest_rd_atomic);
  RespResource& r = res_[res_next_ % cap];
  res_next_ = (res_next_ + 1) % cap;
  if (res_count_ < cap) ++res_count_;
  r = RespResource{};
  return r;
}

// Sends what the responder resources owe, oldest first, so responses leave in
// PSN order (IBTA 9.7.5.1.3): READ response streams, then atomic replies
// queued behind them, then an ACK that was held back while they were owed.
bool Qp::send_resp_resources(Nanos now) {
  const uint32_t cap = std::max<uint32_t>(1, attrs_.max_dest_rd_atomic);
  int budget = kPktsPerPoll;
  for (uint32_t k = 0; k < res_count_; ++k) {
    RespResource& r = res_[(res_next_ + cap - res_count_ + k) % cap];
    if (!r.sending) continue;
    wire::MacAddr mac;
    if (resolve_peer(now, &mac) != ResolveResult::kResolved) return true;
    if (r.kind == RespResource::Kind::kAtomic) {
      send_atomic_ack(r, now);
      r.sending = false;
      continue;
    }
    const uint32_t mtu = attrs_.path_mtu;
    const bool single = r.first_psn == r.last_psn;
    for (; budget > 0 && r.sending; --budget) {
      wire::PacketSpec s;
      const bool first = r.cur_psn == r.first_psn;
      const bool last = r.cur_psn == r.last_psn;
      s.opcode = single  ? op::kReadRespOnly
                 : first ? op::kReadRespFirst
                 : last  ? op::kReadRespLast
                         : op::kReadRespMiddle;
      s.dest_qp = attrs_.dest_qpn;
      s.psn = r.cur_psn;
      s.aeth_syndrome = kAckSyndrome;
      s.aeth_msn = msn_;
      s.payload_len = std::min(mtu, r.length - r.cur_off);
      uint8_t* host = nullptr;
      if (s.payload_len > 0 && dev_->mrs().check(r.rkey, pd_, r.va + r.cur_off, s.payload_len,
                                                 kAccessRemoteRead, &host) != MrCheck::kOk) {
        // The region went away under the READ: remote access error (class C).
        r.sending = false;
        send_ack(nak_syndrome(NakCode::kRemoteAccessError), r.cur_psn, now);
        count_err_nak(&counters_, NakCode::kRemoteAccessError, /*sent=*/true);
        break;
      }
      // Zero-copy from the region (zero_copy.cc): dereg_mr waits for the frame.
      rte_mbuf* m = nullptr;
      if (s.payload_len > 0 && dev_->zero_copy(s.payload_len)) {
        m = build_attached(s, mac, attrs_.av.dst_ip, *dev_->mrs().find(r.rkey), host);
      }
      if (m == nullptr) {
        uint8_t* payload;
        m = build_packet(s, mac, attrs_.av.dst_ip, &payload);
        if (m == nullptr) return true;
        if (s.payload_len > 0) std::memcpy(payload, host, s.payload_len);
      }
      finish_packet(m, s);
      r.cur_off += s.payload_len;
      if (last) {
        r.sending = false;
      } else {
        r.cur_psn = psn_add(r.cur_psn, 1);
      }
    }
    if (r.sending) return true;  // budget spent: go on next poll, in order
  }
  if (ack_held_) {
    ack_held_ = false;
    send_ack(kAckSyndrome, held_ack_psn_, now);
  }
  return false;
}

bool Qp::responses_owed() const {
  for (uint32_t i = 0; i < res_count_; ++i) {
    if (res_[i].sending) return true;
  }
  return false;
}

void Qp::handle_ud_send(const RxPacket& pkt) {
  const wire::PacketView& v = *pkt.v;
  const wire::Deth& deth = v.deth();
  if (deth.qkey.get() != attrs_.qkey) {
    count_drop(&QpCounters::drop_bad_qkey);  // IBTA 10.2.5: Q_Key mismatch, silently dropped
    return;
  }
  if (!take_recv_wqe()) {
    count_drop(&QpCounters::drop_no_recv_wqe);  // UD: no receive WQE, the datagram is lost
    return;
  }
  // The first 40 bytes of the buffer hold the GRH: for IPv4, 20 zero bytes
  // and the IPv4 header (as rxe and mlx5 do).
  uint8_t grh[40] = {};
  if (v.ipv6) {
    std::memcpy(grh, v.frame + v.l3_off, 40);
  } else {
    std::memcpy(grh + 20, v.frame + v.l3_off, 20);
  }
  WcStatus st = scatter_recv(grh, sizeof(grh));
  if (st == WcStatus::kSuccess) st = scatter_recv(v.payload(), v.payload_len);
  uint8_t flags = kWcGrh;
  uint32_t imm = 0;
  if (v.op->has(wire::kOpImm)) {
    flags |= kWcWithImm;
    imm = v.immdt().imm.raw();
  }
  post_recv_cqe(st, WcOpcode::kRecv, recv_off_, flags, imm, deth.src_qp(), v.bth().se());
  have_recv_ = false;
}

}  // namespace droce::nic
