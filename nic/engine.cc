// The engine (DESIGN.md section 2): one poll(now) receives a burst, checks
// each packet against its QP (rxe_recv.c hdr_check) and hands it to the
// responder or completer, runs the requesters and timers, and sends one
// transmit batch; the engine thread runs it with an idle backoff, and checks
// the port's link. Control commands are in device.cc.
#include <poll.h>
#include <rte_mbuf.h>
#include <unistd.h>

#include <algorithm>
#include <thread>

#include "nic/base/log.h"
#include "nic/base/tsan.h"
#include "nic/device.h"
#include "nic/wire/builder.h"

namespace droce::nic {

namespace {

// Idle backoff of the engine thread: spin, then yield, then sleep until
// there is work (docs/engine.md "Progress"), so two busy processes share two
// cores.
constexpr uint32_t kSpinPolls = 2000;
constexpr uint32_t kYieldPolls = 4000;
// The idle sleep on a port without a receive interrupt: only a doorbell or
// this timer ends it, so a frame may wait for it.
constexpr Nanos kSleepNs = 50 * kNanosPerUs;
// With one, the first frame ends the sleep; the timer is there for the QPs'
// timers (retransmit, RNR), ARP retries and the link check, and for a memif
// interrupt lost to the sender's unfenced check of the mask bit (the sender
// stores its ring index and then loads the bit without a fence between; see
// nic/port_rx_intr.cc).
constexpr Nanos kSleepRxIntrNs = kNanosPerMs;
// The engine thread's idle sleep arms the receive interrupt where the port
// has one: the first frame ends it, not the 50 us timer. (Off until c7ec85b:
// with it Debian's ibv_rc_pingpong over memif had fallen from 3 - 13 to
// 176 - 300 usec/iter, and the cause was the thread's going back to sleep
// right after each wake-up, one wake-up a frame, which c7ec85b fixed.)
// Also in the ThreadSanitizer build since the port reads the memif PMD's
// state only on DPDK's interrupt thread (nic/port_rx_intr.cc); before, that
// build slept on the timer, as TSan reported the engine thread's reads of
// state the interrupt thread set up.
constexpr bool kIdleSleepOnRxInterrupt = true;
// The longest one arm of the receive interrupt lasts while standing aside.
constexpr Nanos kStandAsideRearmNs = 50 * kNanosPerMs;
// How long after the last RDMA WRITE (or atomic) into this device the
// application's completions still open the receive interrupt: a program
// that polls memory for WRITEs (ib_write_lat) gets one at least every round
// trip; one that polls its CQ for SENDs (ibv_rc_pingpong) gets none, and
// frames it takes from poll_cq need no wake-up.
constexpr Nanos kSilentWriteRecentNs = kNanosPerSec;
// Device::linger: after this many misses in a row, each further miss skips
// the next 1, 2, 4 .. 2^kLingerBackoffMaxShift calls.
constexpr uint32_t kLingerMissesBeforeBackoff = 4;
constexpr uint32_t kLingerBackoffMaxShift = 10;
timespec to_timespec(Nanos ns) { return timespec{time_t(ns / kNanosPerSec), long(ns % kNanosPerSec)}; }

}  // namespace

// The producer published its WQE (release) before this; the fence orders
// that store before the load of sleeping_, against the engine's store of
// sleeping_ before its last poll (sleep_until_work): either that poll
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

// The ICRC of a frame the requester/responder built: one segment (data_len =
// whole frame), or the chain of a zero-copy payload (zero_copy.cc).
void Device::icrc_of(rte_mbuf* m) {
  if (m->nb_segs == 1) {
    wire::write_frame_icrc(rte_pktmbuf_mtod(m, uint8_t*), m->data_len);
  } else {
    chain_icrc(m);
  }
}

// Frames arrive here without their ICRC (Qp::finish_packet). Computing it at
// once loads the first 64 bytes right after the header builder's narrow
// stores to them, and that load waits until those stores commit. One frame
// later they have committed and the frame is still in L1, so the ICRC
// (RoCEv2 annex A17) is written kIcrcLag frames behind, and for the rest
// of the batch in tx_flush, before anything leaves the device
// (docs/benchmarks.md has the measurements).
void Device::tx_enqueue(rte_mbuf* m) {
  if (removed_) {
    ++counters_.tx_after_removal;
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

// ACK coalescing (IBTA 9.7.5.1.2: an ACK acknowledges every PSN before the
// one it carries). While one receive burst is dispatched, a QP answering
// requests that asked for an ACK holds one ACK with the latest PSN instead of
// sending one per request; the ACKs leave here, after the burst, still in the
// same transmit batch as before. NAKs, RNR NAKs, READ responses and atomic
// replies are never held: the QP sends a held ACK just before them, so
// responses stay in PSN order (Qp::hold_ack).
bool Device::defer_ack(Qp* qp) {
  if (!coalesce_acks_ || n_deferred_acks_ == kRxBurst) return false;
  deferred_acks_[n_deferred_acks_++] = qp;
  return true;
}

void Device::send_deferred_acks(Nanos now) {
  for (uint16_t i = 0; i < n_deferred_acks_; ++i) deferred_acks_[i]->send_deferred_ack(now);
  n_deferred_acks_ = 0;
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
  if (v.bth().dest_qp() == kGsiQpn) {
    gsi_.receive(v);  // the CM agent's MADs (nic/gsi.h)
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
    qp->count_drop(&QpCounters::drop_bad_state);
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
  // A request that changes memory without a completion on this side (RDMA
  // WRITE without immediate, atomics): a program may be waiting for it by
  // polling memory (app_leaves_poll).
  if (request && !info.has(wire::kOpImm) &&
      (info.has(wire::kOpWrite) || info.has(wire::kOpAtomic) || info.has(wire::kOpAtomicWrite))) {
    silent_write_at_ = now;
    silent_writes_.store(silent_writes_.load(std::memory_order_relaxed) + 1,
                         std::memory_order_relaxed);
    // At once, whoever polls: when the engine thread took the WRITE, the
    // application's last progress() may have come before it, and a
    // stand-aside armed from that stale hint would stay quiet for the next
    // WRITE (progress() clears it again once WRITEs stop).
    if (!app_needs_interrupt_.load(std::memory_order_relaxed)) {
      app_needs_interrupt_.store(true, std::memory_order_relaxed);
    }
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
    const uint16_t n = port_->receive(rx_mbufs_, rx_views_, kRxBurst, now);
    for (uint16_t i = 0; i < n; ++i) dispatch(rx_views_[i], now);
    send_deferred_acks(now);
    if (n > 0) rte_pktmbuf_free_bulk(rx_mbufs_, n);
    port_->poll(now);
    if (now >= next_link_check_) check_link(now);
    gsi_.transmit(*this, now);
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

namespace {
// Tells application threads apart for Device::progress (the address of a
// thread-local byte: unique among live threads, never 0).
uintptr_t this_thread_token() {
  static thread_local char token;
  return reinterpret_cast<uintptr_t>(&token);
}

// The calling thread has taken no completion from any CQ in the last
// idle_ns (as far as its calls here saw), or never took one.
bool thread_idle(Nanos now, Nanos idle_ns) {
  static thread_local uint64_t seen = 0;
  static thread_local Nanos active_at = 0;
  const uint64_t taken = CompletionQueue::taken_by_this_thread();
  if (taken == 0) return true;
  if (taken != seen) {
    seen = taken;
    active_at = now;
  }
  return now - active_at >= idle_ns;
}
}  // namespace

// Application threads polling CQs of one device. A thread that has taken no
// completion from any CQ for Options::progress_idle_ns (100 us: it waits on
// an idle connection) leaves the engine to the driver, the last thread that
// called here while taking completions, if that call was in the last
// Options::progress_defer_ns (20 us): the driver's runs deliver every QP's
// completions, the idle thread's too. A thread that takes completions
// becomes the driver when it calls progress(), even when it finds the lock
// taken (by an idle thread, which steps back at its next call); an idle
// thread's own runs make it no driver. Without this, a thread busy-polling
// an idle CQ ran the engine on nearly every poll, took the work of the
// thread that posts and polls, and the device's state moved between the two
// cores at each turn (BM_DeviceLockPostAndPoll, docs/benchmarks.md). A
// driver that stops (blocks, works elsewhere) hands over within
// progress_defer_ns; threads that take completions never wait for one
// another beyond the try_lock, and a thread alone is never deferred.
bool Device::progress() {
  // A pinned engine polls without pause: the application leaves it the lock.
  if (engine_cpu_ >= 0) return false;
  // Stamped even when the engine thread holds the lock: the application
  // polls (the stand-aside window and stand_aside's wake-ups go by this).
  const Nanos now = monotonic_now();
  // Stores only when the time moved on by a microsecond: the line is read
  // by the other threads polling, and each store would take it from them.
  if (now - app_progress_at_.load(std::memory_order_relaxed) >= kNanosPerUs) {
    app_progress_at_.store(now, std::memory_order_relaxed);
  }
  const uintptr_t me = this_thread_token();
  const uintptr_t driver = driver_.load(std::memory_order_relaxed);
  const bool idle = thread_idle(now, progress_idle_ns_);
  if (idle && driver != me && driver != 0) {
    // The driver may have stamped a time later than this thread's now.
    const Nanos at = driver_at_.load(std::memory_order_relaxed);
    if (now < at + progress_defer_ns_) return false;
  }
  if (!idle) {  // stamped before the try_lock: an idle thread holding it steps back next time
    if (driver != me) driver_.store(me, std::memory_order_relaxed);
    const Nanos at = driver_at_.load(std::memory_order_relaxed);
    if (driver != me || now < at || now - at >= kNanosPerUs) {
      driver_at_.store(now, std::memory_order_relaxed);
    }
  }
  std::unique_lock<std::mutex> lock(engine_mu_, std::try_to_lock);
  if (!lock.owns_lock()) return false;
  // An application thread that runs the engine gets mempool caches of its
  // own as the engine thread does (the thread that started EAL has them).
  static thread_local bool lcore_asked = false;
  if (!lcore_asked) [[unlikely]] {
    lcore_asked = true;
    eal_register_thread();
  }
  port_->quiet_rx_interrupt();  // this thread takes the frames while it polls
  if (app_blocks_.load(std::memory_order_relaxed)) app_blocks_.store(false, std::memory_order_relaxed);
  poll(now);
  const bool writes = silent_write_at_ != 0 && now - silent_write_at_ < kSilentWriteRecentNs;
  if (writes != app_needs_interrupt_.load(std::memory_order_relaxed)) {
    app_needs_interrupt_.store(writes, std::memory_order_relaxed);
  }
  return true;
}

void Device::app_leaves_poll() {
  if (engine_cpu_ >= 0) return;
  // Only where a program may be waiting on memory: frames that complete
  // nothing on this side came lately (progress() looks). Any other frame
  // the application takes from poll_cq, and a pause is covered by the
  // stand-aside timer.
  if (app_needs_interrupt_.load(std::memory_order_relaxed)) port_->open_rx_interrupt();
}

void Device::app_took_completions(bool own_requests_only) {
  if (engine_cpu_ >= 0) return;
  if (own_requests_only && linger_ns_ > 0 && app_needs_interrupt_.load(std::memory_order_relaxed) &&
      linger()) {
    // The program has what it waited for and comes back to poll_cq for its
    // next request's completion: no interrupt meanwhile (a frame then would
    // wake the engine thread for nothing and preempt a program on a busy
    // machine). A pause is covered by the stand-aside window's timer.
    return;
  }
  app_leaves_poll();
}

// A program that waits on memory for its peer's WRITE (ib_write_lat) takes
// its own WRITE's completion first, and the peer's WRITE follows within a few
// microseconds once the peer saw ours (or a wake-up later, when the peer's
// own engine thread had to take ours). Polling for it here costs this thread
// nothing it would not spend spinning on memory, and saves the engine
// thread's wake-up (docs/engine.md "Progress"). A few misses in a row (a
// program whose WRITEs come at other moments) start a backoff, so such a
// program loses linger_ns in about a thousand calls; scattered misses do not,
// since two programs that both linger would otherwise fall out of step.
bool Device::linger() {
  const uint32_t skip = linger_skip_.load(std::memory_order_relaxed);
  if (skip > 0) {
    linger_skip_.store(skip - 1, std::memory_order_relaxed);
    return false;
  }
  const uint64_t seen = silent_writes_.load(std::memory_order_relaxed);
  const uint64_t news = news_.load(std::memory_order_relaxed);
  const Nanos until = monotonic_now() + linger_ns_;
  for (;;) {
    progress();
    if (silent_writes_.load(std::memory_order_relaxed) != seen) {
      lingers_caught_.fetch_add(1, std::memory_order_relaxed);
      linger_misses_.store(0, std::memory_order_relaxed);
      return true;
    }
    // A receive (on any CQ of the device: a program that serves several
    // peers from one thread, SMC-R's link) or a failure: the program has
    // something to act on now. No backoff: the linger did not go wrong.
    if (news_.load(std::memory_order_relaxed) != news) {
      lingers_cut_.fetch_add(1, std::memory_order_relaxed);
      return false;
    }
    if (monotonic_now() >= until) break;
    __builtin_ia32_pause();
  }
  lingers_missed_.fetch_add(1, std::memory_order_relaxed);
  const uint32_t misses = linger_misses_.load(std::memory_order_relaxed) + 1;
  linger_misses_.store(misses, std::memory_order_relaxed);
  if (misses >= kLingerMissesBeforeBackoff) {
    const uint32_t shift = std::min<uint32_t>(misses - kLingerMissesBeforeBackoff, kLingerBackoffMaxShift);
    linger_skip_.store(1u << shift, std::memory_order_relaxed);
  }
  return false;
}

void Device::app_waits_for_event() {
  if (engine_cpu_ >= 0) return;
  app_blocks_.store(true, std::memory_order_relaxed);
  port_->open_rx_interrupt();
}

void Device::engine_loop() {
  uint32_t idle = 0;
  while (!stop_.load(std::memory_order_acquire)) {
    if (commands_waiting_.load(std::memory_order_relaxed) > 0) std::this_thread::yield();
    // An application polling its CQ drives progress itself (run to
    // completion): stand aside instead of fighting it for the lock and the
    // core, and take over again once it has stopped for a while.
    const Nanos aside = monotonic_now() - app_progress_at_.load(std::memory_order_relaxed);
    if (aside < stand_aside_ns_) {
      stand_aside();
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
    // A sleep that woke to work starts the backoff over, as work found by
    // poll_busy does: a request/response peer (ib_read_lat's READs, which
    // this thread alone serves) sends its next request a round trip later,
    // and a thread that went straight back to sleep took each one a timer
    // late (about 125 us a READ over memif instead of 3).
    bool woke_to_work = false;
    if (!sleep_until_work(0, kIdleSleepOnRxInterrupt, &woke_to_work) || woke_to_work) idle = 0;
  }
}

// The application drives progress from poll_cq, but may stop calling it at
// any moment and wait by polling memory instead (ib_write_lat, a
// WRITE-with-flag protocol, SMC-R's RMB): then a frame that arrives needs the
// engine thread. So the thread sleeps on the port's receive interrupt for as
// long as the application keeps polling (the window moves with each of its
// polls), and each frame wakes it: it takes the lock and polls once (nothing
// to do when the application's poll got the frame first), and sleeps again.
// It never spins beside the application. A port without a receive interrupt
// sleeps out the window on a timer instead, as before.
void Device::stand_aside() {
  int fd;
  {
    std::lock_guard<std::mutex> lock(engine_mu_);
    fd = port_->arm_rx_interrupt(app_blocks_.load(std::memory_order_relaxed) ||
                                 app_needs_interrupt_.load(std::memory_order_relaxed));
    ++counters_.sleeps;
    if (fd >= 0) {
      ++counters_.sleeps_rx_interrupt;
      // A frame that came before the arm raised no interrupt: received here.
      poll(monotonic_now());
    }
  }
  if (fd < 0) {
    // Sleep out the rest of the window in one go: a wake-up every few
    // microseconds would preempt the application's own polling thread. At
    // most kSleepRxIntrNs, though: a memif port whose link just came up has
    // its interrupt a moment later (nic/port_rx_intr.cc).
    const Nanos aside = monotonic_now() - app_progress_at_.load(std::memory_order_relaxed);
    if (aside < stand_aside_ns_) {
      const timespec ts = to_timespec(std::min(stand_aside_ns_ - aside, kSleepRxIntrNs));
      nanosleep(&ts, nullptr);
    }
    std::lock_guard<std::mutex> lock(engine_mu_);
    ++counters_.wakes_timeout;
    return;
  }
  bool woken = false;
  // Re-armed now and then, so the port checks that the memif ring it armed
  // is still the PMD's (a peer that reconnected has a new one) while an
  // application keeps this thread aside for long.
  const Nanos rearm_at = monotonic_now() + kStandAsideRearmNs;
  // Beyond the window: a timer wake-up that finds the application still
  // polling preempts it (or its peer) on a busy machine and then sleeps
  // again, about 5000 times a second with a 200 us window (ibv_rc_pingpong
  // over memif: 0.84x the time without them, docs/benchmarks.md). So each
  // such wake-up doubles the time slept past the window, up to
  // stand_aside_max_sleep_ns_, while the program takes what arrives from
  // its CQ.
  Nanos beyond = 0;
  while (!stop_.load(std::memory_order_relaxed) &&
         commands_waiting_.load(std::memory_order_relaxed) == 0) {
    const Nanos now = monotonic_now();
    const Nanos aside = now - app_progress_at_.load(std::memory_order_relaxed);
    if (aside >= stand_aside_ns_ || now >= rearm_at) break;
    // wake_fd_: doorbells write it only to an idle sleeper (sleeping_), so
    // here it is the destructor's stop.
    pollfd pfd[2] = {{fd, POLLIN, 0}, {wake_fd_, POLLIN, 0}};
    const timespec ts = to_timespec(stand_aside_ns_ - aside + beyond);
    const int r = ppoll(pfd, 2, &ts, nullptr);
    if (r == 0) {
      // The timer: the application polled since this sleep began (else the
      // window is over and the loop ends).
      const Nanos t = monotonic_now();
      if (t - app_progress_at_.load(std::memory_order_relaxed) < stand_aside_ns_ && t < rearm_at) {
        std::lock_guard<std::mutex> lock(engine_mu_);
        ++counters_.wakes_aside_timer;
        // Not while RDMA WRITEs or atomics come in: the program may wait on
        // memory between its polls, and a linger that caught a WRITE leaves
        // the interrupt closed, so the window's timer is what takes the
        // next frame when the program does not poll again soon
        // (app_took_completions).
        beyond = app_needs_interrupt_.load(std::memory_order_relaxed)
                     ? 0
                     : std::min(std::max(2 * beyond, stand_aside_ns_), stand_aside_max_sleep_ns_);
      }
      continue;
    }
    if (r < 0 || (pfd[0].revents & POLLIN) == 0) continue;
    const Nanos woke = monotonic_now();
    std::lock_guard<std::mutex> lock(engine_mu_);
    ++counters_.wakes_rx_interrupt;
    ++counters_.sleeps;
    ++counters_.sleeps_rx_interrupt;
    woken = true;
    // Needless when the application's poll got there first, or polled its
    // CQ while this thread was waking and polling: then the interrupt goes
    // quiet (its next empty poll would quieten it too).
    const bool frames = port_->rx_interrupt_taken();
    if (frames) poll(monotonic_now());
    // (app_progress_at_ moves in steps of at least 1 us: a poll within 1 us
    // of an earlier one is not seen here, and the wake-up counts as needed.)
    if (!frames || app_progress_at_.load(std::memory_order_relaxed) >= woke) {
      ++counters_.wakes_rx_interrupt_needless;
      port_->quiet_rx_interrupt();
    }
  }
  std::lock_guard<std::mutex> lock(engine_mu_);
  port_->disarm_rx_interrupt();
  // Every sleep ends with one reason: the last one ran out (window over) or
  // was cut short by a command or stop.
  ++counters_.wakes_timeout;
  (void)woken;
}

// DROCE_ENGINE_CPU: a core of the engine's own. It polls without pause, so a
// frame is handled as soon as it arrives and a program that waits by polling
// memory (a WRITE's last byte) sees it at once. A control command waiting for
// the lock gets it first: yielding the CPU is not enough on a core nothing
// else runs on (the engine would take the mutex back before the waiter,
// woken on another CPU, got to it), so the engine keeps off the lock until
// the waiter holds it (lock_engine counts itself out once it does).
void Device::engine_loop_pinned() {
  while (!stop_.load(std::memory_order_acquire)) {
    while (commands_waiting_.load(std::memory_order_relaxed) > 0 &&
           !stop_.load(std::memory_order_relaxed)) {
      __builtin_ia32_pause();
    }
    poll_busy(monotonic_now());
  }
}

bool Device::poll_busy(Nanos now) {
  std::lock_guard<std::mutex> lock(engine_mu_);
  return poll_moved(now);
}

bool Device::poll_moved(Nanos now) {
  const uint64_t before = port_->counters().rx_packets + port_->counters().tx_packets;
  poll(now);
  return port_->counters().rx_packets + port_->counters().tx_packets != before;
}

// Announce the sleep and arm the port's receive interrupt, then poll once
// more: a doorbell rung after the last poll but before sleeping_ was set
// found nobody asleep and wrote nothing (ring_doorbell), and a frame that
// arrived before the arm raised no interrupt, so their work is done here
// instead of after the sleep. Then sleep until a doorbell, a frame or the
// timer, and poll for what woke the thread.
bool Device::sleep_until_work(Nanos max_ns, bool arm_rx, bool* woke_to_work) {
  sleeping_.store(true, std::memory_order_relaxed);
  std::atomic_thread_fence(std::memory_order_seq_cst);
  int rx_fd;
  {
    std::lock_guard<std::mutex> lock(engine_mu_);
    rx_fd = arm_rx ? port_->arm_rx_interrupt(true) : -1;
    if (poll_moved(monotonic_now())) {
      port_->disarm_rx_interrupt();
      sleeping_.store(false, std::memory_order_relaxed);
      return false;
    }
    ++counters_.sleeps;
    if (rx_fd >= 0) ++counters_.sleeps_rx_interrupt;
  }
  pollfd pfd[2] = {{wake_fd_, POLLIN, 0}, {rx_fd, POLLIN, 0}};
  const timespec ts = to_timespec(max_ns > 0 ? max_ns : rx_fd >= 0 ? kSleepRxIntrNs : kSleepNs);
  ppoll(pfd, rx_fd >= 0 ? 2 : 1, &ts, nullptr);
  uint64_t v;
  [[maybe_unused]] ssize_t n = read(wake_fd_, &v, sizeof(v));
  sleeping_.store(false, std::memory_order_relaxed);
  std::lock_guard<std::mutex> lock(engine_mu_);
  if (rx_fd >= 0 && (pfd[1].revents & POLLIN) != 0) {
    ++counters_.wakes_rx_interrupt;
  } else if ((pfd[0].revents & POLLIN) != 0) {
    ++counters_.wakes_doorbell;
  } else {
    ++counters_.wakes_timeout;  // or a signal (net_tap's SIGIO may land on this thread)
  }
  port_->disarm_rx_interrupt();
  const bool moved = poll_moved(monotonic_now());
  if (woke_to_work != nullptr) *woke_to_work = moved;
  return true;
}

}  // namespace droce::nic
