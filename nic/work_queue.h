// Work queues: the SQ / RQ / SRQ rings of WQE slots that the driver (verbs/)
// fills and the engine consumes (DESIGN.md section 2; IBTA vol. 1 chapters
// 10-11: work requests, shared receive queues and the SRQ limit event).
#pragma once

#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <thread>

#include "nic/base/spsc_ring.h"
#include "nic/base/status.h"
#include "nic/wqe.h"

namespace droce::nic {

class WorkQueueTestPeer;

// A small lock for the driver side of the rings: the posting threads of one
// work queue, the polling threads of one CQ. The engine never takes it.
// Spins briefly, then yields, so a preempted holder on a 2-core machine is
// not starved. Meets BasicLockable (std::lock_guard works).
class SpinLock {
 public:
  void lock() {
    uint32_t spins = 0;
    while (locked_.exchange(true, std::memory_order_acquire)) {
      while (locked_.load(std::memory_order_relaxed)) {
        if (++spins < kSpinsBeforeYield) {
          cpu_relax();
        } else {
          std::this_thread::yield();
        }
      }
    }
  }
  bool try_lock() {
    return !locked_.load(std::memory_order_relaxed) &&
           !locked_.exchange(true, std::memory_order_acquire);
  }
  void unlock() { locked_.store(false, std::memory_order_release); }

 private:
  static constexpr uint32_t kSpinsBeforeYield = 128;
  static void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
  }
  std::atomic<bool> locked_{false};  // true while held (acquire on lock, release on unlock)
};

// A ring of fixed-size WQE slots. capacity is the smallest power of two >=
// the requested depth; the slot size (stride) is a power of two chosen at
// create time (send_stride / recv_stride). Slots start zeroed and are aligned
// to min(stride, 64) bytes.
//
// The indices are a RingIndices (nic/base/spsc_ring.h), free-running in 32
// bits and masked on use:
//   completed <= (engine cursors, the caller's) <= published <= next
// - next: producer-private, published + reserved-but-unpublished slots.
// - published: the doorbell (the ring's head). Slots [completed, published)
//   hold posted WQEs.
// - completed (the ring's tail): slots before it are free again. An SQ slot
//   stays in use until its completion, because a retransmit re-reads it.
//
// Threading contract
// - Producer side (driver; any number of posting threads): reserve, publish,
//   cancel, staged, free_slots are called only with producer_lock() held.
//   A poster takes the lock, reserves and fills one or more slots, publishes
//   (or cancels) them, and unlocks; it never leaves slots staged across an
//   unlock. publish() stores `published` with release after the slots are
//   written; reserve() loads `completed` with acquire before reusing a slot.
// - Engine side (one thread; in droce the holder of the engine lock):
//   published (acquire), slot, completed, retire (release). The engine's
//   cursors (next WQE to start, next to complete) are its own state.
// - discard_all: for the transition to RESET; the caller holds the engine
//   lock and producer_lock(), so neither side runs concurrently.
// - resize (SRQ resize): the caller holds the engine lock and
//   producer_lock(), and the engine keeps no pointer into a slot across
//   polls (the SRQ copies each WQE out as it takes it).
// - capacity, stride, outstanding and the counters: any thread (snapshots),
//   except concurrently with resize (which replaces the slots and the mask).
// Nothing here allocates after create() or blocks, except producer_lock()
// and resize().
class WorkQueue {
 public:
  static constexpr uint32_t kMaxDepth = 1u << 24;
  static constexpr uint32_t kMinStride = 16;
  static constexpr uint32_t kMaxStride = 1u << 20;

  // depth in [1, kMaxDepth]; stride a power of two in [kMinStride, kMaxStride].
  static Result<std::unique_ptr<WorkQueue>> create(uint32_t depth, uint32_t stride);

  // Slot sizes for the layouts of nic/wqe.h: a 64-byte SendWqe followed by
  // max_sge Sges or max_inline bytes; a 16-byte RecvWqe followed by max_sge
  // Sges; rounded up to a power of two. 0 when the result would exceed
  // kMaxStride (create() then refuses it).
  static uint32_t send_stride(uint32_t max_sge, uint32_t max_inline);
  static uint32_t recv_stride(uint32_t max_sge);

  WorkQueue(const WorkQueue&) = delete;
  WorkQueue& operator=(const WorkQueue&) = delete;

  uint32_t capacity() const { return idx_.capacity(); }
  uint32_t stride() const { return 1u << stride_shift_; }

  // ---- producer (driver), with producer_lock() held ----
  SpinLock& producer_lock() { return producer_lock_; }
  // The next free slot, to be filled and made visible by publish(); nullptr
  // when full (published + staged - completed == capacity).
  uint8_t* reserve();
  // The doorbell: makes every staged slot visible to the engine (release).
  // Returns how many slots it published.
  uint32_t publish();
  // Forgets the slots reserved since the last publish().
  void cancel() { idx_.cancel(); }
  uint32_t staged() const { return idx_.staged(); }
  // Slots the producer can still reserve.
  uint32_t free_slots();

  // ---- engine (single consumer thread) ----
  // Index one past the newest published WQE (acquire: its contents are visible).
  uint32_t published() const { return idx_.head(std::memory_order_acquire); }
  // The slot of a free-running index in [completed(), published()).
  uint8_t* slot(uint32_t index) const {
    return mem_.get() + (uint64_t{index & idx_.mask()} << stride_shift_);
  }
  uint32_t completed() const { return idx_.tail(std::memory_order_relaxed); }
  // Gives slots [completed(), new_completed) back to the producer (release:
  // the engine is done reading them). new_completed must not pass published().
  void retire(uint32_t new_completed);
  // RESET: drops every posted WQE without completions and returns how many.
  // Caller holds the engine lock and producer_lock(); afterwards
  // completed() == published(), and engine cursors must be reset to it.
  uint32_t discard_all();
  // New capacity: the smallest power of two >= depth (same stride). The
  // posted WQEs [completed(), published()) move to the new slots in order;
  // the free-running indices keep their values. Caller holds the engine lock
  // and producer_lock() (nothing staged). kInvalidArgument when depth is 0,
  // above kMaxDepth or fewer than the WQEs posted; kNoMemory leaves the
  // queue as it was.
  Status resize(uint32_t depth);

  // ---- any thread (snapshots) ----
  // Posted WQEs not yet retired.
  uint32_t outstanding() const;
  uint64_t posted() const { return posted_.load(std::memory_order_relaxed); }
  uint64_t retired() const { return retired_.load(std::memory_order_relaxed); }
  uint64_t discarded() const { return discarded_.load(std::memory_order_relaxed); }

 private:
  friend class WorkQueueTestPeer;
  struct Free {
    void operator()(uint8_t* p) const { std::free(p); }
  };

  WorkQueue(std::unique_ptr<uint8_t[], Free> mem, uint32_t capacity, uint32_t stride);

  // Slots: replaced only by resize(), which excludes both sides.
  std::unique_ptr<uint8_t[], Free> mem_;
  const uint32_t stride_shift_;                 // log2(stride)

  // head: published, written by the producer under producer_lock_ (release),
  // read by the engine (acquire); tail: completed, written by the engine
  // (release), read by producers (acquire). The producer side of idx_ is
  // guarded by producer_lock_; its consumer cache is unused (the engine keeps
  // its own cursors).
  RingIndices idx_;

  alignas(64) SpinLock producer_lock_;
  std::atomic<uint64_t> posted_{0};  // written under producer_lock_ (relaxed)

  alignas(64) std::atomic<uint64_t> retired_{0};  // written by the engine (relaxed)
  std::atomic<uint64_t> discarded_{0};            // written by discard_all (relaxed)
};

// A shared receive queue: a WorkQueue of receive WQEs plus the SRQ limit.
// The engine takes WQEs in order as messages arrive on any of the QPs that
// share it; as receives complete out of order across QPs, it copies what it
// needs of a WQE (header and Sges) and consumes, i.e. retires, the slot at
// once.
//
// The limit (IBTA vol. 1 SRQ limit, ibv_modify_srq IBV_SRQ_LIMIT): armed with a
// nonzero value, disarmed with 0. The check runs only when the engine
// consumes a WQE: if armed and the WQEs still posted-but-not-consumed are now
// fewer than the limit, consume() returns true once (the engine raises
// IBV_EVENT_SRQ_LIMIT_REACHED) and the limit disarms (limit() == 0).
// Arming never fires by itself, even below the current count; the next
// consume then fires (as rdma_rxe does).
//
// Threading: the producer side is wq() under wq().producer_lock(). front,
// consume, arm_limit, resize and limit run under the engine lock (the limit is
// engine-lock state, set by modify_srq).
class SharedReceiveQueue {
 public:
  static Result<std::unique_ptr<SharedReceiveQueue>> create(uint32_t depth, uint32_t max_sge);

  WorkQueue& wq() { return *wq_; }
  uint32_t capacity() const { return wq_->capacity(); }

  // The oldest posted WQE not yet consumed, or nullptr when none.
  const uint8_t* front() const;
  // Consumes front() (which must exist). True when the limit event fires.
  [[nodiscard]] bool consume();

  // 0 disarms; otherwise limit in [1, capacity()] (kInvalidArgument beyond).
  Status arm_limit(uint32_t limit);
  // SRQ resize (ibv_modify_srq IBV_SRQ_MAX_WR), as rdma_rxe: kInvalidArgument
  // when depth is below the armed limit or below the WQEs still posted (not
  // yet consumed); otherwise WorkQueue::resize. Runs under the engine lock;
  // takes the producer lock itself (lock order: engine, then producer).
  Status resize(uint32_t depth);
  uint32_t limit() const { return limit_; }

 private:
  explicit SharedReceiveQueue(std::unique_ptr<WorkQueue> wq) : wq_(std::move(wq)) {}

  const std::unique_ptr<WorkQueue> wq_;
  uint32_t limit_ = 0;  // guarded by the engine lock; 0 = disarmed
};

// Posts one receive WQE (RecvWqe + sges) to a receive queue or an SRQ's
// queue: takes the producer lock, fills a slot, publishes. 0, ENOMEM when
// the queue is full, or EINVAL when may_post() (called under the producer
// lock) says no. The caller checked num_sge against the slot.
int post_recv_wqe(WorkQueue& wq, uint64_t wr_id, const Sge* sges, uint32_t num_sge,
                  bool (*may_post)(const void*) = nullptr, const void* arg = nullptr);
template <typename F>
int post_recv_wqe(WorkQueue& wq, uint64_t wr_id, const Sge* sges, uint32_t num_sge, F&& may_post) {
  return post_recv_wqe(
      wq, wr_id, sges, num_sge, [](const void* f) { return (*static_cast<const F*>(f))(); },
      &may_post);
}

}  // namespace droce::nic
