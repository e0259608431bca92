// The emulated RNIC (DESIGN.md section 2): one Device per port, holding the
// object tables (PD, MR, CQ, QP, AH), the command interface the driver calls,
// async events, and the engine that makes progress (engine.cc).
//
// Threading: control commands take the engine lock (engine_mu_). The engine
// holds it for one poll() at a time, on the engine thread or inline through
// progress(). The data path (Qp::post_*, CompletionQueue::poll, doorbells)
// never takes it.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "nic/base/clock.h"
#include "nic/base/status.h"
#include "nic/cq.h"
#include "nic/fault.h"
#include "nic/gsi.h"
#include "nic/mr.h"
#include "nic/port.h"
#include "nic/qp.h"
#include "nic/srq.h"
#include "nic/wire/builder.h"

struct rte_mbuf;

namespace droce::nic {

inline constexpr uint32_t kFirstQpn = 0x11;  // QP0/QP1 are reserved (SMI/GSI), as rxe starts at 17
// QPNs handed out cyclically from [kFirstQpn, kFirstQpn + kQpnSpace), as
// rxe's QP pool does over its index range (RXE_MAX_QP_INDEX = 2^17).
inline constexpr uint32_t kQpnSpace = 1u << 17;

// Device limits, reported by query_device (values close to rdma_rxe's).
struct DeviceAttr {
  uint32_t max_qp = 4096;
  uint32_t max_qp_wr = 16384;
  uint32_t max_sge = 32;
  uint32_t max_inline_data = 256;
  uint32_t max_cq = 4096;
  uint32_t max_cqe = (1u << 16) - 1;
  uint32_t max_mr = 16384;
  uint64_t max_mr_size = ~0ull;
  uint32_t max_pd = 4096;
  uint32_t max_qp_rd_atom = 128;
  uint32_t max_qp_init_rd_atom = 128;
  uint32_t max_ah = 4096;
  uint32_t max_srq = 1024;
  uint32_t max_srq_wr = 16384;
  uint32_t max_srq_sge = 27;
  uint32_t max_msg_size = kMaxMessageBytes;
};

// ibv_event_type values.
enum class AsyncEventType : uint8_t {
  kCqErr = 0,
  kQpFatal = 1,
  kQpReqErr = 2,
  kQpAccessErr = 3,
  kCommEst = 4,
  kSqDrained = 5,
  kDeviceFatal = 8,
  kPortActive = 9,
  kPortErr = 10,
  kSrqErr = 14,
  kSrqLimitReached = 15,
  kQpLastWqeReached = 16,
};

struct AsyncEvent {
  AsyncEventType type;
  uint32_t qpn = 0;                 // QP events
  CompletionQueue* cq = nullptr;    // CQ events
  Srq* srq = nullptr;               // SRQ events
  uint8_t port_num = 1;             // port events
};

// A received packet handed to a QP: the parsed view and the time it arrived.
struct RxPacket {
  const wire::PacketView* v;
  Nanos now;
};

// Counters for the engine as a whole (per-QP counters live in each QP).
struct EngineCounters {
  uint64_t polls = 0;
  uint64_t rx_no_qp = 0;          // destination QP does not exist
  uint64_t rx_bad_transport = 0;  // opcode of another transport than the QP's
  uint64_t rx_bad_state = 0;      // QP cannot receive in its state
  uint64_t rx_bad_pkey = 0;
  uint64_t rx_bad_src_addr = 0;   // RC/UC: source IPv4/GID is not the QP's destination
  uint64_t rx_cnp = 0;             // congestion notification packets (counted, not acted on)
  uint64_t tx_no_mbuf = 0;         // a frame not built: the port's mbuf pool was empty
  uint64_t tx_after_removal = 0;   // frames built after the device was removed (freed, not sent)
  // Frames whose payload went out attached from registered memory (no copy),
  // and payloads that could have but were copied (no shell mbuf free, or the
  // MR's frame count at its limit).
  uint64_t tx_zero_copy = 0;
  uint64_t tx_zero_copy_fallback = 0;
  // The engine thread's sleeps (docs/engine.md "Progress"): each sleep ends
  // with exactly one wake reason. A sleep on the port's receive interrupt
  // (DPDK rx-interrupt mode) is ended by the first frame; without one (a PMD
  // that has none, e.g. net_ring) only by a doorbell or the timeout.
  uint64_t sleeps = 0;              // the engine thread slept (idle or standing aside)
  uint64_t sleeps_rx_interrupt = 0;  // ... with the port's receive interrupt armed
  uint64_t wakes_rx_interrupt = 0;  // woken by a frame's receive interrupt
  // ... for nothing: the application's own poll had taken the frames, or it
  // polled its CQ while this thread woke (docs/engine.md "Progress").
  uint64_t wakes_rx_interrupt_needless = 0;
  uint64_t wakes_doorbell = 0;      // woken by a doorbell (work posted)
  uint64_t wakes_timeout = 0;       // woken by the timer (nothing arrived)
  // Standing aside: timer wake-ups that found the application still polling
  // (its window had moved on); each one preempts a polling thread on a busy
  // machine, so the sleeps between them grow (Options::stand_aside_max_sleep_ns).
  uint64_t wakes_aside_timer = 0;
  // Device::app_took_completions: an application thread kept polling after
  // taking completions and saw the next RDMA WRITE (or atomic) land
  // (caught), or saw none within Options::linger_ns (missed). Kept apart
  // from the engine lock; stats() fills them in.
  uint64_t lingers_caught = 0;
  uint64_t lingers_missed = 0;
  // ... or stopped early for a receive or a failed completion: news the
  // program acts on first (neither a catch nor a miss).
  uint64_t lingers_cut = 0;
};

// What tools read of a device (nic/telemetry.h), copied under the engine lock.
struct DeviceStats {
  std::string name;    // Options::name, e.g. "droce0"
  uint16_t port_id = 0;
  std::string ethdev;  // the DPDK device, e.g. "net_memif0"
  wire::MacAddr mac{};
  uint32_t ipv4 = 0;
  bool link_up = false;
  bool removed = false;
  uint32_t qps = 0;    // live QPs
  // The DPDK lcore id the engine thread registered as (its mempool caches
  // go with it), -1 while it has none: no engine thread, or none left
  // (RTE_MAX_LCORE) or not allowed (a secondary process attached).
  int engine_lcore = -1;
  EngineCounters engine;
  PortCounters port;
  bool faults = false;  // a fault shim is on transmit (DROCE_FAULTS)
  FaultCounters fault_counters;
  GsiCounters gsi;      // QP1: the CM's MADs (nic/gsi.h)
};

struct QpStats {
  uint32_t qpn = 0;
  QpType type = QpType::kRc;
  QpState state = QpState::kReset;
  uint32_t dest_qpn = 0;  // RC / UC
  uint32_t peer_ip = 0;   // RC / UC
  QpCounters counters;
};

class Device {
 public:
  struct Options {
    bool engine_thread = true;  // progress on a thread of its own
    DeviceAttr attr;
    std::string name;  // what counter tools call it (verbs: droce0, droce1 ...); "" for none
    // Responder ACK coalescing: consecutive in-order requests of one receive
    // burst that ask for an ACK get one, carrying the latest PSN and MSN.
    bool coalesce_acks = true;
    // DROCE_ENGINE_CPU: the engine thread runs on this CPU only and polls
    // without pause (no stand-aside for the application, no sleep), as a
    // NIC's own silicon would; -1: any CPU, with the idle backoff.
    int engine_cpu = -1;
    // Zero-copy transmit (nic/zero_copy.cc) for RC packets of at least this
    // many payload bytes, on ports that allow it (Port::tx_chains); shorter
    // ones are copied, which costs less than three mbufs and a chained
    // receive do: measured (docs/benchmarks.md), 1024-byte packets lose
    // 7 - 20 % attached, 2048-byte ones gain about 6 %, 4096-byte ones about
    // 20 %. So path MTU 1024 (the default 1500-byte port) copies.
    uint32_t zero_copy_min = kDefaultZeroCopyMin;
    static constexpr uint32_t kDefaultZeroCopyMin = 2048;
    // How long after the application's last inline progress() (an empty
    // poll_cq) the engine thread stands aside (docs/engine.md "Progress").
    Nanos stand_aside_ns = 200 * kNanosPerUs;
    // While the application keeps polling, the standing-aside engine
    // thread's timer sleeps double from stand_aside_ns up to this; so an
    // application that stops polling (without arming a CQ or waiting for
    // WRITEs, which the receive interrupt covers) is taken over within
    // stand_aside_ns plus at most this (docs/engine.md "Progress").
    Nanos stand_aside_max_sleep_ns = 2 * kNanosPerMs;
    // Application threads sharing the device (Device::progress, engine.cc):
    // a thread that has taken no completion for progress_idle_ns leaves the
    // engine to the thread that ran it while taking completions, for
    // progress_defer_ns after that thread's last call.
    Nanos progress_defer_ns = 20 * kNanosPerUs;
    Nanos progress_idle_ns = 100 * kNanosPerUs;
    // An application thread that leaves poll_cq with completions of its own
    // requests while RDMA WRITEs (or atomics) come in keeps polling the
    // engine for up to linger_ns, until the next such request lands
    // (app_took_completions, docs/engine.md "Progress"); 0: never. As long
    // as the stand-aside window: a peer that needed a wake-up, or lost its
    // CPU for a moment, still answers within it.
    Nanos linger_ns = 200 * kNanosPerUs;
  };

  // The device takes over the port.
  static Result<std::unique_ptr<Device>> create(std::unique_ptr<Port> port, const Options& opts);
  // The same on a port that outlives the device (tests, port pairs).
  static Result<std::unique_ptr<Device>> create(Port* port, const Options& opts);
  ~Device();

  const DeviceAttr& attr() const { return attr_; }
  const std::string& name() const { return name_; }  // Options::name (any thread)
  Port& port() { return *port_; }

  // --- control commands (take the engine lock) ---
  Result<uint32_t> alloc_pd();
  Status dealloc_pd(uint32_t pd);  // kBusy while MRs, QPs or AHs use it
  Result<uint32_t> reg_mr(uint32_t pd, void* addr, uint64_t iova, uint64_t length, uint32_t access);
  Status dereg_mr(uint32_t key);
  Result<CompletionQueue*> create_cq(uint32_t cqe);
  Status destroy_cq(CompletionQueue* cq);  // kBusy while a QP uses it
  Result<Qp*> create_qp(const QpInitAttr& init);
  Status modify_qp(Qp* qp, const QpAttrs& attrs, uint32_t mask);
  QpAttrs query_qp(Qp* qp);
  Status destroy_qp(Qp* qp);
  Result<Srq*> create_srq(uint32_t pd, uint32_t max_wr, uint32_t max_sge);
  Status modify_srq(Srq* srq, uint32_t limit);
  Status destroy_srq(Srq* srq);  // kBusy while a QP uses it
  // ibv_modify_srq: a new size (IBV_SRQ_MAX_WR) and / or limit (IBV_SRQ_LIMIT),
  // all or nothing, as rxe: EINVAL for a limit above the new size or a size
  // below the limit that will be armed or the receives posted.
  struct SrqChange {
    bool resize = false;
    uint32_t max_wr = 0;
    bool set_limit = false;
    uint32_t limit = 0;
  };
  Status modify_srq(Srq* srq, const SrqChange& change);
  struct SrqState {
    uint32_t capacity;
    uint32_t limit;  // 0: disarmed
  };
  SrqState query_srq(Srq* srq);
  // ibv_resize_cq (the pending CQEs kept) and ibv_create_cq_ex's completion
  // timestamps (before any QP uses the CQ).
  Status resize_cq(CompletionQueue* cq, uint32_t cqe);
  Status enable_cq_timestamps(CompletionQueue* cq);
  Result<uint32_t> create_ah(uint32_t pd, const AddressVector& av);
  Status destroy_ah(uint32_t ah);
  // Copies len bytes at addr from local memory the key grants (any rights)
  // to dst: the 8 bytes of an ATOMIC_WRITE, taken at post time.
  Status read_local(uint32_t lkey, uint32_t pd, uint64_t addr, void* dst, uint32_t len);
  // The MAC of a neighbour (ibv_resolve_eth_l2_from_gid): kPending while ARP
  // runs (asked again later), kFailed when it gave up or the device is gone.
  ArpResult resolve_neighbor(uint32_t ip, wire::MacAddr* mac);
  // The port as ibv_query_port reports it.
  struct PortState {
    bool up;
    uint32_t speed_mbps;  // 0 when down or unknown
  };
  PortState query_port();
  // Device removal: every QP to ERR and flushed, then kPortErr (if the link
  // was up) and kDeviceFatal. poll() does it by itself once DPDK reports the
  // port removed (Port::removed(): RTE_ETH_EVENT_INTR_RMV, or the ethdev
  // released, as by rte_dev_remove of a vdev). Then nothing new can be
  // created or brought up (EIO); destroying works.
  void remove();
  // QP1 (nic/gsi.h): the CM agent's handler for received MADs (nullptr to
  // stop), and MADs it sends (false when the queue is full or the device is gone).
  void set_gsi_handler(Gsi::Handler fn, void* arg);
  bool gsi_send(uint32_t dst_ip, const uint8_t* mad, size_t len, uint8_t tos);
  GsiCounters gsi_counters();
  // Puts a fault shim (nic/fault.h) between the engine and the port's
  // transmit; nullptr removes it (held frames are freed).
  void set_faults(std::unique_ptr<FaultShim> shim);

  // --- counters for tools (any thread; take the engine lock, as commands do) ---
  DeviceStats stats();
  // The numbers of the live QPs, in creation order.
  std::vector<uint32_t> qp_numbers();
  // False when no QP has that number.
  bool qp_stats(uint32_t qpn, QpStats* out);

  // --- progress ---
  // One engine iteration; the caller holds the lock (engine thread, progress(), tests).
  void poll(Nanos now);
  // Runs one poll if nobody else is polling; false if the lock was busy.
  // The application's empty poll_cq calls it.
  bool progress();
  // The application leaves poll_cq with a completion: it may now wait
  // elsewhere (by polling memory, as ib_write_lat), and then the next frame
  // must wake the engine thread, if RDMA WRITEs (or atomics) came in lately:
  // those complete nothing here. A program that waits for SENDs polls its CQ
  // (ibv_rc_pingpong's loop), and a wake-up per frame would only preempt it
  // or its peer (docs/engine.md "Progress"). Any thread, no lock; cheap
  // when the engine thread is not standing aside.
  void app_leaves_poll();
  // The same, once per ibv_poll_cq (or ibv_end_poll) that returned
  // completions. A program that waits by polling memory for its peer's
  // WRITE (ib_write_lat) starts right after taking its own WRITE's
  // completion, and the peer's WRITE is often a few microseconds away. So
  // when the program took only completions of its own requests, all
  // successful (own_requests_only: no receive, no failure, which would be
  // news to act on first), and such requests came in lately, this thread
  // keeps running the engine until the next one lands or Options::linger_ns
  // passes, or a receive or a failure completes on any of the device's CQs
  // (news: it stops at once): the WRITE then needs no wake-up of the engine
  // thread, and the receive interrupt stays quiet (the program comes back to
  // poll_cq for its next completion). Four misses in a row start a backoff:
  // each further miss skips the next 1, 2, 4 .. 1024 calls; a catch ends
  // it. Without a catch, app_leaves_poll().
  void app_took_completions(bool own_requests_only);
  // The application arms its CQ and will block for the event: every frame
  // must wake the engine thread from here on.
  void app_waits_for_event();
  std::unique_lock<std::mutex> lock_engine();

  // --- async events (any thread) ---
  bool get_async_event(AsyncEvent* ev);
  int async_event_fd() const { return async_fd_; }
  // The port's link as the engine last saw it (any thread). poll() checks the
  // link every kLinkCheckNs and raises kPortErr when it goes down, kPortActive
  // when it comes back (unaffiliated asynchronous events, IBTA vol. 1 ch. 11).
  bool link_up() const { return link_up_.load(std::memory_order_relaxed); }
  static constexpr Nanos kLinkCheckNs = 10 * kNanosPerMs;

  // --- used by QPs (engine lock held unless said otherwise) ---
  void ring_doorbell();  // any thread: wakes the engine thread if it sleeps
  // A completion goes to a CQ: a receive or a failure is news a lingering
  // application thread stops for (app_took_completions).
  void note_completion(const Cqe& cqe) {
    if ((uint8_t(cqe.opcode) & uint8_t(WcOpcode::kRecv)) != 0 || cqe.status != WcStatus::kSuccess) {
      news_.store(news_.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
    }
  }
  MrTable& mrs() { return mrs_; }
  // The AV of a live AH handle; nullptr for a destroyed one, even when its
  // slot holds a newer AH (the handle's generation differs).
  const AddressVector* ah(uint32_t handle);
  rte_mbuf* tx_alloc();
  void tx_enqueue(rte_mbuf* m);
  // Zero-copy transmit (nic/zero_copy.cc). True when a payload of len bytes
  // may be attached rather than copied.
  bool zero_copy(uint32_t len) const { return len >= zero_copy_min_ && port_->tx_chains(); }
  // The frame of packet s (addresses filled in) with its payload attached
  // from host, inside mr: headers, payload, pad + ICRC in three mbufs of the
  // port's shells pool. nullptr (counted; the caller copies): no shells, or
  // mr is being deregistered.
  rte_mbuf* build_chain(const wire::PacketSpec& s, const MrEntry& mr, uint8_t* host,
                        wire::HeaderTemplate* t);
  // Frames pointing into the region now (any thread may free them).
  static uint32_t frames_in(const MrEntry& e);
  // A QP holds an ACK for the end of the current receive burst
  // (send_deferred_acks). False when coalescing is off or the list is full:
  // the QP sends it now.
  bool defer_ack(Qp* qp);
  void raise_event(const AsyncEvent& ev);
  uint16_t next_ip_id() { return ip_id_++; }
  Nanos engine_now() const { return now_; }
  bool removed() const { return removed_; }
  const EngineCounters& counters() const { return counters_; }
  Qp* qp_by_num(uint32_t qpn);

 private:
  Device(Port* port, std::unique_ptr<Port> owned, const Options& opts);
  friend class DeviceTestPeer;
  // Starts the engine thread (Options::engine_thread), pinned when asked.
  Status start_engine_thread();
  void engine_thread_main(bool pinned);
  void engine_loop();
  void engine_loop_pinned();
  // One poll under the engine lock; true when it moved packets.
  bool poll_busy(Nanos now);
  bool poll_moved(Nanos now);  // the same with the lock held
  // The idle engine thread's sleep, until a doorbell, the port's receive
  // interrupt or a timer (max_ns; 0: engine.cc's default for the port),
  // then a poll. False when a last poll found work instead (then it did not
  // sleep). woke_to_work: whether the poll after the sleep moved frames.
  // arm_rx: sleep on the receive interrupt too (engine.cc
  // kIdleSleepOnRxInterrupt).
  bool sleep_until_work(Nanos max_ns = 0, bool arm_rx = false, bool* woke_to_work = nullptr);
  // The engine thread while the application drives progress (engine.cc).
  void stand_aside();
  bool linger();  // app_took_completions: true when it saw the WRITE land
  void tx_flush();
  // The ICRC of a frame built for transmit; of a chained one build_chain built.
  static void icrc_of(rte_mbuf* m);
  static void chain_icrc(rte_mbuf* m);
  // The frame count of a region: created by reg_mr (ports that chain),
  // released by dereg_mr and the destructor; drain_frames waits (engine
  // lock released meanwhile) until no frame points into the region.
  void open_frame_count(MrEntry& e);
  static void close_frame_count(MrEntry& e);
  Status drain_frames(std::unique_lock<std::mutex>& lock, uint32_t key);
  void dispatch(const wire::PacketView& v, Nanos now);
  // The end of a receive burst: each QP that deferred an ACK sends it.
  void send_deferred_acks(Nanos now);
  void remove_locked();
  bool pd_exists(uint32_t pd) const {
    return pd != 0 && pd < pd_users_.size() && pd_users_[pd] != 0;
  }
  void check_link(Nanos now);

  DeviceAttr attr_;
  std::string name_;
  std::unique_ptr<Port> owned_port_;
  Port* port_;

  std::mutex engine_mu_;                  // the engine lock: guards every table and QP
  std::atomic<int> commands_waiting_{0};  // control threads waiting for engine_mu_

  MrTable mrs_;
  std::vector<uint32_t> pd_users_;  // index = pd number; users + 1 when allocated, 0 free
  // QPs by number: slot qpn & qp_mask_ (a power of two >= max_qp slots);
  // numbers are handed out cyclically (kQpnSpace), so a slot's QP is checked
  // against the number looked up.
  std::vector<std::unique_ptr<Qp>> qps_;
  uint32_t qp_mask_;
  uint32_t next_qpn_ = kFirstQpn;
  static uint32_t next_qpn_after(uint32_t qpn) {
    return qpn + 1 == kFirstQpn + kQpnSpace ? kFirstQpn : qpn + 1;
  }
  std::vector<std::unique_ptr<CompletionQueue>> cqs_;
  std::vector<uint32_t> cq_users_;
  // AH handles: generation << kAhIndexBits | slot. A WQE keeps the handle it
  // was posted with, so a slot taken by a new AH does not redirect it.
  static constexpr uint32_t kAhIndexBits = 16;
  struct AhEntry {
    bool used = false;
    uint16_t generation = 0;  // bumped by each create_ah of the slot
    bool resolve = false;     // created since the last poll: ARP to start
    uint32_t pd = 0;
    AddressVector av;
  };
  AhEntry* ah_entry(uint32_t handle);
  void resolve_new_ahs(Nanos now);
  std::vector<AhEntry> ahs_;
  bool ahs_to_resolve_ = false;  // some AhEntry::resolve is set

  std::vector<std::unique_ptr<Srq>> srqs_;
  // Live QPs, scanned each poll for work (engine lock).
  std::vector<Qp*> live_;

  // Receive burst (engine only), and the QPs holding a coalesced ACK until
  // its end: at most one entry per packet of the burst.
  static constexpr uint16_t kRxBurst = 32;
  const bool coalesce_acks_;
  const int engine_cpu_;  // Options::engine_cpu
  std::atomic<int> engine_lcore_{-1};  // DeviceStats::engine_lcore
  const uint32_t zero_copy_min_;  // Options::zero_copy_min
  const Nanos stand_aside_ns_;  // Options::stand_aside_ns
  const Nanos stand_aside_max_sleep_ns_;  // Options::stand_aside_max_sleep_ns
  const Nanos progress_defer_ns_;  // Options::progress_defer_ns
  const Nanos progress_idle_ns_;   // Options::progress_idle_ns
  const Nanos linger_ns_;          // Options::linger_ns
  Qp* deferred_acks_[kRxBurst];
  uint16_t n_deferred_acks_ = 0;
  // The receive burst of the current poll (engine only). Members, not
  // locals of poll(): PacketView's default member initialisers made the
  // local array a 1.8 KB memset on every poll, empty ones included (the
  // parser sets every field of a view it delivers).
  rte_mbuf* rx_mbufs_[kRxBurst];
  wire::PacketView rx_views_[kRxBurst];

  // Transmit batch of the current poll (engine only).
  static constexpr uint16_t kTxBurst = 64;
  rte_mbuf* tx_[kTxBurst];
  uint16_t tx_n_ = 0;
  // tx_[0, tx_icrc_) carry their ICRC; the rest get it in tx_enqueue once
  // kIcrcLag newer frames are queued, or in tx_flush (engine.cc, tx_enqueue, says why).
  static constexpr uint16_t kIcrcLag = 1;
  uint16_t tx_icrc_ = 0;
  uint16_t ip_id_ = 1;
  // Fault shim on the transmit side (engine lock).
  std::unique_ptr<FaultShim> faults_;
  // The engine's clock: the time of the current (or last) poll. Commands
  // take their time from it, never from the wall clock, so a fake clock
  // driving poll() drives them too (engine lock).
  Nanos now_ = 0;

  std::mutex async_mu_;  // guards async_
  std::deque<AsyncEvent> async_;
  int async_fd_ = -1;
  std::atomic<bool> link_up_{false};  // written by the engine in check_link()
  Nanos next_link_check_ = 0;         // engine lock

  // Engine thread and its idle backoff.
  std::thread thread_;
  std::atomic<bool> stop_{false};
  // The engine thread is (about to be) asleep in ppoll: written by it,
  // read by ring_doorbell; ordered by the fences on both sides (relaxed).
  std::atomic<bool> sleeping_{false};
  // When a request that changes memory without a completion here (RDMA
  // WRITE, atomics) last came (engine lock), and app_leaves_poll's guess
  // made from it by progress() (relaxed: a hint).
  Nanos silent_write_at_ = 0;
  std::atomic<bool> app_needs_interrupt_{false};
  // Such requests received so far (written by the lock holder, read by a
  // lingering thread), and the linger's state and outcomes (relaxed: hints;
  // app_took_completions). stats() adds the outcomes to EngineCounters.
  std::atomic<uint64_t> silent_writes_{0};
  std::atomic<uint32_t> linger_skip_{0};
  std::atomic<uint32_t> linger_misses_{0};  // in a row
  std::atomic<uint64_t> lingers_caught_{0};
  std::atomic<uint64_t> lingers_missed_{0};
  std::atomic<uint64_t> lingers_cut_{0};
  std::atomic<uint64_t> news_{0};  // receives and failures completed (note_completion)
  // The application armed a CQ to block for its event and has not polled
  // since: the stand-aside arms the interrupt open.
  std::atomic<bool> app_blocks_{false};
  std::atomic<Nanos> app_progress_at_{0};  // last progress() by the application (relaxed: a hint)
  // The driver (Device::progress, engine.cc): the application thread that
  // last called progress() while taking completions, and when (relaxed:
  // hints). An idle thread's progress() within Options::progress_defer_ns of
  // it leaves the engine to that thread.
  std::atomic<Nanos> driver_at_{0};
  std::atomic<uintptr_t> driver_{0};
  int wake_fd_ = -1;
  bool removed_ = false;
  EngineCounters counters_;
  Gsi gsi_;  // QP1 (engine lock)
};


}  // namespace droce::nic
