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
#include <rte_ethdev.h>
#include <rte_interrupts.h>
#include <rte_version.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <cstddef>
#include <cstring>

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
memif2211::Ring* memif_ring(uint16_t port_id, const std::string& name, rte_mempool* pool,
                            int* fd, const memif2211::Queue** queue = nullptr) {
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
  if (queue != nullptr) *queue = q;
  return ring;
}

}  // namespace

void Port::setup_rx_interrupt() {
  if (driver_ == "net_tap" && kTapRxInterrupt) {
    const int fd = rte_eth_dev_rx_intr_ctl_q_get_fd(port_id_, 0);
    if (fd >= 0) {
      rx_intr_ = RxIntr::kTap;
      rx_intr_fd_ = fd;
    }
  } else if (driver_ == "net_memif" && kMemifLayoutKnown) {
    rx_intr_ = RxIntr::kMemif;
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
      int fd = -1;
      const memif2211::Queue* q = nullptr;
      auto* ring = memif_ring(port_id_, name_, pool_, &fd, &q);
      if (ring == nullptr) return -1;
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
      rx_intr_queue_.store(q, std::memory_order_relaxed);  // the same for the port's life
      rx_intr_armed_fd_ = fd;
      rx_intr_gate_.store(ring, std::memory_order_seq_cst);
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
  // The link may have gone down and its ring and eventfd with it while we
  // slept: touch them only if they are still the ones armed.
  int fd = -1;
  if (memif_ring(port_id_, name_, pool_, &fd) == ring && fd == rx_intr_armed_fd_) {
    __atomic_fetch_or(&ring->flags, memif2211::kMaskInt, __ATOMIC_SEQ_CST);
    uint64_t n;
    [[maybe_unused]] ssize_t r = read(fd, &n, sizeof(n));  // the PMD made it nonblocking
  }
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
  auto* ring = static_cast<memif2211::Ring*>(rx_intr_gate_.load(std::memory_order_acquire));
  if (ring == nullptr) return;
  if ((__atomic_load_n(&ring->flags, __ATOMIC_RELAXED) & memif2211::kMaskInt) == 0) {
    __atomic_fetch_or(&ring->flags, memif2211::kMaskInt, __ATOMIC_RELAXED);
  }
}

void Port::open_rx_interrupt() {
  auto* ring = static_cast<memif2211::Ring*>(rx_intr_gate_.load(std::memory_order_seq_cst));
  if (ring == nullptr) return;
  if ((__atomic_load_n(&ring->flags, __ATOMIC_RELAXED) & memif2211::kMaskInt) == 0) return;
  __atomic_fetch_and(&ring->flags, uint16_t(~memif2211::kMaskInt), __ATOMIC_SEQ_CST);
  // The engine thread may have disarmed meanwhile (gate first, then the
  // bit): if so, the bit goes back, so a disarmed ring never stays open.
  if (rx_intr_gate_.load(std::memory_order_seq_cst) != ring) {
    __atomic_fetch_or(&ring->flags, memif2211::kMaskInt, __ATOMIC_SEQ_CST);
    return;
  }
  // A frame that came while the bit was set raised no interrupt, and this
  // thread is leaving: the engine thread is woken for it as the PMD would
  // wake it (the queue's eventfd). The queue's indices are read without the
  // engine lock; a stale one costs one spurious wake-up or, rarely, a frame
  // left to the end of the stand-aside window.
  const auto* q = static_cast<const memif2211::Queue*>(rx_intr_queue_.load(std::memory_order_relaxed));
  const bool pending =
      q->type == 0
          ? __atomic_load_n(&ring->head, __ATOMIC_ACQUIRE) != q->last_head
          : __atomic_load_n(reinterpret_cast<const uint16_t*>(reinterpret_cast<const uint8_t*>(ring) + 64),
                            __ATOMIC_ACQUIRE) != q->last_tail;
  if (pending) {
    const int fd = rte_intr_fd_get(q->intr_handle);
    const uint64_t one = 1;
    if (fd >= 0) {
      [[maybe_unused]] ssize_t n = write(fd, &one, sizeof(one));
    }
  }
}

// While armed, DPDK's memif receive burst reads the eventfd on every call
// (a system call, even with nothing to receive). An application polling its
// CQ in a loop would pay it on every poll, so receive() asks this first: a
// new slot in the ring is a plain load of the index the peer moves (C2S: the
// head, written by the client; S2C: the tail, written by the server), as the
// PMD itself reads it.
bool Port::rx_ring_has_frames() const {
  const auto* q = static_cast<const memif2211::Queue*>(rx_intr_queue_.load(std::memory_order_relaxed));
  const auto* ring = static_cast<const memif2211::Ring*>(rx_intr_ring_);
  if (q->type == 0) {  // MEMIF_RING_C2S: we are the server
    return __atomic_load_n(&ring->head, __ATOMIC_ACQUIRE) != q->last_head;
  }
  const auto* tail = reinterpret_cast<const uint16_t*>(reinterpret_cast<const uint8_t*>(ring) + 64);
  return __atomic_load_n(tail, __ATOMIC_ACQUIRE) != q->last_tail;
}

}  // namespace droce::nic
