// Completion queues: the ring of CQEs the engine fills and the driver polls,
// with arming and a completion event file descriptor (DESIGN.md section 2;
// IBTA vol. 1 chapter 11: Poll for Completion, Request Completion
// Notification, CQ overrun as an affiliated asynchronous error).
#pragma once

#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <memory>

#include "nic/base/status.h"
#include "nic/work_queue.h"  // SpinLock, RingIndices
#include "nic/wqe.h"

namespace droce::nic {

// What an armed CQ is waiting for. The values nest as bits, so OR-ing two
// requests gives the wider one.
enum class CqArm : uint8_t {
  kNone = 0,       // disarmed: no event
  kSolicited = 1,  // next solicited or unsuccessful completion
  kNext = 3,       // next completion of any kind
};

// A ring of Cqe slots. capacity is the smallest power of two >= the requested
// cqe count (ibv_create_cq reports it as cq->cqe).
//
// Notification semantics (what droce does, as libibverbs documents and
// rdma_rxe does):
// - arm(kNext) asks for an event at the next completion pushed after the
//   arm; arm(kSolicited) at the next solicited completion or the next
//   completion with a status other than success (IBTA: unsuccessful
//   completions always notify). Arming twice keeps the wider request.
// - When a push matches the arm, the CQ writes 1 to its eventfd once and
//   disarms; nothing more is written until the next arm().
// - CQEs already in the ring when arm() is called do not fire: arm() returns
//   true in that case so the caller knows to poll them. The usual loop
//   (arm, poll until empty, then wait on event_fd()) never sleeps on an
//   unseen CQE: arm() and push() are ordered (seq_cst) so that for every
//   CQE, either a poll() made after arm() returns sees it, or the push that
//   added it (or a later one) sees the arm and fires.
//
// Overflow (IBTA CQ overrun): push() into a full ring stores
// nothing, returns false and sets the sticky overflowed() flag; the engine
// then raises IBV_EVENT_CQ_ERR and moves the QPs using the CQ to ERR. Later
// pushes still succeed when there is room.
//
// Threading contract
// - Engine side: exactly one thread (the holder of the engine lock) calls
//   push and free_slots. The producer index is stored seq_cst (a release
//   store, plus the arm ordering above) after the slot is written.
// - Consumer side (driver; any number of application threads): poll takes
//   consumer_lock_ itself, loads the producer index with acquire and stores
//   the consumer index with release after copying the CQEs out. arm takes no
//   lock (an atomic read-modify-write of the arm state).
// - resize runs under the engine lock (no concurrent push) and takes
//   consumer_lock_ itself (no concurrent poll).
// - enable_timestamps runs under the engine lock (no concurrent push) before
//   any QP uses the CQ (no CQE pending, no concurrent poll).
// - event_fd, armed and the counters: any thread (snapshots); capacity and
//   pending too, except concurrently with resize. No method allocates
//   except create, resize and enable_timestamps.
//
// Completion timestamps (ibv_create_cq_ex with
// IBV_WC_EX_WITH_COMPLETION_TIMESTAMP): a CQ that enabled them keeps a
// second ring of 64-bit stamps beside the CQE ring, one per slot, written
// by push() from the engine's clock (monotonic_now(), CLOCK_MONOTONIC
// nanoseconds) when the CQE enters the ring. The CQE layout does not grow;
// a CQ without stamps pays one not-taken branch in push().
class CompletionQueue {
 public:
  static constexpr uint32_t kMaxCqe = 1u << 24;

  // cqe in [1, kMaxCqe]. Creates the eventfd (non-blocking, close-on-exec).
  static Result<std::unique_ptr<CompletionQueue>> create(uint32_t cqe);
  ~CompletionQueue();

  CompletionQueue(const CompletionQueue&) = delete;
  CompletionQueue& operator=(const CompletionQueue&) = delete;

  uint32_t capacity() const { return idx_.capacity(); }
  // Readable (poll/epoll POLLIN) once an event has fired; a read(2) of 8
  // bytes returns the number of events since the last read and resets it.
  int event_fd() const { return event_fd_; }

  // ---- engine (single producer) ----
  // Appends a CQE; false on overflow (see above). solicited: the completion
  // is of a message that carried the SE bit.
  bool push(const Cqe& cqe, bool solicited);
  // Free slots as the engine sees them.
  uint32_t free_slots();

  // ---- consumer (driver threads) ----
  // Copies up to max of the oldest CQEs to out, in order, and removes them.
  // Returns how many (0 when empty or max <= 0).
  int poll(Cqe* out, int max);
  // Completions the calling thread has taken from any CQ (Device::progress
  // tells a thread that gets completions from one that polls an idle CQ).
  static uint64_t taken_by_this_thread();
  // poll() that also copies each CQE's completion timestamp to ts[i] (0 on
  // a CQ without timestamps).
  int poll_timestamped(Cqe* out, uint64_t* ts, int max);
  // Requests one event (see above). Returns true if CQEs were already
  // pending, which this arm will not report.
  bool arm(bool solicited_only);

  // ---- control (engine lock held) ----
  // New capacity: the smallest power of two >= new_cqe. Keeps the pending
  // CQEs in order, the arm and the overflow flag. kInvalidArgument when
  // new_cqe is 0, above kMaxCqe or fewer than the CQEs pending.
  Status resize(uint32_t new_cqe);
  // Allocates the timestamp ring (see above); idempotent. kNoMemory.
  Status enable_timestamps();
  bool timestamps() const { return stamps_ != nullptr; }

  // ---- any thread (snapshots) ----
  uint32_t pending() const;
  CqArm armed() const { return static_cast<CqArm>(arm_.load(std::memory_order_relaxed)); }
  bool overflowed() const { return overflowed_.load(std::memory_order_relaxed); }
  uint64_t overflows() const { return overflows_.load(std::memory_order_relaxed); }
  uint64_t events_fired() const { return events_fired_.load(std::memory_order_relaxed); }
  uint64_t pushed() const { return pushed_.load(std::memory_order_relaxed); }
  uint64_t polled() const { return polled_.load(std::memory_order_relaxed); }

 private:
  friend class CompletionQueueTestPeer;
  struct Free {
    void operator()(Cqe* p) const { std::free(p); }
  };
  using Slots = std::unique_ptr<Cqe[], Free>;
  using Stamps = std::unique_ptr<uint64_t[]>;

  CompletionQueue(Slots slots, uint32_t capacity, int event_fd);
  static Slots allocate(uint32_t capacity);
  static Stamps allocate_stamps(uint32_t capacity);
  void fire();
  template <bool kStamps>
  int poll_impl(Cqe* out, uint64_t* ts, int max);

  // Replaced only by resize, which excludes both sides.
  Slots slots_;
  Stamps stamps_;  // nullptr unless enable_timestamps(); one per slot
  const int event_fd_;

  // head: the producer index, written by the engine (seq_cst), read by
  // consumers (acquire; arm: seq_cst); tail: the consumer index, written by
  // consumers under consumer_lock_ (release), read by the engine (acquire).
  // The consumer cache of idx_ is unused (consumers serialize on the lock).
  RingIndices idx_;
  std::atomic<uint64_t> pushed_{0};        // written by the engine (relaxed)
  std::atomic<uint64_t> overflows_{0};     // written by the engine (relaxed)
  std::atomic<uint64_t> events_fired_{0};  // written by the engine (relaxed)
  std::atomic<bool> overflowed_{false};    // set by the engine (relaxed), never cleared

  alignas(64) SpinLock consumer_lock_;           // serializes poll() and resize()
  std::atomic<uint64_t> polled_{0};  // written under consumer_lock_ (relaxed)

  // CqArm; raised by arm() (consumers), cleared by the engine when it fires
  // (seq_cst, see the ordering note above).
  alignas(64) std::atomic<uint8_t> arm_{0};
};

}  // namespace droce::nic
