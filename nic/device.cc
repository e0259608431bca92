// Device: the object tables (PD, MR, CQ, QP, SRQ, AH) and the control
// commands the driver calls (IBTA vol. 1 ch. 11 verbs), device removal and
// async events. The engine that makes progress is in engine.cc.
#include "nic/device.h"

#include <pthread.h>
#include <rte_mbuf.h>
#include <sched.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cstring>

#include "nic/base/log.h"
#include "nic/telemetry.h"
#include "nic/tun_signals.h"
#include "nic/wire/builder.h"

namespace droce::nic {

namespace {

// After removal nothing new can be created or brought up, as with a
// disassociated kernel device (EIO); destroying and moving to ERR/RESET work.
Status removed_status() { return Status(Errc::kIo, "device removed (port stopped or unplugged)"); }

Status no_such_pd() { return Status(Errc::kInvalidArgument, "no such protection domain"); }

}  // namespace

// The engine thread owns the port's per-frame signal (net_tap) while it runs,
// so that the application's threads are not interrupted by it (tun_signals.h).
// It runs as a DPDK lcore (eal_register_thread), for mempool caches of its
// own: without them every mbuf the PMD allocates and the engine frees was an
// atomic operation on the pool's ring, 17 % of a receiving engine thread's
// time over memif (docs/benchmarks.md "mbuf caches"). The id goes back when
// the thread exits.
void Device::engine_thread_main(bool pinned) {
  const uint16_t port_id = port_->port_id();
  direct_tun_signals(port_id, gettid());
  engine_lcore_.store(eal_register_thread(), std::memory_order_relaxed);
  if (pinned) {
    engine_loop_pinned();
  } else {
    engine_loop();
  }
  engine_lcore_.store(-1, std::memory_order_relaxed);
  direct_tun_signals(port_id, 0);
}

Status Device::start_engine_thread() {
  if (engine_cpu_ < 0) {
    thread_ = std::thread([this] { engine_thread_main(false); });
    return Status::ok();
  }
  if (engine_cpu_ >= CPU_SETSIZE) {
    return Status(Errc::kInvalidArgument,
                  "engine CPU " + std::to_string(engine_cpu_) + " out of range");
  }
  thread_ = std::thread([this] { engine_thread_main(true); });
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(engine_cpu_, &set);
  const int rc = pthread_setaffinity_np(thread_.native_handle(), sizeof(set), &set);
  if (rc != 0) {
    stop_.store(true, std::memory_order_release);
    thread_.join();
    return Status(Errc::kInvalidArgument, "cannot pin the engine thread to CPU " +
                                              std::to_string(engine_cpu_) + ": " +
                                              std::strerror(rc));
  }
  return Status::ok();
}

Result<std::unique_ptr<Device>> Device::create(std::unique_ptr<Port> port, const Options& opts) {
  if (!port) return Status(Errc::kInvalidArgument, "no port");
  if (port->removed()) return removed_status();
  Port* p = port.get();
  std::unique_ptr<Device> dev(new Device(p, std::move(port), opts));
  if (dev->async_fd_ < 0 || dev->wake_fd_ < 0) return Status(Errc::kNoMemory, "eventfd failed");
  if (opts.engine_thread) {
    if (Status st = dev->start_engine_thread(); !st) return st;
  }
  telemetry_add(dev.get());
  return dev;
}

Result<std::unique_ptr<Device>> Device::create(Port* port, const Options& opts) {
  if (port == nullptr) return Status(Errc::kInvalidArgument, "no port");
  if (port->removed()) return removed_status();
  std::unique_ptr<Device> dev(new Device(port, nullptr, opts));
  if (dev->async_fd_ < 0 || dev->wake_fd_ < 0) return Status(Errc::kNoMemory, "eventfd failed");
  if (opts.engine_thread) {
    if (Status st = dev->start_engine_thread(); !st) return st;
  }
  telemetry_add(dev.get());
  return dev;
}

Device::Device(Port* port, std::unique_ptr<Port> owned, const Options& opts)
    : attr_(opts.attr),
      name_(opts.name),
      owned_port_(std::move(owned)),
      port_(port),
      mrs_(opts.attr.max_mr),
      pd_users_(opts.attr.max_pd + 1, 0),
      qps_(std::bit_ceil(std::max<uint32_t>(opts.attr.max_qp, 1))),
      qp_mask_(uint32_t(qps_.size() - 1)),
      ahs_(opts.attr.max_ah + 1),
      coalesce_acks_(opts.coalesce_acks),
      engine_cpu_(opts.engine_cpu),
      zero_copy_min_(opts.zero_copy_min),
      stand_aside_ns_(opts.stand_aside_ns),
      stand_aside_max_sleep_ns_(opts.stand_aside_max_sleep_ns),
      progress_defer_ns_(opts.progress_defer_ns),
      progress_idle_ns_(opts.progress_idle_ns),
      linger_ns_(opts.linger_ns) {
  async_fd_ = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK | EFD_SEMAPHORE);
  wake_fd_ = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  live_.reserve(opts.attr.max_qp);
  link_up_.store(port->link_up(), std::memory_order_relaxed);
  // next_link_check_ 0: the first poll checks the link, on the engine's clock.
  if (port->next_qpn_hint() != 0) next_qpn_ = port->next_qpn_hint();
}

Device::~Device() {
  telemetry_remove(this);  // first: a telemetry read may be waiting for the engine lock
  stop_.store(true, std::memory_order_release);
  if (thread_.joinable()) {
    // Wakes the engine thread from any sleep (idle or standing aside).
    const uint64_t one = 1;
    [[maybe_unused]] ssize_t n = write(wake_fd_, &one, sizeof(one));
    thread_.join();
  }
  {
    std::lock_guard<std::mutex> lock(engine_mu_);
    tx_flush();
    live_.clear();
    qps_.clear();
    port_->set_next_qpn_hint(next_qpn_);
    // Regions left registered: frames still out (a peer port's queue) free
    // their count with the last of them.
    for (uint32_t i = 1; i <= mrs_.capacity(); ++i) close_frame_count(mrs_.slot(i));
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
  if (!pd_exists(pd)) return no_such_pd();
  if (pd_users_[pd] > 1) return Status(Errc::kBusy, "protection domain still has MRs, QPs or AHs");
  pd_users_[pd] = 0;
  return Status::ok();
}

Result<uint32_t> Device::reg_mr(uint32_t pd, void* addr, uint64_t iova, uint64_t length,
                                uint32_t access) {
  auto lock = lock_engine();
  if (removed_) return removed_status();
  if (!pd_exists(pd)) return no_such_pd();
  if (length > attr_.max_mr_size) return Status(Errc::kInvalidArgument, "region too large");
  auto key = mrs_.reg(pd, addr, iova, length, access);
  if (key) {
    ++pd_users_[pd];
    open_frame_count(*mrs_.find(key.value()));
  }
  return key;
}

Status Device::dereg_mr(uint32_t key) {
  auto lock = lock_engine();
  MrEntry* e = mrs_.find(key);
  if (e == nullptr) return Status(Errc::kInvalidArgument, "no memory region with this key");
  // No frame points into the pages once dereg_mr returns (zero_copy.cc).
  if (e->users == 0) {
    if (Status st = drain_frames(lock, key); !st) return st;
    e = mrs_.find(key);
    if (e == nullptr) return Status(Errc::kInvalidArgument, "no memory region with this key");
  }
  const uint32_t pd = e->pd;
  MrEntry saved = *e;
  Status st = mrs_.dereg(key);
  if (!st) return st;
  close_frame_count(saved);
  --pd_users_[pd];
  // Under the engine lock: from here the engine never touches the memory.
  // Every access checks the key again, except a WRITE in progress, which
  // keeps a pointer between its packets: fail it now.
  for (Qp* qp : live_) qp->on_mr_deregistered(key);
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

Status Device::resize_cq(CompletionQueue* cq, uint32_t cqe) {
  if (cqe == 0 || cqe > attr_.max_cqe) {
    return Status(Errc::kInvalidArgument, "CQ size must be 1.." + std::to_string(attr_.max_cqe));
  }
  auto lock = lock_engine();  // no push while the ring moves
  return cq->resize(cqe);
}

Status Device::enable_cq_timestamps(CompletionQueue* cq) {
  auto lock = lock_engine();  // no push meanwhile
  return cq->enable_timestamps();
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
  if (!pd_exists(pd)) return no_such_pd();
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

Status Device::modify_srq(Srq* srq, const SrqChange& c) {
  auto lock = lock_engine();  // the engine takes receives meanwhile otherwise
  const uint32_t new_capacity = c.resize ? std::bit_ceil(c.max_wr) : srq->capacity();
  if (c.set_limit && c.limit > new_capacity) {
    return Status(Errc::kInvalidArgument, "SRQ limit above its size");
  }
  if (c.resize) {
    // The limit that will be armed: rxe refuses a size below it.
    const uint32_t limit = c.set_limit ? c.limit : srq->limit();
    if (limit != 0 && c.max_wr < limit) {
      return Status(Errc::kInvalidArgument, "max_wr below the armed SRQ limit");
    }
    // The new limit is armed below; the old one must not refuse the size.
    const uint32_t old_limit = srq->limit();
    if (c.set_limit) (void)srq->modify_limit(0);
    if (Status st = srq->resize(c.max_wr); !st) {
      (void)srq->modify_limit(old_limit);
      return st;
    }
  }
  return c.set_limit ? srq->modify_limit(c.limit) : Status::ok();
}

Device::SrqState Device::query_srq(Srq* srq) {
  auto lock = lock_engine();
  return {srq->capacity(), srq->limit()};
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
  if (!pd_exists(init.pd)) return no_such_pd();
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
  uint32_t dst_ip;
  if (!gid_to_ipv4(av.dgid, &dst_ip)) {
    return Status(Errc::kInvalidArgument, "destination GID is not an IPv4-mapped RoCEv2 GID");
  }
  auto lock = lock_engine();
  if (removed_) return removed_status();
  if (!pd_exists(pd)) return no_such_pd();
  for (uint32_t h = 1; h < ahs_.size(); ++h) {
    AhEntry& e = ahs_[h];
    if (e.used) continue;
    e.used = true;
    e.pd = pd;
    e.av = av;
    e.av.dst_ip = dst_ip;
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

Status Device::read_local(uint32_t lkey, uint32_t pd, uint64_t addr, void* dst, uint32_t len) {
  auto lock = lock_engine();
  uint8_t* host = nullptr;
  const MrCheck c = mrs_.check(lkey, pd, addr, len, 0, &host);
  if (c != MrCheck::kOk) return Status(Errc::kInvalidArgument, mr_check_name(c));
  if (len > 0) std::memcpy(dst, host, len);
  return Status::ok();
}

ArpResult Device::resolve_neighbor(uint32_t ip, wire::MacAddr* mac) {
  auto lock = lock_engine();
  if (removed_) return ArpResult::kFailed;
  return port_->resolve(ip, mac, now_);
}

Device::PortState Device::query_port() {
  auto lock = lock_engine();
  if (removed_) return {false, 0};
  return {port_->link_up(), port_->link_speed_mbps()};
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

}  // namespace droce::nic
