// Device: object tables and control commands (IBTA vol. 1, ch. 11 verbs),
// async events, and the engine's poll loop and thread (DESIGN.md section 2).
#include "nic/device.h"

#include <poll.h>
#include <rte_mbuf.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cstring>

#include "nic/base/log.h"
#include "nic/wire/builder.h"

namespace droce::nic {

namespace {

constexpr uint16_t kRxBurst = 32;
// Idle backoff of the engine thread: spin, then yield, then short sleeps
// (woken early by doorbells), so two busy processes share two cores.
constexpr uint32_t kSpinPolls = 2000;
constexpr uint32_t kYieldPolls = 4000;
constexpr int kSleepUs = 50;
// How long after an application's own progress() the engine thread stays aside.
constexpr Nanos kAppProgressNs = 200 * kNanosPerUs;

// After removal nothing new can be created or brought up, as with a
// disassociated kernel device (EIO); destroying and moving to ERR/RESET work.
Status removed_status() { return Status(Errc::kIo, "device removed (port stopped or unplugged)"); }

bool is_v4_mapped(const uint8_t gid[16]) {
  static const uint8_t kPrefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF};
  return std::memcmp(gid, kPrefix, 12) == 0;
}

}  // namespace

Result<std::unique_ptr<Device>> Device::create(std::unique_ptr<Port> port, const Options& opts) {
  if (!port) return Status(Errc::kInvalidArgument, "no port");
  if (port->removed()) return removed_status();
  Port* p = port.get();
  std::unique_ptr<Device> dev(new Device(p, std::move(port), opts));
  if (dev->async_fd_ < 0 || dev->wake_fd_ < 0) return Status(Errc::kNoMemory, "eventfd failed");
  if (opts.engine_thread) dev->thread_ = std::thread([d = dev.get()] { d->engine_loop(); });
  return dev;
}

Result<std::unique_ptr<Device>> Device::create(Port* port, const Options& opts) {
  if (port == nullptr) return Status(Errc::kInvalidArgument, "no port");
  if (port->removed()) return removed_status();
  std::unique_ptr<Device> dev(new Device(port, nullptr, opts));
  if (dev->async_fd_ < 0 || dev->wake_fd_ < 0) return Status(Errc::kNoMemory, "eventfd failed");
  if (opts.engine_thread) dev->thread_ = std::thread([d = dev.get()] { d->engine_loop(); });
  return dev;
}

Device::Device(Port* port, std::unique_ptr<Port> owned, const Options& opts)
    : attr_(opts.attr),
      owned_port_(std::move(owned)),
      port_(port),
      mrs_(opts.attr.max_mr),
      pd_users_(opts.attr.max_pd + 1, 0),
      qps_(std::bit_ceil(std::max<uint32_t>(opts.attr.max_qp, 1))),
      qp_mask_(uint32_t(qps_.size() - 1)),
      ahs_(opts.attr.max_ah + 1) {
  async_fd_ = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK | EFD_SEMAPHORE);
  wake_fd_ = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  live_.reserve(opts.attr.max_qp);
  link_up_.store(port->link_up(), std::memory_order_relaxed);
  // next_link_check_ 0: the first poll checks the link, on the engine's clock.
}

Device::~Device() {
  stop_.store(true, std::memory_order_release);
  if (thread_.joinable()) {
    ring_doorbell();
    thread_.join();
  }
  {
    std::lock_guard<std::mutex> lock(engine_mu_);
    tx_flush();
    live_.clear();
    qps_.clear();
  }
  if (async_fd_ >= 0) close(async_fd_);
  if (wake_fd_ >= 0) close(wake_fd_);
}

std::unique_lock<std::mutex> Device::lock_engine() {
  commands_waiting_.fetch_add(1, std::memory_order_relaxed);
  std::unique_lock<std::mutex> lock(engine_mu_);
  commands_waiting_.fetch_sub(1, std::memory_order_relaxed);
  return lock;
}

// ---- PD, MR ----

Result<uint32_t> Device::alloc_pd() {
  auto lock = lock_engine();
  if (removed_) return removed_status();
  for (uint32_t pd = 1; pd < pd_users_.size(); ++pd) {
    if (pd_users_[pd] == 0) {
      pd_users_[pd] = 1;
      return pd;
    }
  }
  return Status(Errc::kNoMemory, "protection domain table full");
}

Status Device::dealloc_pd(uint32_t pd) {
  auto lock = lock_engine();
  if (pd == 0 || pd >= pd_users_.size() || pd_users_[pd] == 0) {
    return Status(Errc::kInvalidArgument, "no such protection domain");
  }
  if (pd_users_[pd] > 1) return Status(Errc::kBusy, "protection domain still has MRs, QPs or AHs");
  pd_users_[pd] = 0;
  return Status::ok();
}

Result<uint32_t> Device::reg_mr(uint32_t pd, void* addr, uint64_t iova, uint64_t length,
                                uint32_t access) {
  auto lock = lock_engine();
  if (removed_) return removed_status();
  if (pd == 0 || pd >= pd_users_.size() || pd_users_[pd] == 0) {
    return Status(Errc::kInvalidArgument, "no such protection domain");
  }
  if (length > attr_.max_mr_size) return Status(Errc::kInvalidArgument, "region too large");
  auto key = mrs_.reg(pd, addr, iova, length, access);
  if (key) ++pd_users_[pd];
  return key;
}

Status Device::dereg_mr(uint32_t key) {
  auto lock = lock_engine();
  const MrEntry* e = mrs_.find(key);
  if (e == nullptr) return Status(Errc::kInvalidArgument, "no memory region with this key");
  const uint32_t pd = e->pd;
  const uint8_t* host = e->host;
  const uint64_t length = e->length;
  Status st = mrs_.dereg(key);
  if (!st) return st;
  --pd_users_[pd];
  // Under the engine lock: from here the engine never touches the memory.
  // Every access checks the key again, except a WRITE in progress, which
  // keeps a pointer between its packets: fail it now.
  for (Qp* qp : live_) qp->on_mr_deregistered(host, length);
  return st;
}

// ---- CQ ----

Result<CompletionQueue*> Device::create_cq(uint32_t cqe) {
  if (cqe == 0 || cqe > attr_.max_cqe) {
    return Status(Errc::kInvalidArgument, "CQ size must be 1.." + std::to_string(attr_.max_cqe));
  }
  auto lock = lock_engine();
  if (removed_) return removed_status();
  if (cqs_.size() >= attr_.max_cq) return Status(Errc::kNoMemory, "too many CQs");
  auto cq = CompletionQueue::create(cqe);
  if (!cq) return cq.status();
  cqs_.push_back(std::move(cq.value()));
  cq_users_.push_back(0);
  return cqs_.back().get();
}

Status Device::destroy_cq(CompletionQueue* cq) {
  auto lock = lock_engine();
  for (size_t i = 0; i < cqs_.size(); ++i) {
    if (cqs_[i].get() != cq) continue;
    if (cq_users_[i] != 0) return Status(Errc::kBusy, "a QP still uses this CQ");
    cqs_.erase(cqs_.begin() + long(i));
    cq_users_.erase(cq_users_.begin() + long(i));
    return Status::ok();
  }
  return Status(Errc::kInvalidArgument, "no such CQ");
}

// ---- SRQ ----

Result<Srq*> Device::create_srq(uint32_t pd, uint32_t max_wr, uint32_t max_sge) {
  if (max_wr == 0 || max_wr > attr_.max_srq_wr || max_sge == 0 || max_sge > attr_.max_srq_sge) {
    return Status(Errc::kInvalidArgument, "SRQ size or SGE count beyond the device limits");
  }
  auto lock = lock_engine();
  if (removed_) return removed_status();
  if (pd == 0 || pd >= pd_users_.size() || pd_users_[pd] == 0) {
    return Status(Errc::kInvalidArgument, "no such protection domain");
  }
  if (srqs_.size() >= attr_.max_srq) return Status(Errc::kNoMemory, "too many SRQs");
  auto q = SharedReceiveQueue::create(max_wr, max_sge);
  if (!q) return q.status();
  srqs_.push_back(std::make_unique<Srq>(this, pd, max_sge, std::move(q.value())));
  ++pd_users_[pd];
  return srqs_.back().get();
}

Status Device::modify_srq(Srq* srq, uint32_t limit) {
  auto lock = lock_engine();
  return srq->modify_limit(limit);
}

Status Device::destroy_srq(Srq* srq) {
  auto lock = lock_engine();
  for (size_t i = 0; i < srqs_.size(); ++i) {
    if (srqs_[i].get() != srq) continue;
    if (srq->users != 0) return Status(Errc::kBusy, "a QP still uses this SRQ");
    --pd_users_[srq->pd()];
    srqs_.erase(srqs_.begin() + long(i));
    return Status::ok();
  }
  return Status(Errc::kInvalidArgument, "no such SRQ");
}

// ---- QP ----

Result<Qp*> Device::create_qp(const QpInitAttr& in) {
  QpInitAttr init = in;
  if (init.type != QpType::kRc && init.type != QpType::kUc && init.type != QpType::kUd) {
    return Status(Errc::kNotSupported, "QP type not supported (RC, UC and UD are)");
  }
  if (init.send_cq == nullptr || init.recv_cq == nullptr) {
    return Status(Errc::kInvalidArgument, "QP needs a send and a receive CQ");
  }
  QpCaps& c = init.cap;
  if (c.max_send_wr == 0 || c.max_send_wr > attr_.max_qp_wr ||
      (init.srq == nullptr && (c.max_recv_wr == 0 || c.max_recv_wr > attr_.max_qp_wr)) ||
      c.max_send_sge > attr_.max_sge || c.max_recv_sge > attr_.max_sge ||
      c.max_inline_data > attr_.max_inline_data) {
    return Status(Errc::kInvalidArgument, "QP capabilities beyond the device limits");
  }
  c.max_send_sge = std::max<uint32_t>(c.max_send_sge, 1);
  c.max_recv_sge = std::max<uint32_t>(c.max_recv_sge, 1);
  auto lock = lock_engine();
  if (removed_) return removed_status();
  if (init.pd == 0 || init.pd >= pd_users_.size() || pd_users_[init.pd] == 0) {
    return Status(Errc::kInvalidArgument, "no such protection domain");
  }
  auto cq_index = [&](CompletionQueue* cq) -> long {
    for (size_t i = 0; i < cqs_.size(); ++i) {
      if (cqs_[i].get() == cq) return long(i);
    }
    return -1;
  };
  const long scq = cq_index(init.send_cq), rcq = cq_index(init.recv_cq);
  if (scq < 0 || rcq < 0) return Status(Errc::kInvalidArgument, "CQ of another device");
  if (init.srq != nullptr && std::none_of(srqs_.begin(), srqs_.end(),
                                          [&](const auto& q) { return q.get() == init.srq; })) {
    return Status(Errc::kInvalidArgument, "SRQ of another device");
  }
  if (live_.size() >= attr_.max_qp) return Status(Errc::kNoMemory, "too many QPs");
  // The next QPN after the last one handed out whose table slot is free
  // (consecutive QPNs take consecutive slots, so one turn of the table finds
  // one): a destroyed QPN returns only after the space has wrapped.
  uint32_t qpn = next_qpn_;
  while (qps_[qpn & qp_mask_]) qpn = next_qpn_after(qpn);
  next_qpn_ = next_qpn_after(qpn);
  const size_t slot = qpn & qp_mask_;

  auto sq =
      WorkQueue::create(c.max_send_wr, WorkQueue::send_stride(c.max_send_sge, c.max_inline_data));
  if (!sq) return sq.status();
  std::unique_ptr<WorkQueue> rq;
  if (init.srq == nullptr) {
    auto r = WorkQueue::create(c.max_recv_wr, WorkQueue::recv_stride(c.max_recv_sge));
    if (!r) return r.status();
    rq = std::move(r.value());
    c.max_recv_wr = rq->capacity();
  } else {
    c.max_recv_wr = 0;
    c.max_recv_sge = 0;
  }
  c.max_send_wr = sq.value()->capacity();
  // Inline room the slot really has (reported back, as providers do).
  c.max_inline_data = std::max(
      c.max_inline_data, std::min<uint32_t>(attr_.max_inline_data, sq.value()->stride() - 64));
  auto qp = std::make_unique<Qp>(this, qpn, init, std::move(sq.value()), std::move(rq));
  Qp* raw = qp.get();
  qps_[slot] = std::move(qp);
  live_.push_back(raw);
  ++pd_users_[init.pd];
  ++cq_users_[size_t(scq)];
  ++cq_users_[size_t(rcq)];
  if (init.srq != nullptr) ++init.srq->users;
  return raw;
}

Status Device::modify_qp(Qp* qp, const QpAttrs& attrs, uint32_t mask) {
  auto lock = lock_engine();
  if (removed_ && has_attr(mask, QpAttr::kState) && attrs.state != QpState::kErr &&
      attrs.state != QpState::kReset) {
    return removed_status();
  }
  return qp->modify(attrs, mask);
}

QpAttrs Device::query_qp(Qp* qp) {
  auto lock = lock_engine();
  return qp->query();
}

Status Device::destroy_qp(Qp* qp) {
  auto lock = lock_engine();
  const uint32_t slot = qp->qpn() & qp_mask_;
  if (qps_[slot].get() != qp) return Status(Errc::kInvalidArgument, "no such QP");
  live_.erase(std::find(live_.begin(), live_.end(), qp));
  for (size_t i = 0; i < cqs_.size(); ++i) {
    if (cqs_[i].get() == qp->send_cq()) --cq_users_[i];
    if (cqs_[i].get() == qp->recv_cq()) --cq_users_[i];
  }
  --pd_users_[qp->pd()];
  if (qp->srq() != nullptr) --qp->srq()->users;
  qps_[slot].reset();
  return Status::ok();
}

Qp* Device::qp_by_num(uint32_t qpn) {
  Qp* qp = qps_[qpn & qp_mask_].get();
  return qp != nullptr && qp->qpn() == qpn ? qp : nullptr;
}

// ---- AH ----

Result<uint32_t> Device::create_ah(uint32_t pd, const AddressVector& av) {
  if (!is_v4_mapped(av.dgid)) {
    return Status(Errc::kInvalidArgument, "destination GID is not an IPv4-mapped RoCEv2 GID");
  }
  auto lock = lock_engine();
  if (removed_) return removed_status();
  if (pd == 0 || pd >= pd_users_.size() || pd_users_[pd] == 0) {
    return Status(Errc::kInvalidArgument, "no such protection domain");
  }
  for (uint32_t h = 1; h < ahs_.size(); ++h) {
    AhEntry& e = ahs_[h];
    if (e.used) continue;
    e.used = true;
    e.pd = pd;
    e.av = av;
    e.av.dst_ip = uint32_t(av.dgid[12]) << 24 | uint32_t(av.dgid[13]) << 16 |
                  uint32_t(av.dgid[14]) << 8 | av.dgid[15];
    e.generation = uint16_t(e.generation + 1);
    ++pd_users_[pd];
    e.resolve = true;  // ARP starts at the next poll, on the engine's clock
    ahs_to_resolve_ = true;
    return uint32_t(e.generation) << kAhIndexBits | h;
  }
  return Status(Errc::kNoMemory, "address handle table full");
}

Device::AhEntry* Device::ah_entry(uint32_t handle) {
  const uint32_t h = handle & ((1u << kAhIndexBits) - 1);
  if (h == 0 || h >= ahs_.size() || !ahs_[h].used) return nullptr;
  return ahs_[h].generation == handle >> kAhIndexBits ? &ahs_[h] : nullptr;
}

Status Device::destroy_ah(uint32_t ah) {
  auto lock = lock_engine();
  AhEntry* e = ah_entry(ah);
  if (e == nullptr) return Status(Errc::kInvalidArgument, "no such AH");
  e->used = false;
  --pd_users_[e->pd];
  return Status::ok();
}

const AddressVector* Device::ah(uint32_t handle) {
  const AhEntry* e = ah_entry(handle);
  return e != nullptr ? &e->av : nullptr;
}

// ---- removal and events ----

void Device::remove() {
  auto lock = lock_engine();
  remove_locked();
}

// The port is gone (unplugged, detached) or the device is being removed:
// nothing reaches the port any more, every QP goes to ERR and flushes (each
// WQE completes exactly once, DESIGN.md section 4), and the application
// learns it from IBV_EVENT_DEVICE_FATAL, as from a kernel device's removal.
void Device::remove_locked() {
  if (removed_) return;
  removed_ = true;
  for (uint16_t i = 0; i < tx_n_; ++i) rte_pktmbuf_free(tx_[i]);
  tx_n_ = tx_icrc_ = 0;
  if (faults_) faults_->discard_held();
  for (Qp* qp : live_) qp->enter_error();
  if (link_up_.exchange(false, std::memory_order_relaxed)) raise_event({AsyncEventType::kPortErr});
  raise_event({AsyncEventType::kDeviceFatal});
}

void Device::raise_event(const AsyncEvent& ev) {
  {
    std::lock_guard<std::mutex> lock(async_mu_);
    async_.push_back(ev);
  }
  const uint64_t one = 1;
  [[maybe_unused]] ssize_t n = write(async_fd_, &one, sizeof(one));
}

bool Device::get_async_event(AsyncEvent* ev) {
  std::lock_guard<std::mutex> lock(async_mu_);
  if (async_.empty()) return false;
  *ev = async_.front();
  async_.pop_front();
  uint64_t v;
  [[maybe_unused]] ssize_t n = read(async_fd_, &v, sizeof(v));
  return true;
}

// ---- engine ----

// The producer published its WQE (release) before this; the fence orders
// that store before the load of sleeping_, against the engine's store of
// sleeping_ before its last poll (sleep_until_doorbell): either that poll
// sees the WQE, or this load sees the sleeper and wakes it.
void Device::ring_doorbell() {
  std::atomic_thread_fence(std::memory_order_seq_cst);
  if (sleeping_.load(std::memory_order_relaxed)) {
    const uint64_t one = 1;
    [[maybe_unused]] ssize_t n = write(wake_fd_, &one, sizeof(one));
  }
}

rte_mbuf* Device::tx_alloc() {
  if (tx_n_ == kTxBurst) tx_flush();
  rte_mbuf* m = port_->alloc_mbuf();
  if (m == nullptr) ++counters_.tx_no_mbuf;
  return m;
}

namespace {
// The ICRC of a frame the requester/responder built (data_len = whole frame).
void icrc_of(rte_mbuf* m) { wire::write_frame_icrc(rte_pktmbuf_mtod(m, uint8_t*), m->data_len); }
}  // namespace

// Frames arrive here without their ICRC (Qp::finish_packet). Computing it at
// once loads the first 64 bytes right after the header builder's narrow
// stores to them, and that load waits until those stores commit (perf showed
// ~5 % of a 64 KiB WRITE stream on the vpord after the load in icrc_zmm).
// One frame later they have committed and the frame is still in L1, so the
// ICRC is written kIcrcLag frames behind, and for the rest of the batch in
// tx_flush, before anything leaves the device. Measured end to end (bench_rc,
// medians of 5 A/B runs): about 3 % on RcWrite/65536 with kIcrcLag 1; lag 4
// and 16 gained nothing measurable.
void Device::tx_enqueue(rte_mbuf* m) {
  if (removed_) {
    rte_pktmbuf_free(m);
    return;
  }
  tx_[tx_n_++] = m;
  while (tx_n_ - tx_icrc_ > kIcrcLag) icrc_of(tx_[tx_icrc_++]);
  if (tx_n_ == kTxBurst) tx_flush();
}

void Device::tx_flush() {
  if (tx_n_ == 0) return;
  while (tx_icrc_ < tx_n_) icrc_of(tx_[tx_icrc_++]);
  tx_icrc_ = 0;
  if (faults_) {
    faults_->transmit(*port_, tx_, tx_n_, now_);
  } else {
    port_->transmit(tx_, tx_n_);
  }
  tx_n_ = 0;
}

void Device::set_faults(std::unique_ptr<FaultShim> shim) {
  auto lock = lock_engine();
  tx_flush();
  faults_ = std::move(shim);
}

void Device::dispatch(const wire::PacketView& v, Nanos now) {
  const wire::OpcodeInfo& info = *v.op;
  if (info.transport == wire::Transport::kCnp) {
    ++counters_.rx_cnp;  // congestion control is not modelled; counted
    return;
  }
  Qp* qp = qp_by_num(v.bth().dest_qp());
  if (qp == nullptr) {
    ++counters_.rx_no_qp;
    return;
  }
  const wire::Transport want = qp->type() == QpType::kRc   ? wire::Transport::kRc
                               : qp->type() == QpType::kUc ? wire::Transport::kUc
                                                           : wire::Transport::kUd;
  if (info.transport != want) {
    ++counters_.rx_bad_transport;
    return;
  }
  // rxe_recv.c check_type_state: requests need a QP whose receive side runs
  // (RTR, RTS, SQD, SQE); responses one whose send side does (RTS, SQD, SQE).
  const QpState st = qp->state();
  const bool request = info.has(wire::kOpRequest);
  if (st == QpState::kReset || st == QpState::kInit || st == QpState::kErr ||
      (!request && st == QpState::kRtr)) {
    ++counters_.rx_bad_state;
    qp->count_drop();
    return;
  }
  // rxe_recv.c check_addr: a connected QP takes packets from its peer only
  // (the source IPv4 of its destination GID, ::ffff:a.b.c.d), so a host that
  // guesses a QPN and PSN can neither write into its memory nor fail it.
  if (want != wire::Transport::kUd && (v.ipv6 || v.ipv4().src.get() != qp->peer_ip())) {
    ++counters_.rx_bad_src_addr;
    qp->count_bad_src_addr();
    return;
  }
  if ((v.bth().pkey.get() & 0x7FFF) != 0x7FFF) {
    ++counters_.rx_bad_pkey;
    return;
  }
  const RxPacket pkt{&v, now};
  if (request) {
    qp->handle_request(pkt);
  } else {
    qp->handle_response(pkt);
  }
}

void Device::poll(Nanos now) {
  ++counters_.polls;
  now_ = now;
  // Before anything touches the port: DPDK may have released it.
  if (!removed_ && port_->removed()) remove_locked();
  if (!removed_) {
    if (ahs_to_resolve_) resolve_new_ahs(now);
    rte_mbuf* mbufs[kRxBurst];
    wire::PacketView views[kRxBurst];
    const uint16_t n = port_->receive(mbufs, views, kRxBurst, now);
    for (uint16_t i = 0; i < n; ++i) dispatch(views[i], now);
    if (n > 0) rte_pktmbuf_free_bulk(mbufs, n);
    port_->poll(now);
    if (now >= next_link_check_) check_link(now);
  }
  for (Qp* qp : live_) {
    if (!qp->needs_service()) continue;
    qp->run_timers(now);
    qp->run_requester(now);
  }
  tx_flush();
  if (faults_ && !removed_) faults_->poll(*port_, now);  // delayed / reordered frames that are due
}

// create_ah starts resolving the destination (as Linux does when an AH is
// created) here, at the engine's time.
void Device::resolve_new_ahs(Nanos now) {
  ahs_to_resolve_ = false;
  for (AhEntry& e : ahs_) {
    if (!e.resolve) continue;
    e.resolve = false;
    wire::MacAddr mac;
    if (e.used) port_->resolve(e.av.dst_ip, &mac, now);
  }
}

// Once every kLinkCheckNs, not per packet: a link query is a PMD call (an
// ioctl for net_tap). Works for every PMD, with or without LSC interrupts.
// QPs are left alone, as rxe does on a port error: their retry timers decide.
void Device::check_link(Nanos now) {
  next_link_check_ = now + kLinkCheckNs;
  const bool up = port_->link_up();
  if (up == link_up_.load(std::memory_order_relaxed)) return;
  link_up_.store(up, std::memory_order_relaxed);
  raise_event({up ? AsyncEventType::kPortActive : AsyncEventType::kPortErr});
}

bool Device::progress() {
  std::unique_lock<std::mutex> lock(engine_mu_, std::try_to_lock);
  if (!lock.owns_lock()) return false;
  const Nanos now = monotonic_now();
  app_progress_at_.store(now, std::memory_order_relaxed);
  poll(now);
  return true;
}

void Device::engine_loop() {
  uint32_t idle = 0;
  while (!stop_.load(std::memory_order_acquire)) {
    if (commands_waiting_.load(std::memory_order_relaxed) > 0) std::this_thread::yield();
    // An application polling its CQ drives progress itself (run to
    // completion): stand aside instead of fighting it for the lock and the
    // core, and take over again once it has stopped for a while.
    const Nanos aside = monotonic_now() - app_progress_at_.load(std::memory_order_relaxed);
    if (aside < kAppProgressNs) {
      // Sleep out the rest of the window in one go: a wake-up every few
      // microseconds would preempt the application's own polling thread.
      timespec ts{0, static_cast<long>(kAppProgressNs - aside)};
      nanosleep(&ts, nullptr);
      continue;
    }
    if (poll_busy(monotonic_now())) {
      idle = 0;
      continue;
    }
    ++idle;
    if (idle < kSpinPolls) continue;
    if (idle < kYieldPolls) {
      std::this_thread::yield();
      continue;
    }
    if (!sleep_until_doorbell(kSleepUs * kNanosPerUs)) idle = 0;
  }
}

bool Device::poll_busy(Nanos now) {
  std::lock_guard<std::mutex> lock(engine_mu_);
  const uint64_t before = port_->counters().rx_packets + port_->counters().tx_packets;
  poll(now);
  return port_->counters().rx_packets + port_->counters().tx_packets != before;
}

// Announce the sleep, then poll once more: a doorbell rung after the last
// poll but before sleeping_ was set found nobody asleep and wrote nothing
// (ring_doorbell), so its work is done here instead of 50 us later.
bool Device::sleep_until_doorbell(Nanos max_ns) {
  sleeping_.store(true, std::memory_order_relaxed);
  std::atomic_thread_fence(std::memory_order_seq_cst);
  if (poll_busy(monotonic_now())) {
    sleeping_.store(false, std::memory_order_relaxed);
    return false;
  }
  pollfd pfd{wake_fd_, POLLIN, 0};
  timespec ts{time_t(max_ns / kNanosPerSec), long(max_ns % kNanosPerSec)};
  ppoll(&pfd, 1, &ts, nullptr);
  uint64_t v;
  [[maybe_unused]] ssize_t n = read(wake_fd_, &v, sizeof(v));
  sleeping_.store(false, std::memory_order_relaxed);
  return true;
}

}  // namespace droce::nic
