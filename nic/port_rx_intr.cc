// The port's receive interrupt: what wakes a sleeping engine when a frame
// arrives (docs/engine.md "Progress").
//
// net_tap: DPDK's rx-interrupt mode (intr_conf.rxq, set in configure_queues)
// puts the queue's tap fd in the port's interrupt vector, and
// rte_eth_dev_rx_intr_ctl_q_get_fd hands it out, as DPDK's l3fwd-power uses
// it. The fd is readable while the kernel holds a frame for the queue, so
// there is nothing to arm and nothing to read (reading would take a frame).
//
// net_memif: DPDK 22.11's memif PMD has no rx_queue_intr_enable and no
// interrupt vector, but the memif protocol has the interrupt itself: each
// ring has an eventfd, passed to the peer with the ring (MEMIF_MSG_ADD_RING),
// and a flags word in shared memory whose bit MEMIF_RING_FLAG_MASK_INT the
// receiver owns. The sender writes the eventfd after a transmit burst
// whenever that bit is clear (eth_memif_tx); the PMD sets it on every ring it
// receives from when the link connects ("polling mode"). So the receiver
// clears the bit before it sleeps, waits on the eventfd, and sets it again
// when it wakes (so the peer stops paying a write(2) per burst). Reaching the
// ring and the eventfd needs the PMD's private queue and process structures,
// described below as they are in DPDK 22.11 (drivers/net/memif/
// rte_eth_memif.h, memif.h). Every arm checks them against what is known
// independently (the queue's port and mempool are ours,
// the link up, the ring's MEMIF_COOKIE); any other DPDK version, or a check that fails,
// leaves the port without an interrupt: the engine then sleeps on its timer,
// as for PMDs without one (net_ring).
//
// The PMD connects and disconnects on DPDK's interrupt thread, and a
// disconnect (the peer process exits) closes the eventfd and unmaps the
// ring's region at any moment. So the port reads the PMD's structures only
// there (memif_view_callback, which runs on that thread between the PMD's
// own callbacks) and keeps a view of its own: a mapping of the ring's page from
// the region's memfd and a dup of the eventfd. A thread that touches the
// view after the PMD let go writes to memory nobody reads any more and reads
// an eventfd nobody writes, instead of unmapped memory (iperf3 under the
// SMC-R shim died so, at exit, in quiet_rx_interrupt) or an fd number reused
// for one of the program's sockets. The engine replaces the view when the
// link goes down or the region changes (a reconnect), checked at most every
// kViewCheckNs.
#include <fcntl.h>
#include <rte_ethdev.h>
#include <rte_interrupts.h>
#include <rte_pause.h>
#include <rte_version.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstddef>
#include <cstring>
#include <mutex>
#include <vector>

#include "nic/base/log.h"
#include "nic/port.h"

// DPDK's own lookup of an ethdev by name: exported by librte_ethdev (version
// INTERNAL), declared in ethdev_driver.h, which Debian does not install.
extern "C" struct rte_eth_dev* rte_eth_dev_get_by_name(const char* name);

namespace droce::nic {
namespace {

#if RTE_VERSION >= RTE_VERSION_NUM(22, 11, 0, 0) && RTE_VERSION < RTE_VERSION_NUM(22, 12, 0, 0)
constexpr bool kMemifLayoutKnown = true;
#else
constexpr bool kMemifLayoutKnown = false;
#endif

// DPDK 22.11's layouts (x86-64 and every LP64 target).
namespace memif2211 {
constexpr uint32_t kCookie = 0x3E31F20;  // MEMIF_COOKIE
constexpr uint16_t kMaskInt = 1;         // MEMIF_RING_FLAG_MASK_INT

struct Region {  // struct memif_region
  void* addr;
  uint64_t region_size;
  int fd;
  uint32_t pkt_buffer_offset;
};
struct ProcessPrivate {  // struct pmd_process_private
  Region* regions[256];
  uint16_t regions_num;
};
struct Queue {  // struct memif_queue
  rte_mempool* mempool;
  void* pmd;  // not set on receive queues
  int type;  // memif_ring_type_t
  uint16_t region;
  uint16_t in_port;
  uint32_t ring_offset;
  uint16_t last_head;
  uint16_t last_tail;
  rte_mbuf** buffers;
  uint64_t n_pkts;
  uint64_t n_bytes;
  rte_intr_handle* intr_handle;
  uint8_t log2_ring_size;
};
static_assert(offsetof(Queue, in_port) == 22 && offsetof(Queue, ring_offset) == 24 &&
              offsetof(Queue, intr_handle) == 56 && offsetof(Queue, log2_ring_size) == 64);
struct Ring {  // memif_ring_t: cookie, flags, head on cache line 0, tail on line 1
  uint32_t cookie;
  uint16_t flags;
  uint16_t head;
};
// struct rte_eth_dev (ethdev_driver.h): six burst function pointers, the
// shared data, then process_private.
struct EthDevPrefix {
  void* fns[6];
  void* data;
  void* process_private;
};
}  // namespace memif2211

// The rx queue's ring and eventfd, or nullptr when anything does not check out.
// DPDK's interrupt thread only (the PMD changes all of it there).
memif2211::Ring* memif_ring(uint16_t port_id, const std::string& name, rte_mempool* pool,
                            int* fd, const memif2211::Queue** queue, int* region_fd) {
  using namespace memif2211;
  if (!kMemifLayoutKnown) return nullptr;
  // The queue pointer the inline rte_eth_rx_burst uses (rte_ethdev_core.h).
  void** queues = rte_eth_fp_ops[port_id].rxq.data;
  if (queues == nullptr || queues[0] == nullptr) return nullptr;
  const auto* q = static_cast<const Queue*>(queues[0]);
  if (q->in_port != port_id || q->mempool != pool) return nullptr;
  // Connected: the PMD maps the regions, then reports the link up.
  rte_eth_link link{};
  if (rte_eth_link_get_nowait(port_id, &link) != 0 || link.link_status != RTE_ETH_LINK_UP) {
    return nullptr;
  }
  auto* dev = reinterpret_cast<EthDevPrefix*>(rte_eth_dev_get_by_name(name.c_str()));
  if (dev == nullptr || dev->process_private == nullptr) return nullptr;
  const auto* pp = static_cast<const ProcessPrivate*>(dev->process_private);
  if (q->region >= 256 || q->region >= pp->regions_num) return nullptr;
  const Region* r = pp->regions[q->region];
  if (r == nullptr || r->addr == nullptr || uint64_t(q->ring_offset) + 64 > r->region_size) {
    return nullptr;
  }
  auto* ring = reinterpret_cast<Ring*>(static_cast<uint8_t*>(r->addr) + q->ring_offset);
  if (ring->cookie != kCookie) return nullptr;
  const int efd = q->intr_handle != nullptr ? rte_intr_fd_get(q->intr_handle) : -1;
  if (efd < 0) return nullptr;
  *fd = efd;
  *queue = q;
  *region_fd = r->fd;
  return ring;
}

// How often the engine has the interrupt thread check that its view is
// still the PMD's ring (a reconnect maps a new region), and how soon it asks
// again while it has none.
constexpr Nanos kViewCheckNs = 50 * kNanosPerMs;
constexpr Nanos kNoViewRetryNs = 5 * kNanosPerMs;

}  // namespace

struct Port::MemifView {
  void* map = nullptr;  // this port's own mapping of the ring's pages
  size_t map_len = 0;
  memif2211::Ring* ring = nullptr;  // in map
  int efd = -1;                     // this port's own dup of the queue's eventfd
  const memif2211::Queue* queue = nullptr;  // the PMD's, allocated for the port's life
  uint64_t ino = 0;                 // the region memfd's inode
};

// The interrupt thread's answer "no ring now" (link down, a check failed).
Port::MemifView* Port::memif_no_view() {
  static MemifView none;
  return &none;
}

Port::MemifView* Port::memif_view_make() {
  using namespace memif2211;
  if (removed()) return memif_no_view();
  int efd = -1, region_fd = -1;
  const Queue* q = nullptr;
  Ring* pmd_ring = memif_ring(port_id_, name_, pool_, &efd, &q, &region_fd);
  struct stat st {};
  if (pmd_ring == nullptr || region_fd < 0 || fstat(region_fd, &st) != 0) return memif_no_view();
  if (uint64_t(st.st_ino) == rx_view_ino_.load(std::memory_order_acquire)) return nullptr;  // unchanged
  const size_t page = size_t(sysconf(_SC_PAGESIZE));
  const size_t off = q->ring_offset & ~(page - 1);
  const size_t len = (q->ring_offset - off + 2 * 64 + page - 1) & ~(page - 1);  // head and tail lines
  void* map = mmap(nullptr, len, PROT_READ | PROT_WRITE, MAP_SHARED, region_fd, off_t(off));
  if (map == MAP_FAILED) return memif_no_view();
  auto* ring = reinterpret_cast<Ring*>(static_cast<uint8_t*>(map) + (q->ring_offset - off));
  const int dup_fd = ring->cookie == kCookie ? fcntl(efd, F_DUPFD_CLOEXEC, 0) : -1;
  if (dup_fd < 0) {
    munmap(map, len);
    return memif_no_view();
  }
  auto* v = new MemifView;
  v->map = map;
  v->map_len = len;
  v->ring = ring;
  v->efd = dup_fd;  // shares the PMD's O_NONBLOCK
  v->queue = q;
  v->ino = uint64_t(st.st_ino);
  return v;
}

namespace {
// The memif ports of this process that keep a view, and the eventfd through
// which their engines ask DPDK's interrupt thread for one (registered once,
// as an EXT handle: DPDK reads nothing, the callback drains it). The mutex
// keeps a closing port away from a callback that runs now, and orders for
// ThreadSanitizer what the port set up before it joined; the eventfd's write
// and read order what an engine did before asking (DPDK's alarms order such
// hand-overs with spinlocks TSan cannot see). Never destroyed: the interrupt
// thread may run past the exit handlers.
struct ViewAsks {
  std::mutex mu;
  std::vector<Port*> ports;
  int fd = -1;
  rte_intr_handle* handle = nullptr;  // fd's, registered (DPDK keeps a copy)
};
ViewAsks& view_asks() {
  static ViewAsks* v = new ViewAsks;
  return *v;
}
}  // namespace

void Port::memif_view_callback(void*) {
  ViewAsks& va = view_asks();
  std::lock_guard<std::mutex> lock(va.mu);
  uint64_t n;
  [[maybe_unused]] ssize_t r = read(va.fd, &n, sizeof(n));
  for (Port* p : va.ports) {
    if (p->rx_view_asked_.load(std::memory_order_acquire)) p->memif_view_answer();
  }
}

void Port::memif_view_answer() {
  if (MemifView* v = memif_view_make()) {
    // A view made earlier and not taken yet is replaced (nobody touched it).
    MemifView* old = rx_view_next_.exchange(v, std::memory_order_acq_rel);
    if (old != nullptr && old != memif_no_view()) {
      munmap(old->map, old->map_len);
      close(old->efd);
      delete old;
    }
  }
  rx_view_asked_.store(false, std::memory_order_release);
}

bool Port::memif_view_ask(Nanos now) {
  if (rx_view_ask_fd_ < 0 || rx_view_asked_.load(std::memory_order_acquire)) return false;
  if (rx_view_asked_at_ != 0 &&
      now - rx_view_asked_at_ < (rx_view_ != nullptr ? kViewCheckNs : kNoViewRetryNs)) {
    return false;
  }
  rx_view_asked_at_ = now;
  rx_view_asked_.store(true, std::memory_order_relaxed);
  const uint64_t one = 1;
  if (write(rx_view_ask_fd_, &one, sizeof(one)) != ssize_t(sizeof(one))) {
    rx_view_asked_.store(false, std::memory_order_relaxed);
    return false;
  }
  return true;
}

bool Port::memif_view_take() {
  MemifView* next = rx_view_next_.exchange(nullptr, std::memory_order_acq_rel);
  if (next != nullptr) {
    if (rx_view_ != nullptr) memif_view_retire(rx_view_);
    rx_view_ = next == memif_no_view() ? nullptr : next;
    rx_view_ino_.store(rx_view_ != nullptr ? rx_view_->ino : 0, std::memory_order_release);
  }
  if (rx_view_ != nullptr) {
    rte_eth_link link{};
    if (rte_eth_link_get_nowait(port_id_, &link) != 0 || link.link_status != RTE_ETH_LINK_UP) {
      memif_view_retire(rx_view_);  // the peer went away: a new connection maps a new region
      rx_view_ = nullptr;
      rx_view_ino_.store(0, std::memory_order_release);
    }
  }
  // Without a view (the link just came up) the answer comes from the
  // interrupt thread, on a loaded machine milliseconds later: this arm fails
  // and the caller sleeps on a timer of at most kSleepRxIntrNs meanwhile.
  memif_view_ask(monotonic_now());
  return rx_view_ != nullptr;
}

// Not armed, so the gate is null: a thread that enters open_rx_interrupt
// from now on sees it null; one inside is waited for.
void Port::memif_view_retire(MemifView* v) {
  while (rx_intr_openers_.load(std::memory_order_seq_cst) != 0) rte_pause();
  munmap(v->map, v->map_len);
  close(v->efd);
  delete v;
}

void Port::teardown_rx_interrupt() {
  if (rx_intr_ != RxIntr::kMemif) return;
  {
    ViewAsks& va = view_asks();
    std::lock_guard<std::mutex> lock(va.mu);  // a callback that runs now is done with this port
    va.ports.erase(std::remove(va.ports.begin(), va.ports.end(), this), va.ports.end());
  }
  rx_view_ask_fd_ = -1;
  rx_intr_gate_.store(nullptr, std::memory_order_seq_cst);
  rx_intr_ring_ = nullptr;
  if (MemifView* next = rx_view_next_.exchange(nullptr); next != nullptr && next != memif_no_view()) {
    memif_view_retire(next);
  }
  if (rx_view_ != nullptr) memif_view_retire(rx_view_);
  rx_view_ = nullptr;
}

void Port::setup_rx_interrupt() {
  if (driver_ == "net_tap" && kTapRxInterrupt) {
    const int fd = rte_eth_dev_rx_intr_ctl_q_get_fd(port_id_, 0);
    if (fd >= 0) {
      rx_intr_ = RxIntr::kTap;
      rx_intr_fd_ = fd;
    }
  } else if (driver_ == "net_memif" && kMemifLayoutKnown) {
    // The interrupt thread makes the port's view of the ring when asked
    // (memif_view_callback).
    ViewAsks& va = view_asks();
    std::lock_guard<std::mutex> lock(va.mu);
    if (va.fd < 0) {
      const int fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
      rte_intr_handle* h = fd >= 0 ? rte_intr_instance_alloc(RTE_INTR_INSTANCE_F_PRIVATE) : nullptr;
      if (h != nullptr && rte_intr_fd_set(h, fd) == 0 && rte_intr_type_set(h, RTE_INTR_HANDLE_EXT) == 0 &&
          rte_intr_callback_register(h, &Port::memif_view_callback, nullptr) == 0) {
        va.fd = fd;  // h and fd stay for the process's life
        va.handle = h;
      } else {
        if (h != nullptr) rte_intr_instance_free(h);
        if (fd >= 0) close(fd);
        DROCE_ERROR("port %s: no receive interrupt (could not register with DPDK's interrupt thread)",
                    name_.c_str());
      }
    }
    if (va.fd >= 0) {
      va.ports.push_back(this);
      rx_view_ask_fd_ = va.fd;
      rx_intr_ = RxIntr::kMemif;
    }
  }
  if (rx_intr_ == RxIntr::kNone) {
    DROCE_DEBUG("port %s (%s): no receive interrupt, the idle engine sleeps on a timer",
                    name_.c_str(), driver_.c_str());
  }
}

const char* Port::rx_interrupt_kind() const {
  switch (rx_intr_) {
    case RxIntr::kMemif: return "memif";
    case RxIntr::kTap: return "tap";
    case RxIntr::kNone: break;
  }
  return "none";
}

int Port::arm_rx_interrupt(bool open) {
  if (removed()) return -1;
  switch (rx_intr_) {
    case RxIntr::kTap:
      return rx_intr_fd_;
    case RxIntr::kMemif: {
      if (rx_intr_ring_ != nullptr) return rx_intr_armed_fd_;
      if (!memif_view_take()) return -1;
      auto* ring = rx_view_->ring;
      const int fd = rx_view_->efd;
      // Clear the mask bit; the caller then polls the queue once more before
      // it sleeps (the RMW is a full fence on x86 and seq_cst elsewhere), so
      // a frame the peer queued before it saw the bit clear is received by
      // that poll instead of being waited for. Armed quiet, the bit stays
      // set until open_rx_interrupt.
      if (open) {
        __atomic_fetch_and(&ring->flags, uint16_t(~memif2211::kMaskInt), __ATOMIC_SEQ_CST);
      } else {
        __atomic_fetch_or(&ring->flags, memif2211::kMaskInt, __ATOMIC_SEQ_CST);
      }
      rx_intr_ring_ = ring;
      rx_intr_armed_fd_ = fd;
      rx_intr_gate_.store(rx_view_, std::memory_order_seq_cst);
      return fd;
    }
    case RxIntr::kNone:
      break;
  }
  return -1;
}

bool Port::rx_interrupt_taken() {
  // With frames in the ring, the receive burst that follows reads the
  // eventfd itself (eth_memif_rx, while the bit is clear).
  if (rx_intr_ring_ == nullptr) return true;
  if (rx_ring_has_frames()) return true;
  uint64_t n;
  [[maybe_unused]] ssize_t r = read(rx_intr_armed_fd_, &n, sizeof(n));  // nonblocking
  return false;
}

void Port::disarm_rx_interrupt() {
  if (rx_intr_ring_ == nullptr) return;
  auto* ring = static_cast<memif2211::Ring*>(rx_intr_ring_);
  rx_intr_gate_.store(nullptr, std::memory_order_seq_cst);  // before the bit (open_rx_interrupt)
  rx_intr_ring_ = nullptr;
  // The view is this port's own: still mapped and open even when the PMD
  // has let go of the ring (then the bit and the fd are nobody's).
  __atomic_fetch_or(&ring->flags, memif2211::kMaskInt, __ATOMIC_SEQ_CST);
  uint64_t n;
  [[maybe_unused]] ssize_t r = read(rx_intr_armed_fd_, &n, sizeof(n));  // nonblocking (the PMD's flag)
  rx_intr_armed_fd_ = -1;
}

// The application's thread, while the engine thread stands aside armed
// (docs/engine.md "Progress"). An application that polls its CQ takes every
// frame itself, so an interrupt would only wake the engine thread for
// nothing (and cost the sender a write(2)); one that leaves poll_cq with a
// completion may go on to wait by polling memory, and then the next frame
// needs the interrupt. The bit is written only when it changes: a store to
// the ring's first cache line, which the sender reads on every burst.
void Port::quiet_rx_interrupt() {
  // Under the engine lock, which the view is retired under.
  const auto* v = static_cast<const MemifView*>(rx_intr_gate_.load(std::memory_order_acquire));
  if (v == nullptr) return;
  memif2211::Ring* ring = v->ring;
  if ((__atomic_load_n(&ring->flags, __ATOMIC_RELAXED) & memif2211::kMaskInt) == 0) {
    __atomic_fetch_or(&ring->flags, memif2211::kMaskInt, __ATOMIC_RELAXED);
  }
}

void Port::open_rx_interrupt() {
  if (rx_intr_ != RxIntr::kMemif) return;  // set before the port is used
  // No engine lock here: the count keeps the view from being retired while
  // this thread uses it (memif_view_retire waits for it to drop to zero).
  rx_intr_openers_.fetch_add(1, std::memory_order_seq_cst);
  open_rx_interrupt_counted();
  rx_intr_openers_.fetch_sub(1, std::memory_order_release);
}

void Port::open_rx_interrupt_counted() {
  const auto* v = static_cast<const MemifView*>(rx_intr_gate_.load(std::memory_order_seq_cst));
  if (v == nullptr) return;
  memif2211::Ring* ring = v->ring;
  if ((__atomic_load_n(&ring->flags, __ATOMIC_RELAXED) & memif2211::kMaskInt) == 0) return;
  __atomic_fetch_and(&ring->flags, uint16_t(~memif2211::kMaskInt), __ATOMIC_SEQ_CST);
  // The engine thread may have disarmed meanwhile (gate first, then the
  // bit): if so, the bit goes back, so a disarmed ring never stays open.
  if (rx_intr_gate_.load(std::memory_order_seq_cst) != v) {
    __atomic_fetch_or(&ring->flags, memif2211::kMaskInt, __ATOMIC_SEQ_CST);
    return;
  }
  // A frame that came while the bit was set raised no interrupt, and this
  // thread is leaving: the engine thread is woken for it as the PMD would
  // wake it (the queue's eventfd, through the view's dup). The queue's
  // indices are read without the engine lock; a stale one costs one
  // spurious wake-up or, rarely, a frame left to the end of the stand-aside
  // window.
  const memif2211::Queue* q = v->queue;
  const bool pending =
      q->type == 0
          ? __atomic_load_n(&ring->head, __ATOMIC_ACQUIRE) != q->last_head
          : __atomic_load_n(reinterpret_cast<const uint16_t*>(reinterpret_cast<const uint8_t*>(ring) + 64),
                            __ATOMIC_ACQUIRE) != q->last_tail;
  if (pending) {
    const uint64_t one = 1;
    [[maybe_unused]] ssize_t n = write(v->efd, &one, sizeof(one));
  }
}

// While armed, DPDK's memif receive burst reads the eventfd on every call
// (a system call, even with nothing to receive). An application polling its
// CQ in a loop would pay it on every poll, so receive() asks this first: a
// new slot in the ring is a plain load of the index the peer moves (C2S: the
// head, written by the client; S2C: the tail, written by the server), as the
// PMD itself reads it.
bool Port::rx_ring_has_frames() const {
  const memif2211::Queue* q = rx_view_->queue;  // armed: the engine lock is held
  const auto* ring = static_cast<const memif2211::Ring*>(rx_intr_ring_);
  if (q->type == 0) {  // MEMIF_RING_C2S: we are the server
    return __atomic_load_n(&ring->head, __ATOMIC_ACQUIRE) != q->last_head;
  }
  const auto* tail = reinterpret_cast<const uint16_t*>(reinterpret_cast<const uint8_t*>(ring) + 64);
  return __atomic_load_n(tail, __ATOMIC_ACQUIRE) != q->last_tail;
}

}  // namespace droce::nic
