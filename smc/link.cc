// Link: one RC QP of a link group with its work-request bookkeeping (the
// role of Linux 6.1 smc_wr.c and the link parts of smc_core.c): send slots,
// receive buffers, completion dispatch, and teardown in the order of
// DESIGN.md section 6 invariant 2.
#include <sys/mman.h>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <random>
#include <thread>

#include "smc/core.h"
#include "smc/log.h"
#include "smc/runtime.h"
#include "smc/wire/cdc.h"

namespace droce::smc {
namespace {

// wr_id of a send: kind in bits 32-39, slot index below.
enum WrKind : uint64_t { kWrCdc = 1, kWrLlc = 2, kWrLlcV2 = 3, kWrWrite = 4 };
inline uint64_t make_wr_id(WrKind k, uint32_t slot) { return uint64_t(k) << 32 | slot; }
inline WrKind wr_kind(uint64_t id) { return WrKind(id >> 32); }
inline uint32_t wr_slot(uint64_t id) { return uint32_t(id); }

constexpr uint32_t kV2BufOffset = kTxSlots * kSlotBufSize;
constexpr int kPollBatch = 16;
constexpr size_t kSlotArea = kV2BufOffset + wire::kLlcV2MaxLen;
constexpr size_t kRecvArea = size_t(kRecvWrs) * kRecvBufSize;

uint8_t* alloc_pages(size_t bytes) {
  void* p = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  return p == MAP_FAILED ? nullptr : static_cast<uint8_t*>(p);
}

uint32_t random_psn() {
  static thread_local std::mt19937 rng{std::random_device{}()};
  return rng() & 0xFFFFFF;
}

}  // namespace

const char* link_state_name(LinkState s) {
  switch (s) {
    case LinkState::kInit: return "init";
    case LinkState::kRtr: return "rtr";
    case LinkState::kActive: return "active";
    case LinkState::kDown: return "down";
    case LinkState::kFreed: return "freed";
  }
  return "?";
}

Link::Link(LinkGroup* lgr, IbDevice* dev, uint8_t index, uint8_t link_id)
    : lgr_(lgr), dev_(dev), index_(index), link_id_(link_id) {}

Link::~Link() { teardown(); }

bool Link::create(std::string* err) {
  // A teardown (the group ending meanwhile) waits until the objects exist.
  std::lock_guard<std::mutex> tl(teardown_mu_);
  if (state() != LinkState::kInit) {
    *err = "the link was torn down while it was being created";
    return false;
  }
  const Config& cfg = lgr_->runtime()->config();
  pd_ = ibv_alloc_pd(dev_->ctx);
  channel_ = pd_ ? ibv_create_comp_channel(dev_->ctx) : nullptr;
  if (channel_ != nullptr) {
    send_cq_ = ibv_create_cq(dev_->ctx, int(3 * kTxSlots + 4), this, channel_, 0);
    recv_cq_ = ibv_create_cq(dev_->ctx, int(kRecvWrs + 4), this, channel_, 0);
  }
  if (send_cq_ == nullptr || recv_cq_ == nullptr) {
    *err = std::string("creating the link's PD, channel or CQs: ") + std::strerror(errno);
    teardown_locked();
    return false;
  }
  ibv_qp_init_attr ia{};
  ia.send_cq = send_cq_;
  ia.recv_cq = recv_cq_;
  ia.qp_type = IBV_QPT_RC;
  // Up to two RDMA WRITEs per CDC (smc_ib.c: max_send_wr = 3 x buffers),
  // plus the v2 LLC buffer.
  ia.cap.max_send_wr = 3 * kTxSlots + 1;
  ia.cap.max_recv_wr = kRecvWrs;
  ia.cap.max_send_sge = 2;
  ia.cap.max_recv_sge = 1;
  ibv_qp* qp = ibv_create_qp(pd_, &ia);
  {
    std::lock_guard<std::mutex> lk(tx_mu_);  // mark_down reads it under tx_mu_
    qp_ = qp;
  }
  if (qp_ == nullptr) {
    *err = std::string("ibv_create_qp: ") + std::strerror(errno);
    teardown_locked();
    return false;
  }
  qpn_ = qp_->qp_num;
  slot_bufs_ = alloc_pages(kSlotArea);
  recv_bufs_ = alloc_pages(kRecvArea);
  if (slot_bufs_ != nullptr) slot_mr_ = ibv_reg_mr(pd_, slot_bufs_, kSlotArea, IBV_ACCESS_LOCAL_WRITE);
  if (recv_bufs_ != nullptr) recv_mr_ = ibv_reg_mr(pd_, recv_bufs_, kRecvArea, IBV_ACCESS_LOCAL_WRITE);
  if (slot_mr_ == nullptr || recv_mr_ == nullptr) {
    *err = std::string("registering the link's buffers: ") + std::strerror(errno);
    teardown_locked();
    return false;
  }
  psn_ = random_psn();
  last_rx_ms_.store(lgr_->runtime()->now_ms(), std::memory_order_relaxed);
  mtu_ = dev_->active_mtu;
  if (cfg.mtu != 0 && cfg.mtu < mtu_) mtu_ = cfg.mtu;
  if (!qp_to_init(qp_, dev_->port, err)) {
    teardown_locked();
    return false;
  }
  for (uint32_t i = 0; i < kRecvWrs; ++i) {
    if (!post_recv(i)) {
      *err = "posting receive buffers failed";
      teardown_locked();
      return false;
    }
  }
  if (!lgr_->runtime()->watch_link(this, channel_)) {
    *err = "cannot watch the link's completion channel";
    teardown_locked();
    return false;
  }
  arm();
  return true;
}

bool Link::to_rtr(const wire::Gid& peer_gid, uint32_t peer_qpn, uint32_t peer_psn, uint8_t mtu,
                  std::string* err) {
  // Under tx_mu_ like every state change: a concurrent teardown (the group
  // ended meanwhile) has then either not started or left the link down.
  std::lock_guard<std::mutex> lk(tx_mu_);
  if (state_.load(std::memory_order_relaxed) != LinkState::kInit) {
    *err = "link is not in INIT (torn down?)";
    return false;
  }
  peer_gid_ = peer_gid;
  peer_qpn_ = peer_qpn;
  if (mtu != 0 && mtu < mtu_) mtu_ = mtu;
  if (!qp_to_rtr(qp_, dev_->port, dev_->gid_index, peer_gid, peer_qpn, peer_psn, mtu_, err)) return false;
  state_.store(LinkState::kRtr, std::memory_order_release);
  return true;
}

bool Link::to_rts(std::string* err) {
  std::lock_guard<std::mutex> lk(tx_mu_);
  if (state_.load(std::memory_order_relaxed) != LinkState::kRtr) {
    *err = "link is not in RTR";
    return false;
  }
  if (!qp_to_rts(qp_, psn_, err)) return false;
  state_.store(LinkState::kActive, std::memory_order_release);
  return true;
}

bool Link::register_buffer(Buffer* b, std::string* err) {
  if (b->mr[index_] != nullptr) return true;
  const int access = b->is_rmb ? IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_REMOTE_WRITE : IBV_ACCESS_LOCAL_WRITE;
  b->mr[index_] = ibv_reg_mr(pd_, b->data, b->size, access);
  if (b->mr[index_] == nullptr) {
    *err = std::string("ibv_reg_mr: ") + std::strerror(errno);
    return false;
  }
  return true;
}

bool Link::post_recv(uint32_t index) {
  ibv_sge sge{};
  sge.addr = uintptr_t(recv_bufs_ + size_t(index) * kRecvBufSize);
  sge.length = kRecvBufSize;
  sge.lkey = recv_mr_->lkey;
  ibv_recv_wr wr{};
  wr.wr_id = index;
  wr.sg_list = &sge;
  wr.num_sge = 1;
  ibv_recv_wr* bad = nullptr;
  if (ibv_post_recv(qp_, &wr, &bad) != 0) return false;
  recv_posted_.fetch_add(1, std::memory_order_acq_rel);
  return true;
}

// ---------------------------------------------------------------------------
// Send slots

int Link::try_get_slot() {
  std::lock_guard<std::mutex> lk(tx_mu_);
  if (state_.load(std::memory_order_relaxed) != LinkState::kActive) {
    counters_.post_refused.fetch_add(1, std::memory_order_relaxed);
    return -1;
  }
  if (free_mask_ == 0) return -1;
  const int i = __builtin_ctzll(free_mask_);
  free_mask_ &= ~(uint64_t(1) << i);
  slots_used_.fetch_add(1, std::memory_order_acq_rel);
  return i;
}

void Link::release_slot(uint32_t slot) {
  {
    std::lock_guard<std::mutex> lk(tx_mu_);
    slots_[slot] = TxSlot{};
    free_mask_ |= uint64_t(1) << slot;
    slots_used_.fetch_sub(1, std::memory_order_acq_rel);
  }
  slot_cv_.notify_all();
}

void Link::put_slot_unused(uint32_t slot) { release_slot(slot); }

int Link::get_slot(int wait_ms) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(wait_ms);
  const auto spin_end =
      std::chrono::steady_clock::now() +
      std::chrono::microseconds(lgr_->runtime()->config().busy_poll_us);
  for (;;) {
    const int s = try_get_slot();
    if (s >= 0) return s;
    if (!active()) return -1;
    const auto now = std::chrono::steady_clock::now();
    if (now >= deadline) return -1;
    if (now < spin_end) {
      busy_enter();
      const bool got = poll_once();
      busy_exit();
      if (!got) std::this_thread::yield();
      continue;
    }
    {
      std::unique_lock<std::mutex> lk(tx_mu_);
      slot_cv_.wait_for(lk, std::chrono::milliseconds(1),
                        [&] { return free_mask_ != 0 || state_.load() != LinkState::kActive; });
    }
    poll_once();  // never rely on a single wake-up
  }
}

bool Link::post_cdc(uint32_t slot, Connection* conn, const wire::CdcMsg& cdc, const WriteSeg* writes,
                    int num_writes, wire::Cursor sndbuf_fin) {
  uint8_t* buf = slot_bufs_ + size_t(slot) * kSlotBufSize;
  wire::encode_cdc(cdc, std::span<uint8_t, wire::kCdcMsgLen>(buf, wire::kCdcMsgLen));
  ibv_send_wr wr[3]{};
  ibv_sge cdc_sge{};
  for (int i = 0; i < num_writes; ++i) {
    wr[i].wr_id = make_wr_id(kWrWrite, slot);
    wr[i].opcode = IBV_WR_RDMA_WRITE;
    wr[i].sg_list = const_cast<ibv_sge*>(writes[i].sge);
    wr[i].num_sge = writes[i].num_sge;
    wr[i].wr.rdma.remote_addr = writes[i].remote_addr;
    wr[i].wr.rdma.rkey = writes[i].rkey;
    wr[i].next = &wr[i + 1];
  }
  ibv_send_wr& s = wr[num_writes];
  cdc_sge.addr = uintptr_t(buf);
  cdc_sge.length = wire::kCdcMsgLen;
  cdc_sge.lkey = slot_mr_->lkey;
  s.wr_id = make_wr_id(kWrCdc, slot);
  s.opcode = IBV_WR_SEND;
  s.sg_list = &cdc_sge;
  s.num_sge = 1;
  // Signalled for the in-flight reference; solicited because a Linux peer
  // arms its receive CQ for solicited completions only (B8).
  s.send_flags = IBV_SEND_SIGNALED | IBV_SEND_SOLICITED;
  s.next = nullptr;
  // Invariant 1: the reference is taken before the post (release order:
  // whoever sees the completion sees the count).
  conn->cdc_get();
  int rc;
  {
    std::lock_guard<std::mutex> lk(tx_mu_);
    TxSlot& t = slots_[slot];
    t.kind = SlotKind::kCdc;
    t.conn = conn;
    t.sndbuf_fin = sndbuf_fin;
    t.seqno = cdc.seqno;
    ibv_send_wr* bad = nullptr;
    // Invariant 3: only while the QP is in RTS.
    rc = state_.load(std::memory_order_relaxed) == LinkState::kActive ? ibv_post_send(qp_, wr, &bad)
                                                                       : ENOTCONN;
  }
  if (rc != 0) {
    release_slot(slot);
    conn->cdc_put();
    return false;
  }
  counters_.cdc_sent.fetch_add(1, std::memory_order_relaxed);
  counters_.writes_posted.fetch_add(uint64_t(num_writes), std::memory_order_relaxed);
  return true;
}

bool Link::send_llc(const wire::LlcMsg& msg, int wait_ms) {
  uint8_t tmp[wire::kLlcV2MaxLen];
  const size_t len = wire::encode_llc(msg, std::span<uint8_t>(tmp, sizeof(tmp)));
  return len != 0 && send_bytes(tmp, len, wait_ms);
}

bool Link::send_bytes(const uint8_t* tmp, size_t len, int wait_ms) {
  if (len > wire::kLlcV2MaxLen) return false;
  if (len <= wire::kLlcMsgLen) {
    const int slot = get_slot(wait_ms);
    if (slot < 0) return false;
    uint8_t* buf = slot_bufs_ + size_t(slot) * kSlotBufSize;
    std::memcpy(buf, tmp, len);
    ibv_sge sge{uintptr_t(buf), uint32_t(len), slot_mr_->lkey};
    ibv_send_wr wr{};
    wr.wr_id = make_wr_id(kWrLlc, uint32_t(slot));
    wr.opcode = IBV_WR_SEND;
    wr.sg_list = &sge;
    wr.num_sge = 1;
    wr.send_flags = IBV_SEND_SIGNALED | IBV_SEND_SOLICITED;
    int rc;
    {
      std::lock_guard<std::mutex> lk(tx_mu_);
      slots_[slot].kind = SlotKind::kLlc;
      ibv_send_wr* bad = nullptr;
      rc = state_.load(std::memory_order_relaxed) == LinkState::kActive ? ibv_post_send(qp_, &wr, &bad)
                                                                         : ENOTCONN;
    }
    if (rc != 0) {
      release_slot(uint32_t(slot));
      return false;
    }
    counters_.llc_sent.fetch_add(1, std::memory_order_relaxed);
    return true;
  }
  // A v2 LLC longer than 44 bytes goes from the one 8 KiB buffer (as Linux's
  // smc_wr_tx_v2_send): wait until the previous one completed.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(wait_ms);
  for (;;) {
    {
      std::unique_lock<std::mutex> lk(tx_mu_);
      if (state_.load(std::memory_order_relaxed) != LinkState::kActive) return false;
      if (!v2_buf_busy_) {
        v2_buf_busy_ = true;
        slots_used_.fetch_add(1, std::memory_order_acq_rel);
        break;
      }
    }
    if (std::chrono::steady_clock::now() >= deadline) return false;
    if (!poll_once()) std::this_thread::sleep_for(std::chrono::microseconds(100));
  }
  uint8_t* buf = slot_bufs_ + kV2BufOffset;
  std::memcpy(buf, tmp, len);
  ibv_sge sge{uintptr_t(buf), uint32_t(len), slot_mr_->lkey};
  ibv_send_wr wr{};
  wr.wr_id = make_wr_id(kWrLlcV2, 0);
  wr.opcode = IBV_WR_SEND;
  wr.sg_list = &sge;
  wr.num_sge = 1;
  wr.send_flags = IBV_SEND_SIGNALED | IBV_SEND_SOLICITED;
  int rc;
  {
    std::lock_guard<std::mutex> lk(tx_mu_);
    ibv_send_wr* bad = nullptr;
    rc = state_.load(std::memory_order_relaxed) == LinkState::kActive ? ibv_post_send(qp_, &wr, &bad)
                                                                       : ENOTCONN;
    if (rc != 0) {
      v2_buf_busy_ = false;
      slots_used_.fetch_sub(1, std::memory_order_acq_rel);
    }
  }
  if (rc == 0) counters_.llc_sent.fetch_add(1, std::memory_order_relaxed);
  return rc == 0;
}

// ---------------------------------------------------------------------------
// Completions

void Link::on_send_wc(const ibv_wc& wc, bool may_hold) {
  const WrKind kind = wr_kind(wc.wr_id);
  if (wc.status != IBV_WC_SUCCESS) {
    if (wc.status == IBV_WC_WR_FLUSH_ERR) {
      counters_.flushed.fetch_add(1, std::memory_order_relaxed);
    } else {
      counters_.wc_errors.fetch_add(1, std::memory_order_relaxed);
      fail(ibv_wc_status_str(wc.status));
    }
  }
  switch (kind) {
    case kWrWrite:
      return;  // unsignalled: seen only when it failed or was flushed
    case kWrLlc:
      release_slot(wr_slot(wc.wr_id));
      return;
    case kWrLlcV2: {
      {
        std::lock_guard<std::mutex> lk(tx_mu_);
        v2_buf_busy_ = false;
        slots_used_.fetch_sub(1, std::memory_order_acq_rel);
      }
      slot_cv_.notify_all();
      return;
    }
    case kWrCdc: {
      Runtime* rt = lgr_->runtime();
      if (may_hold && rt->hooks().hold_cdc_completion(this, wc)) return;
      const uint32_t slot = wr_slot(wc.wr_id);
      Connection* conn;
      wire::Cursor fin;
      uint16_t seqno;
      {
        std::lock_guard<std::mutex> lk(tx_mu_);
        conn = slots_[slot].conn;
        fin = slots_[slot].sndbuf_fin;
        seqno = slots_[slot].seqno;
      }
      release_slot(slot);
      if (conn == nullptr) return;
      if (wc.status == IBV_WC_SUCCESS) conn->on_cdc_sent(fin, seqno);
      // Invariant 1: the reference goes whatever the status, as the last
      // touch of the connection here.
      conn->cdc_put();
      return;
    }
  }
  counters_.rx_bad_msg.fetch_add(1, std::memory_order_relaxed);
}

void Link::on_recv_wc(const ibv_wc& wc) {
  const uint32_t index = uint32_t(wc.wr_id);
  if (index >= kRecvWrs) return;
  if (wc.status != IBV_WC_SUCCESS) {
    recv_posted_.fetch_sub(1, std::memory_order_acq_rel);
    if (wc.status == IBV_WC_WR_FLUSH_ERR) {
      counters_.flushed.fetch_add(1, std::memory_order_relaxed);
    } else {
      counters_.wc_errors.fetch_add(1, std::memory_order_relaxed);
      fail(ibv_wc_status_str(wc.status));
    }
    return;
  }
  last_rx_ms_.store(lgr_->runtime()->now_ms(), std::memory_order_relaxed);
  dispatch_recv(recv_bufs_ + size_t(index) * kRecvBufSize, std::min(wc.byte_len, kRecvBufSize));
  recv_posted_.fetch_sub(1, std::memory_order_acq_rel);
  const LinkState st = state();
  if (st != LinkState::kDown && st != LinkState::kFreed && !post_recv(index)) fail("ibv_post_recv failed");
}

void Link::dispatch_recv(const uint8_t* msg, uint32_t len) {
  if (len >= 1 && msg[0] == wire::kCdcType) {
    wire::CdcMsg m;
    if (wire::decode_cdc(std::span<const uint8_t>(msg, len), &m) != wire::CdcError::kOk) {
      counters_.rx_bad_msg.fetch_add(1, std::memory_order_relaxed);
      return;
    }
    counters_.cdc_received.fetch_add(1, std::memory_order_relaxed);
    Connection* c = lgr_->find_connection(m.token);
    if (c == nullptr) {
      counters_.rx_unknown_token.fetch_add(1, std::memory_order_relaxed);
      return;
    }
    c->on_cdc(m, this);
    c->put();
    return;
  }
  if (auto& h = lgr_->runtime()->hooks().llc_received) h(this, msg, len);
  wire::LlcMsg m;
  if (wire::decode_llc(std::span<const uint8_t>(msg, len), &m) != wire::LlcError::kOk) {
    counters_.rx_bad_msg.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  counters_.llc_received.fetch_add(1, std::memory_order_relaxed);
  lgr_->on_llc(this, m);
}

int Link::poll_cq_locked(ibv_cq* cq, bool is_send) {
  ibv_wc wc[kPollBatch];
  const int n = ibv_poll_cq(cq, kPollBatch, wc);
  for (int i = 0; i < n; ++i) {
    if (is_send) {
      on_send_wc(wc[i]);
    } else {
      on_recv_wc(wc[i]);
    }
  }
  return n;
}

bool Link::poll_once() {
  std::unique_lock<std::mutex> lk(poll_mu_, std::try_to_lock);
  // The state, not qp_: teardown marks the link freed under poll_mu_ before
  // it destroys (and clears) the verbs objects.
  if (!lk.owns_lock() || state() == LinkState::kFreed) return false;
  const int a = poll_cq_locked(recv_cq_, false);
  const int b = poll_cq_locked(send_cq_, true);
  return a > 0 || b > 0;
}

void Link::drain(bool send, bool recv) {
  std::lock_guard<std::mutex> lk(poll_mu_);
  if (state() == LinkState::kFreed) return;
  while (recv && poll_cq_locked(recv_cq_, false) == kPollBatch) {
  }
  while (send && poll_cq_locked(send_cq_, true) == kPollBatch) {
  }
}

void Link::poll_all() {
  std::lock_guard<std::mutex> lk(poll_mu_);
  if (state() == LinkState::kFreed) return;
  for (;;) {
    const int a = poll_cq_locked(recv_cq_, false);
    const int b = poll_cq_locked(send_cq_, true);
    if (a <= 0 && b <= 0) return;
  }
}

void Link::wait_sends_done(int ms) {
  const auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(ms);
  while (slots_in_flight() != 0 && active() && std::chrono::steady_clock::now() < until) {
    if (!poll_once()) std::this_thread::sleep_for(std::chrono::microseconds(50));
  }
}

void Link::busy_exit() {
  if (busy_pollers_.fetch_sub(1, std::memory_order_acq_rel) == 1) {
    // The last busy poller re-arms (the progress thread left the CQs
    // unarmed meanwhile) and drains what came before the arming: all of it,
    // waiting for a concurrent poller if need be, or a completion that came
    // before the arming would raise no event.
    arm();
    poll_all();
  }
}

void Link::arm() {
  // Under poll_mu_: teardown destroys the CQs only after marking the link
  // freed under the same lock.
  std::lock_guard<std::mutex> lk(poll_mu_);
  if (state() == LinkState::kFreed) return;
  ibv_req_notify_cq(send_cq_, 0);
  ibv_req_notify_cq(recv_cq_, 0);
}

// ---------------------------------------------------------------------------
// Failure and teardown

bool Link::mark_down() {
  ibv_qp* qp;
  {
    std::lock_guard<std::mutex> lk(tx_mu_);
    const LinkState st = state_.load(std::memory_order_relaxed);
    if (st == LinkState::kDown || st == LinkState::kFreed) return false;
    state_.store(LinkState::kDown, std::memory_order_release);
    qp = qp_;
  }
  slot_cv_.notify_all();
  // ERR, never RESET (invariant 2): every posted WQE completes, flushed.
  if (qp != nullptr) qp_to_err(qp);
  return true;
}

void Link::fail(const char* why) {
  if (!mark_down()) return;
  SMC_LOG("link %u of link group %u (QP %u, %s) down: %s", link_id(), lgr_->id(), qpn(), dev_->name.c_str(),
          why);
  lgr_->runtime()->schedule_link_down(lgr_, this, why);
}

void Link::wait_drained(bool receives_too) {
  auto last_note = std::chrono::steady_clock::now();
  while (slots_used_.load(std::memory_order_acquire) != 0 ||
         (receives_too && recv_posted_.load(std::memory_order_acquire) != 0)) {
    if (!poll_once()) std::this_thread::sleep_for(std::chrono::microseconds(200));
    if (std::chrono::steady_clock::now() - last_note > std::chrono::seconds(10)) {
      last_note = std::chrono::steady_clock::now();
      SMC_LOG("link %u: still draining (%u sends, %u receives outstanding)", link_id(), slots_used_.load(),
              recv_posted_.load());
    }
  }
}

void Link::drain_sends() {
  std::lock_guard<std::mutex> tl(teardown_mu_);
  if (state() == LinkState::kFreed) return;
  mark_down();
  if (qp_ != nullptr) wait_drained(false);
}

void Link::trace(const char* step) {
  if (auto& t = lgr_->runtime()->hooks().trace) t(this, step);
}

void Link::teardown() {
  std::lock_guard<std::mutex> tl(teardown_mu_);
  teardown_locked();
}

void Link::teardown_locked() {
  if (state() == LinkState::kFreed) return;
  mark_down();
  if (qp_ != nullptr) {
    // Invariant 2: every posted WQE completes (a flushed CDC still drops
    // its connection reference), then the objects go.
    trace("qp_err");
    wait_drained(true);
  }
  trace("drained");
  if (channel_ != nullptr) lgr_->runtime()->unwatch_link(this, channel_);
  {
    // No thread polls from here on (poll_* check kFreed under poll_mu_).
    std::lock_guard<std::mutex> pl(poll_mu_);
    state_.store(LinkState::kFreed, std::memory_order_release);
  }
  destroy_verbs_objects();
}

void Link::destroy_verbs_objects() {
  // QP, then CQs, then MRs, then PD (invariant 2).
  if (qp_ != nullptr) {
    ibv_destroy_qp(qp_);
    trace("destroy_qp");
  }
  qp_ = nullptr;
  if (send_cq_ != nullptr) ibv_destroy_cq(send_cq_);
  if (recv_cq_ != nullptr) ibv_destroy_cq(recv_cq_);
  if (send_cq_ != nullptr || recv_cq_ != nullptr) trace("destroy_cq");
  send_cq_ = recv_cq_ = nullptr;
  lgr_->deregister_buffers(index_);
  if (slot_mr_ != nullptr) ibv_dereg_mr(slot_mr_);
  if (recv_mr_ != nullptr) ibv_dereg_mr(recv_mr_);
  if (slot_mr_ != nullptr || recv_mr_ != nullptr) trace("dereg_mr");
  slot_mr_ = recv_mr_ = nullptr;
  if (pd_ != nullptr) {
    if (ibv_dealloc_pd(pd_) != 0) SMC_LOG("link %u: ibv_dealloc_pd: %s", link_id(), std::strerror(errno));
    trace("dealloc_pd");
  }
  pd_ = nullptr;
  if (channel_ != nullptr) ibv_destroy_comp_channel(channel_);
  channel_ = nullptr;
  if (slot_bufs_ != nullptr) munmap(slot_bufs_, kSlotArea);
  if (recv_bufs_ != nullptr) munmap(recv_bufs_, kRecvArea);
  slot_bufs_ = recv_bufs_ = nullptr;
}

}  // namespace droce::smc
