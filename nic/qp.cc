// QP life cycle (IBTA vol. 1, 10.3 and 11.2.4-11.2.5): posting WQEs, the
// modify_qp state machine (all-or-nothing), completions in order, and the
// error-state flush of DESIGN.md section 4.
#include "nic/qp.h"

#include <rte_mbuf.h>

#include <algorithm>
#include <cstring>
#include <mutex>

#include "nic/base/log.h"
#include "nic/base/psn.h"
#include "nic/device.h"
#include "nic/qp_internal.h"
#include "nic/srq.h"
#include "nic/wire/builder.h"
#include "nic/wire/udp.h"

namespace droce::nic {

Qp::Qp(Device* dev, uint32_t qpn, const QpInitAttr& init, std::unique_ptr<WorkQueue> sq,
       std::unique_ptr<WorkQueue> rq)
    : dev_(dev),
      qpn_(qpn),
      type_(init.type),
      pd_(init.pd),
      send_cq_(init.send_cq),
      recv_cq_(init.recv_cq),
      srq_(init.srq),
      sq_sig_all_(init.sq_sig_all),
      caps_(init.cap),
      sq_(std::move(sq)),
      rq_(std::move(rq)) {
  meta_.reset(new SendMeta[sq_->capacity()]);
  recv_copy_size_ = rq_ ? rq_->stride() : srq_->stride();
  recv_copy_.reset(new uint8_t[recv_copy_size_]());
  res_cap_ = std::max<uint32_t>(1, dev->attr().max_qp_rd_atom);
  res_.reset(new RespResource[res_cap_]);
  attrs_.cap = init.cap;
  read_request_psns_ = kMaxReadRequestPsns;
}

Qp::~Qp() = default;

uint32_t Qp::psns_for(uint32_t length) const {
  const uint32_t mtu = attrs_.path_mtu;
  return length == 0 ? 1 : (length + mtu - 1) / mtu;
}

// ---- driver side ----

int Qp::check_send_wqe(const SendWqe& w, const Sge* sges) const {
  switch (w.opcode) {
    case WrOpcode::kSend:
    case WrOpcode::kSendImm:
      break;
    case WrOpcode::kRdmaWrite:
    case WrOpcode::kRdmaWriteImm:
      if (type_ == QpType::kUd) return EINVAL;
      break;
    case WrOpcode::kRdmaRead:
    case WrOpcode::kCmpSwap:
    case WrOpcode::kFetchAdd:
    case WrOpcode::kSendInv:
    case WrOpcode::kLocalInv:
      if (type_ != QpType::kRc) return EINVAL;
      break;
    case WrOpcode::kFlush:
    case WrOpcode::kAtomicWrite:
      // IBTA A19: RC only; no local data (ATOMIC_WRITE's 8 bytes travel in
      // the WQE itself, FLUSH has none).
      if (type_ != QpType::kRc || w.num_sge != 0 || (w.flags & kSendInline)) return EINVAL;
      if (w.opcode == WrOpcode::kFlush &&
          (w.flush_type == 0 || (w.flush_type & ~(wire::kFlushGlobal | wire::kFlushPersistent)) ||
           w.flush_level > wire::kFlushMr || w.compare_add > kMaxMessageBytes)) {
        return EINVAL;
      }
      break;
    default:
      return EINVAL;  // memory windows are not offered
  }
  if (w.flags & kSendInline) {
    if (w.length > caps_.max_inline_data) return EINVAL;
    if (is_read_or_atomic(w.opcode)) return EINVAL;  // data is written locally
  } else if (w.num_sge > caps_.max_send_sge) {
    return EINVAL;
  }
  uint64_t total = 0;
  if (!(w.flags & kSendInline)) {
    for (uint32_t i = 0; i < w.num_sge; ++i) total += sges[i].length;
  } else {
    total = w.length;
  }
  if (total > kMaxMessageBytes) return EINVAL;
  if (is_atomic(w.opcode) && (total != 8 || w.num_sge != 1)) return EINVAL;
  // UD: one packet per message; a UD QP has no path MTU attribute, the port's applies.
  if (type_ == QpType::kUd && total > dev_->port().path_mtu()) return EINVAL;
  return 0;
}

int Qp::post_send(const SendWqe& wqe, const Sge* sges, const void* inline_data) {
  if (int err = check_send_wqe(wqe, sges); err != 0) return err;
  {
    std::lock_guard<SpinLock> lock(sq_->producer_lock());
    // The state is read under the producer lock, which the transition to
    // RESET holds while it empties the queue and sets the state: a WQE is
    // either published before the RESET (and discarded by it) or refused.
    const QpState st = state();
    if (st == QpState::kReset || st == QpState::kInit || st == QpState::kRtr) {
      DROCE_DEBUG("qp %u: post_send in state %s (the QP must be in RTS)", qpn_, qp_state_name(st));
      return EINVAL;
    }
    uint8_t* slot = sq_->reserve();
    if (slot == nullptr) return ENOMEM;
    auto* w = reinterpret_cast<SendWqe*>(slot);
    *w = wqe;
    if (wqe.flags & kSendInline) {
      w->num_sge = 0;
      if (wqe.length > 0) std::memcpy(w->inline_data(), inline_data, wqe.length);
    } else {
      uint64_t total = 0;
      for (uint32_t i = 0; i < wqe.num_sge; ++i) {
        w->sges()[i] = sges[i];
        total += sges[i].length;
      }
      // ATOMIC_WRITE carries its 8 bytes in the WQE (SendWqe::swap).
      w->length = wqe.opcode == WrOpcode::kAtomicWrite ? 8 : uint32_t(total);
    }
    sq_->publish();
  }
  dev_->ring_doorbell();
  return 0;
}

int Qp::post_recv(uint64_t wr_id, const Sge* sges, uint32_t num_sge) {
  if (srq_ != nullptr) return EINVAL;  // receives go to the SRQ
  if (num_sge > caps_.max_recv_sge) return EINVAL;
  // The state is checked under the producer lock, as in post_send.
  const int err = post_recv_wqe(*rq_, wr_id, sges, num_sge,
                                [this] { return state() != QpState::kReset; });
  if (err != 0) return err;
  dev_->ring_doorbell();  // in ERR the engine flushes it at once
  return 0;
}

// ---- state machine ----

// ibv_modify_qp (IBTA 11.2.4.2, rxe_qp_chk_attr / rxe_qp_from_attr): the
// transition and its attribute mask from the one table (qp_state.cc), then
// every value, all before anything changes, so a refused modify leaves the
// QP as it was; then the attributes, then the state.
Status Qp::modify(const QpAttrs& a, uint32_t mask) {
  const QpState cur = attrs_.state;
  const QpState next = has_attr(mask, QpAttr::kState) ? a.state : cur;
  if (!check_cur_state(mask, cur, a.cur_state)) {
    return Status(Errc::kInvalidArgument, std::string("current state is ") + qp_state_name(cur) +
                                              ", not " + qp_state_name(a.cur_state));
  }
  const QpTransitionCheck c = check_modify(type_, cur, next, mask);
  if (!c.ok()) {
    std::string why = std::string(qp_state_name(cur)) + " -> " + qp_state_name(next) + ": " +
                      qp_check_name(c.code);
    if (c.first_bad_attr() != 0) why += std::string(" (") + qp_attr_name(c.first_bad_attr()) + ")";
    return Status(Errc::kInvalidArgument, why);
  }
  uint32_t dst_ip = 0;
  Status st = check_modify_values(a, mask, &dst_ip);
  if (!st.is_ok()) return st;
  apply_attrs(a, mask, dst_ip);
  if (next != cur) change_state(next);
  return Status::ok();
}

// The ranges ibv_modify_qp's attributes have (IBTA 11.2.4.2; path MTU
// 256..4096 and at most the port's, timeout and min_rnr_timer 5 bits,
// retry_cnt and rnr_retry 3 bits) and what droce's one port and one GID
// support. *dst_ip: the peer's IPv4 address from an IPv4-mapped GID.
Status Qp::check_modify_values(const QpAttrs& a, uint32_t mask, uint32_t* dst_ip) const {
  if (has_attr(mask, QpAttr::kPathMtu) &&
      (a.path_mtu < 256 || a.path_mtu > 4096 || (a.path_mtu & (a.path_mtu - 1)) ||
       a.path_mtu > dev_->port().path_mtu())) {
    return Status(Errc::kInvalidArgument, "path MTU " + std::to_string(a.path_mtu) +
                                              " above the port's " +
                                              std::to_string(dev_->port().path_mtu()));
  }
  if (has_attr(mask, QpAttr::kTimeout) && a.timeout > 31)
    return Status(Errc::kInvalidArgument, "timeout > 31");
  if (has_attr(mask, QpAttr::kRetryCnt) && a.retry_cnt > 7)
    return Status(Errc::kInvalidArgument, "retry_cnt > 7");
  if (has_attr(mask, QpAttr::kRnrRetry) && a.rnr_retry > 7)
    return Status(Errc::kInvalidArgument, "rnr_retry > 7");
  if (has_attr(mask, QpAttr::kMinRnrTimer) && a.min_rnr_timer > 31)
    return Status(Errc::kInvalidArgument, "min_rnr_timer > 31");
  if (has_attr(mask, QpAttr::kPort) && a.port_num != 1)
    return Status(Errc::kInvalidArgument, "port must be 1");
  if (has_attr(mask, QpAttr::kPkeyIndex) && a.pkey_index != 0)
    return Status(Errc::kInvalidArgument, "P_Key index must be 0");
  if (has_attr(mask, QpAttr::kAccessFlags) &&
      (a.access &
       ~(kAccessLocalWrite | kAccessRemoteWrite | kAccessRemoteRead | kAccessRemoteAtomic |
         kAccessFlushGlobal | kAccessFlushPersistent))) {
    return Status(Errc::kInvalidArgument, "unsupported QP access flags");
  }
  if (has_attr(mask, QpAttr::kMaxQpRdAtomic) &&
      a.max_rd_atomic > dev_->attr().max_qp_init_rd_atom) {
    return Status(Errc::kInvalidArgument, "max_rd_atomic above the device limit");
  }
  if (has_attr(mask, QpAttr::kMaxDestRdAtomic) &&
      a.max_dest_rd_atomic > dev_->attr().max_qp_rd_atom) {
    return Status(Errc::kInvalidArgument, "max_dest_rd_atomic above the device limit");
  }
  if (has_attr(mask, QpAttr::kAv)) {
    if (!gid_to_ipv4(a.av.dgid, dst_ip)) {
      return Status(Errc::kInvalidArgument,
                    "destination GID is not an IPv4-mapped RoCEv2 GID (::ffff:a.b.c.d); IPv6 is "
                    "not supported yet");
    }
    if (a.av.sgid_index != 0) return Status(Errc::kInvalidArgument, "source GID index must be 0");
  }
  return Status::ok();
}

// The checked attributes the mask carries. A new SQ PSN restarts the
// requester there and a new RQ PSN the responder (IBTA 11.2.4.2); a new
// retry count or RNR retry count refills the retries left.
void Qp::apply_attrs(const QpAttrs& a, uint32_t mask, uint32_t dst_ip) {
  if (has_attr(mask, QpAttr::kAccessFlags)) attrs_.access = a.access;
  if (has_attr(mask, QpAttr::kPkeyIndex)) attrs_.pkey_index = a.pkey_index;
  if (has_attr(mask, QpAttr::kPort)) attrs_.port_num = a.port_num;
  if (has_attr(mask, QpAttr::kQkey)) attrs_.qkey = a.qkey;
  if (has_attr(mask, QpAttr::kAv)) {
    attrs_.av = a.av;
    attrs_.av.dst_ip = dst_ip;
  }
  if (has_attr(mask, QpAttr::kPathMtu)) attrs_.path_mtu = a.path_mtu;
  if (has_attr(mask, QpAttr::kTimeout)) attrs_.timeout = a.timeout;
  if (has_attr(mask, QpAttr::kRetryCnt)) attrs_.retry_cnt = retry_left_ = a.retry_cnt;
  if (has_attr(mask, QpAttr::kRnrRetry)) attrs_.rnr_retry = rnr_left_ = a.rnr_retry;
  if (has_attr(mask, QpAttr::kMinRnrTimer)) attrs_.min_rnr_timer = a.min_rnr_timer;
  if (has_attr(mask, QpAttr::kRqPsn)) attrs_.rq_psn = epsn_ = a.rq_psn & kPsnMask;
  if (has_attr(mask, QpAttr::kSqPsn)) {
    attrs_.sq_psn = a.sq_psn & kPsnMask;
    psn_ = comp_psn_ = psn_max_sent_ = attrs_.sq_psn;
  }
  if (has_attr(mask, QpAttr::kMaxQpRdAtomic)) attrs_.max_rd_atomic = a.max_rd_atomic;
  if (has_attr(mask, QpAttr::kMaxDestRdAtomic)) resize_resources(a.max_dest_rd_atomic);
  if (has_attr(mask, QpAttr::kDestQpn)) attrs_.dest_qpn = a.dest_qpn & kPsnMask;
  if (has_attr(mask, QpAttr::kEnSqdAsyncNotify)) attrs_.en_sqd_async_notify = a.en_sqd_async_notify;
}

// What entering a state does (IBTA 10.3.1): RESET empties the queues, ERR
// flushes them, RTR of a connected QP starts resolving the peer, SQD waits
// for the WQEs in progress and raises SQ_DRAINED once they are done.
void Qp::change_state(QpState next) {
  if (next == QpState::kReset) {
    reset_queues();
  } else if (next == QpState::kErr) {
    set_state(QpState::kErr);
    enter_error();
    return;
  } else if (next == QpState::kRtr && type_ != QpType::kUd) {
    // ARP starts at the next poll, on the engine's clock, as Linux
    // resolves the peer when a RoCEv2 QP enters RTR.
    resolve_pending_ = true;
  } else if (next == QpState::kSqd) {
    sq_drained_sent_ = false;
  }
  set_state(next);
  // Already drained: the event at once, as rxe's completer does on its next run.
  if (next == QpState::kSqd) check_sq_drained();
}

// The responder resources are a ring of max(1, max_dest_rd_atomic) entries
// (alloc_resource). A new size (RTR, or SQD -> SQD, IBTA 11.2.4.2) keeps the
// entries in use in order, oldest first from slot 0; lowering it below them
// keeps the newest, as the ring would have recycled the oldest first (rxe
// drops them all: rxe_qp_from_attr frees and reallocates its resources). A
// dropped READ still sending stops; its requester times out and asks again.
void Qp::resize_resources(uint8_t max_dest_rd_atomic) {
  const uint32_t old_cap = std::max<uint32_t>(1, attrs_.max_dest_rd_atomic);
  const uint32_t new_cap = std::max<uint32_t>(1, max_dest_rd_atomic);
  const uint32_t oldest = (res_next_ + old_cap - res_count_) % old_cap;
  std::rotate(res_.get(), res_.get() + oldest, res_.get() + old_cap);
  const uint32_t keep = std::min(res_count_, new_cap);
  std::move(res_.get() + (res_count_ - keep), res_.get() + res_count_, res_.get());
  for (uint32_t i = keep; i < res_cap_; ++i) res_[i] = RespResource{};
  res_count_ = keep;
  res_next_ = keep % new_cap;
  attrs_.max_dest_rd_atomic = max_dest_rd_atomic;
}

QpAttrs Qp::query() const {
  QpAttrs a = attrs_;
  a.cur_state = attrs_.state;  // the real state (rxe left it unset until Linux 6.13)
  a.sq_draining = attrs_.state == QpState::kSqd && !sq_drained();
  return a;
}

void Qp::set_state(QpState s) {
  attrs_.state = s;
  state_mirror_.store(s, std::memory_order_release);
  if (s != QpState::kErr) error_entered_ = false;
}

void Qp::reset_queues() {
  // RESET discards every WQE without completions (IBTA 10.3.1). The state
  // changes while both producer locks are held, so no poster that read the
  // old state can publish into the emptied queues (post_send, post_recv).
  {
    std::lock_guard<SpinLock> sq_lock(sq_->producer_lock());
    std::unique_lock<SpinLock> rq_lock;
    if (rq_) rq_lock = std::unique_lock<SpinLock>(rq_->producer_lock());
    set_state(QpState::kReset);
    sq_->discard_all();
    if (rq_) rq_->discard_all();
  }
  for (uint32_t i = 0; i < sq_->capacity(); ++i) meta_[i] = SendMeta{};
  sq_comp_ = sq_send_ = sq_->completed();
  send_off_ = 0;
  noack_pkts_ = rd_atomic_inflight_ = 0;
  retransmit_at_ = rnr_until_ = 0;
  need_retry_ = retry_started_ = sq_drained_sent_ = false;
  epsn_ = msn_ = 0;
  seq_nak_sent_ = false;
  in_msg_ = InMsg::kNone;
  have_recv_ = false;
  overrun_recv_pending_ = false;
  recv_off_ = write_resid_ = write_len_ = 0;
  write_host_ = nullptr;
  res_count_ = res_next_ = 0;
  ack_held_ = false;
  for (uint32_t i = 0; i < res_cap_; ++i) res_[i] = RespResource{};
  attrs_ = QpAttrs{};
  attrs_.cap = caps_;
}

// ---- completions ----

bool Qp::push_cqe(CompletionQueue* cq, const Cqe& cqe, bool solicited) {
  dev_->note_completion(cqe);
  const bool was_overflowed = cq->overflowed();
  if (cq->push(cqe, solicited)) return true;
  // CQ overrun (IBTA 11.4.2.1 class G): CQ error event, the QP to ERR. The
  // caller keeps the CQE; the flush delivers it, in order, once the consumer
  // has made room, so even an overrun loses no completion (DESIGN.md
  // section 4: every signaled WQE completes exactly once). Only the state
  // changes here: flushing now would re-enter the caller's retire loop.
  if (!was_overflowed) dev_->raise_event({AsyncEventType::kCqErr, 0, cq});
  if (attrs_.state != QpState::kErr) {
    dev_->raise_event({AsyncEventType::kQpFatal, qpn_});
    mark_error();
  }
  return false;
}

bool Qp::push_owed(CompletionQueue* cq, const Cqe& cqe, bool solicited) {
  // The engine is the CQ's only producer, so room seen here is room for the push.
  dev_->note_completion(cqe);
  return cq->free_slots() != 0 && cq->push(cqe, solicited);
}

Cqe Qp::send_cqe(uint32_t index, WcStatus status) {
  const SendWqe& w = wqe_at(index);
  Cqe c{};
  c.wr_id = w.wr_id;
  c.status = status;
  c.opcode = wc_opcode_for(w.opcode);
  c.byte_len =
      status != WcStatus::kWrFlushErr && is_read_or_atomic(w.opcode)
          ? w.length
          : 0;
  c.qp_num = qpn_;
  return c;
}

void Qp::complete_send_now(uint32_t index, WcStatus status, bool fatal) {
  SendMeta& m = meta_at(index);
  m.started = true;
  m.done = true;
  m.status = status;
  if (index == sq_send_) {
    ++sq_send_;
    send_off_ = 0;
  }
  retire_sends();
  if (status != WcStatus::kSuccess && fatal) enter_error();
}

void Qp::retire_sends() {
  while (sq_comp_ != sq_send_) {
    SendMeta& m = meta_at(sq_comp_);
    if (!m.started || !m.done) break;
    const SendWqe& w = wqe_at(sq_comp_);
    const bool signal = sq_sig_all_ || (w.flags & kSendSignaled) || m.status != WcStatus::kSuccess;
    if (signal && send_cq_->free_slots() == 0) {
      // CQ overrun: the WQE stays, done, for the flush to complete it.
      push_cqe(send_cq_, send_cqe(sq_comp_, m.status), false);
      break;
    }
    retire_send_head(signal, m.status);
  }
  check_sq_drained();
}

void Qp::retire_send_head(bool signal, WcStatus status) {
  // The slot goes back to the poster before its completion is visible, as
  // rxe's do_complete advances the SQ consumer before rxe_cq_post: a
  // program that polled k completions can post k WRs at once. The caller
  // saw room in the CQ (the engine is its only producer).
  const Cqe c = send_cqe(sq_comp_, status);
  meta_at(sq_comp_) = SendMeta{};
  ++sq_comp_;
  sq_->retire(sq_comp_);
  if (signal) send_cq_->push(c, false);
}

bool Qp::sq_drained() const {
  // sq_send_ may hold a WQE that started but is only partly sent.
  return sq_comp_ == sq_send_ &&
         (sq_send_ == sq_->published() || !meta_[sq_send_ & (sq_->capacity() - 1)].started);
}

void Qp::check_sq_drained() {
  if (attrs_.state == QpState::kSqd && !sq_drained_sent_ && attrs_.en_sqd_async_notify &&
      sq_drained()) {
    sq_drained_sent_ = true;
    dev_->raise_event({AsyncEventType::kSqDrained, qpn_});
  }
}

void Qp::post_recv_cqe(WcStatus status, WcOpcode opcode, uint32_t byte_len, uint8_t flags,
                       uint32_t imm_or_inv, uint32_t src_qp, bool solicited) {
  const auto& w = *reinterpret_cast<const RecvWqe*>(recv_copy_.get());
  Cqe c{};
  c.wr_id = w.wr_id;
  c.status = status;
  c.opcode = opcode;
  c.wc_flags = status == WcStatus::kSuccess ? flags : 0;
  c.byte_len = byte_len;
  c.imm_or_inv = imm_or_inv;
  c.qp_num = qpn_;
  c.src_qp = src_qp;
  if (!push_cqe(recv_cq_, c, solicited) && !overrun_recv_pending_) {
    // CQ overrun: kept for the flush (the QP is in ERR now, so no other
    // receive completes before it). The caller goes on as if delivered.
    overrun_recv_cqe_ = c;
    overrun_recv_solicited_ = solicited;
    overrun_recv_pending_ = true;
  }
}

// ---- error state and flush (DESIGN.md section 4) ----

void Qp::mark_error() {
  if (attrs_.state != QpState::kErr) set_state(QpState::kErr);
  if (error_entered_) return;
  error_entered_ = true;
  retransmit_at_ = rnr_until_ = 0;
  need_retry_ = false;
  for (uint32_t i = 0; i < res_cap_; ++i) res_[i].sending = false;
  // In ERR nothing more is received: no message is in progress.
  in_msg_ = InMsg::kNone;
  write_host_ = nullptr;
  write_resid_ = 0;
  if (srq_ != nullptr) dev_->raise_event({AsyncEventType::kQpLastWqeReached, qpn_});
}

void Qp::on_mr_deregistered(uint32_t key) {
  // Only a WRITE into this very MR: another MR over the same memory (another
  // PD's registration of it) still holds it.
  if (in_msg_ != InMsg::kWrite || write_resid_ == 0 || write_host_ == nullptr || write_rkey_ != key) return;
  if (type_ == QpType::kRc) {
    // Class C (IBTA 9.9.3): NAK remote access error at the next PSN expected,
    // which lies inside the WRITE, so the requester completes it in error.
    responder_error(wire::NakCode::kRemoteAccessError, WcStatus::kRemAccessErr, epsn_,
                    dev_->engine_now(), AsyncEventType::kQpAccessErr);
  } else {
    // UC: the rest of the message is dropped, as after a lost FIRST.
    in_msg_ = InMsg::kNone;
    write_host_ = nullptr;
    write_resid_ = 0;
    count_drop(&QpCounters::drop_msg_lost);
  }
}

void Qp::enter_error() {
  mark_error();
  flush_send_queue();
  flush_recv_queue();
}

void Qp::flush_send_queue() {
  // Every WQE not yet completed, and every one posted later, in order: its
  // own status if it already finished, WR_FLUSH_ERR otherwise, signaled or not.
  // A full CQ pauses the flush (rxe drops the CQEs instead): the rest waits
  // in the queue and the next poll goes on once the consumer made room.
  const uint32_t end = sq_->published();
  while (sq_comp_ != end) {
    SendMeta& m = meta_at(sq_comp_);
    const SendWqe& w = wqe_at(sq_comp_);
    const bool finished = m.started && m.done;
    const WcStatus st = finished ? m.status : WcStatus::kWrFlushErr;
    const bool signal = !finished || sq_sig_all_ || (w.flags & kSendSignaled) || st != WcStatus::kSuccess;
    if (signal && send_cq_->free_slots() == 0) break;
    retire_send_head(signal, st);
  }
  sq_send_ = sq_comp_;
  send_off_ = 0;
  rd_atomic_inflight_ = 0;
}

void Qp::flush_recv_queue() {
  // In order: a completion kept on CQ overrun, the receive in progress, then
  // every posted receive. A full CQ pauses the flush, as for the SQ.
  auto flush_cqe = [&](uint64_t wr_id) {
    Cqe c{};
    c.wr_id = wr_id;
    c.status = WcStatus::kWrFlushErr;
    c.opcode = WcOpcode::kRecv;
    c.qp_num = qpn_;
    return push_owed(recv_cq_, c, false);
  };
  if (overrun_recv_pending_) {
    if (!push_owed(recv_cq_, overrun_recv_cqe_, overrun_recv_solicited_)) return;
    overrun_recv_pending_ = false;
  }
  if (have_recv_) {
    if (!flush_cqe(reinterpret_cast<const RecvWqe*>(recv_copy_.get())->wr_id)) return;
    have_recv_ = false;
  }
  if (rq_ == nullptr) return;  // an SRQ is not flushed by its QPs (IBTA 10.2.9.5)
  // Each slot goes back to the poster before its flush completion is
  // visible (as retire_send_head).
  const uint32_t end = rq_->published();
  for (uint32_t i = rq_->completed(); i != end && recv_cq_->free_slots() != 0; ++i) {
    const uint64_t wr_id = reinterpret_cast<const RecvWqe*>(rq_->slot(i))->wr_id;
    rq_->retire(i + 1);
    flush_cqe(wr_id);
  }
}

bool Qp::needs_service() const {
  if (resolve_pending_) return true;
  if (sq_comp_ != sq_->published()) return true;  // to send, in flight, or to flush
  if (attrs_.state == QpState::kErr &&
      ((rq_ && rq_->completed() != rq_->published()) || have_recv_ || overrun_recv_pending_)) {
    return true;  // receives to flush
  }
  if (rnr_until_ != 0 || need_retry_) return true;
  for (uint32_t i = 0; i < res_count_; ++i) {
    if (res_[i].sending) return true;
  }
  return false;
}

bool Qp::copy_sges(const Sge* sge, uint32_t num_sge, uint32_t off, uint8_t* buf, uint32_t len,
                   bool scatter) {
  const uint32_t need = scatter ? uint32_t(kAccessLocalWrite) : 0u;
  uint32_t i = 0;
  while (i < num_sge && off >= sge[i].length) off -= sge[i++].length;
  while (len > 0 && i < num_sge) {
    const uint32_t n = std::min(len, sge[i].length - off);
    uint8_t* host;
    if (dev_->mrs().check(sge[i].lkey, pd_, sge[i].addr + off, n, need, &host) != MrCheck::kOk) {
      DROCE_DEBUG("qp %u: local key 0x%x not valid for [0x%lx, +%u)", qpn_, sge[i].lkey,
                  (unsigned long)(sge[i].addr + off), n);
      return false;
    }
    if (scatter) {
      std::memmove(host, buf, n);  // buf may be a sender's pages (zero-copy), overlapping
    } else {
      std::memcpy(buf, host, n);
    }
    buf += n;
    len -= n;
    off = 0;
    ++i;
  }
  return len == 0;
}

// ---- packets ----

void Qp::address_packet(wire::PacketSpec& s, const wire::MacAddr& dst_mac, uint32_t dst_ip) {
  Port& port = dev_->port();
  s.src_mac = port.mac();
  s.dst_mac = dst_mac;
  s.src_ip = port.ipv4();
  s.dst_ip = dst_ip;
  s.ttl = type_ == QpType::kUd ? 64 : attrs_.av.hop_limit;
  s.tos = type_ == QpType::kUd ? 0 : attrs_.av.traffic_class;
  s.ip_id = dev_->next_ip_id();
  s.udp_src_port = wire::roce_udp_src_port(qpn_, s.dest_qp);
  s.pkey = wire::kDefaultPkey;
}

rte_mbuf* Qp::build_attached(wire::PacketSpec& s, const wire::MacAddr& dst_mac, uint32_t dst_ip,
                             const MrEntry& mr, uint8_t* host) {
  address_packet(s, dst_mac, dst_ip);
  return dev_->build_chain(s, mr, host, header_template());
}

rte_mbuf* Qp::build_packet(wire::PacketSpec& s, const wire::MacAddr& dst_mac, uint32_t dst_ip,
                           uint8_t** payload) {
  address_packet(s, dst_mac, dst_ip);
  rte_mbuf* m = dev_->tx_alloc();
  if (m == nullptr) return nullptr;
  uint8_t* buf = rte_pktmbuf_mtod(m, uint8_t*);
  const size_t off = wire::write_headers(buf, rte_pktmbuf_tailroom(m), s, header_template());
  if (off == 0) {
    rte_pktmbuf_free(m);
    return nullptr;
  }
  m->data_len = uint16_t(wire::frame_len(s));
  m->pkt_len = m->data_len;
  *payload = buf + off;
  return m;
}

void Qp::finish_packet(rte_mbuf* m, const wire::PacketSpec& s) {
  // wire::finish_frame without its ICRC: the pad is zeroed here, the ICRC is
  // written by the Device a few frames later (Device::tx_enqueue says why).
  if (m->nb_segs == 1) wire::zero_pad(rte_pktmbuf_mtod(m, uint8_t*), s);  // else build_chain did
  ++counters_.tx_packets;
  counters_.tx_bytes += s.payload_len;
  dev_->tx_enqueue(m);
}

}  // namespace droce::nic
