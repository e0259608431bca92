// Completion queues: CQE ring, arming, eventfd notification, overflow,
// resize; see cq.h. IBTA vol. 1 chapter 11 (Request Completion Notification).
#include "nic/cq.h"

#include <sys/eventfd.h>
#include <unistd.h>

#include <bit>
#include <cerrno>
#include <cstring>
#include <mutex>
#include <new>
#include <string>
#include <utility>

#include "nic/base/clock.h"

namespace droce::nic {
namespace {

constexpr uint64_t kCacheLine = 64;

bool notifies(uint8_t arm, const Cqe& cqe, bool solicited) {
  if (arm == static_cast<uint8_t>(CqArm::kNext)) return true;
  // Solicited-only: solicited completions, and every unsuccessful one.
  return arm == static_cast<uint8_t>(CqArm::kSolicited) &&
         (solicited || cqe.status != WcStatus::kSuccess);
}

}  // namespace

CompletionQueue::Slots CompletionQueue::allocate(uint32_t capacity) {
  const uint64_t bytes = uint64_t{capacity} * sizeof(Cqe);
  const uint64_t alloc = (bytes + kCacheLine - 1) & ~(kCacheLine - 1);
  Slots slots(static_cast<Cqe*>(std::aligned_alloc(kCacheLine, alloc)));
  if (slots) std::memset(static_cast<void*>(slots.get()), 0, alloc);
  return slots;
}

CompletionQueue::Stamps CompletionQueue::allocate_stamps(uint32_t capacity) {
  return Stamps(new (std::nothrow) uint64_t[capacity]());
}

Result<std::unique_ptr<CompletionQueue>> CompletionQueue::create(uint32_t cqe) {
  if (cqe == 0 || cqe > kMaxCqe) {
    return Status(Errc::kInvalidArgument, "CQ size must be in [1, 2^24]");
  }
  const uint32_t capacity = std::bit_ceil(cqe);
  Slots slots = allocate(capacity);
  if (!slots) return Status(Errc::kNoMemory, "CQ slots");
  const int fd = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (fd < 0) return Status(Errc::kIo, std::string("CQ eventfd: ") + std::strerror(errno));
  std::unique_ptr<CompletionQueue> cq(new (std::nothrow)
                                          CompletionQueue(std::move(slots), capacity, fd));
  if (!cq) {
    ::close(fd);
    return Status(Errc::kNoMemory, "CQ");
  }
  return cq;
}

CompletionQueue::CompletionQueue(Slots slots, uint32_t capacity, int event_fd)
    : slots_(std::move(slots)), event_fd_(event_fd), idx_(capacity) {}

CompletionQueue::~CompletionQueue() { ::close(event_fd_); }

bool CompletionQueue::push(const Cqe& cqe, bool solicited) {
  // reserve loads the consumer index with acquire when the ring looks full:
  // the consumer has finished copying the slots it gave back.
  uint32_t index;
  if (!idx_.reserve(&index)) {
    overflowed_.store(true, std::memory_order_relaxed);
    overflows_.store(overflows() + 1, std::memory_order_relaxed);
    return false;
  }
  const uint32_t slot = index & idx_.mask();
  slots_[slot] = cqe;
  if (stamps_ != nullptr) [[unlikely]] stamps_[slot] = monotonic_now();
  // seq_cst, not just release: with the seq_cst load of arm_ below and the
  // seq_cst fetch_or + load in arm(), either this push sees the arm or the
  // arming thread sees this CQE (see cq.h).
  idx_.publish(std::memory_order_seq_cst);
  pushed_.store(pushed() + 1, std::memory_order_relaxed);
  if (notifies(arm_.load(std::memory_order_seq_cst), cqe, solicited)) {
    // Disarm and fire once. A concurrent arm() is merged into the value we
    // clear, and the event we are about to write satisfies it.
    arm_.exchange(0, std::memory_order_seq_cst);
    fire();
  }
  return true;
}

void CompletionQueue::fire() {
  const uint64_t one = 1;
  // Cannot fail short of the 2^64-2 counter limit; the count says we tried.
  const ssize_t written = ::write(event_fd_, &one, sizeof(one));
  (void)written;
  events_fired_.store(events_fired() + 1, std::memory_order_relaxed);
}

uint32_t CompletionQueue::free_slots() { return idx_.free_slots(); }

namespace {
thread_local uint64_t tls_taken = 0;
}  // namespace

uint64_t CompletionQueue::taken_by_this_thread() { return tls_taken; }

int CompletionQueue::poll(Cqe* out, int max) { return poll_impl<false>(out, nullptr, max); }

int CompletionQueue::poll_timestamped(Cqe* out, uint64_t* ts, int max) {
  return poll_impl<true>(out, ts, max);
}

template <bool kStamps>
int CompletionQueue::poll_impl(Cqe* out, uint64_t* ts, int max) {
  if (max <= 0) return 0;
  // Empty check without the lock: an empty poll (the common busy-poll case)
  // costs two loads.
  if (idx_.head(std::memory_order_acquire) == idx_.tail(std::memory_order_relaxed)) {
    return 0;
  }
  std::lock_guard<SpinLock> guard(consumer_lock_);
  const uint32_t consumer = idx_.tail(std::memory_order_relaxed);
  uint32_t n = idx_.head(std::memory_order_acquire) - consumer;
  if (n > static_cast<uint32_t>(max)) n = static_cast<uint32_t>(max);
  const uint32_t mask = idx_.mask();
  for (uint32_t i = 0; i < n; ++i) out[i] = slots_[(consumer + i) & mask];
  if constexpr (kStamps) {
    for (uint32_t i = 0; i < n; ++i) {
      ts[i] = stamps_ != nullptr ? stamps_[(consumer + i) & mask] : 0;
    }
  }
  if (n != 0) {
    idx_.set_tail(consumer + n);
    polled_.store(polled() + n, std::memory_order_relaxed);
    tls_taken += n;
  }
  return static_cast<int>(n);
}

bool CompletionQueue::arm(bool solicited_only) {
  // The values nest as bits (kSolicited = 1, kNext = 3), so OR keeps the
  // wider request whatever the order of arms.
  const CqArm want = solicited_only ? CqArm::kSolicited : CqArm::kNext;
  arm_.fetch_or(static_cast<uint8_t>(want), std::memory_order_seq_cst);
  const uint32_t producer = idx_.head(std::memory_order_seq_cst);
  return producer != idx_.tail(std::memory_order_acquire);
}

Status CompletionQueue::resize(uint32_t new_cqe) {
  if (new_cqe == 0 || new_cqe > kMaxCqe) {
    return Status(Errc::kInvalidArgument, "CQ size must be in [1, 2^24]");
  }
  std::lock_guard<SpinLock> guard(consumer_lock_);
  const uint32_t consumer = idx_.tail(std::memory_order_relaxed);
  const uint32_t n = idx_.head(std::memory_order_relaxed) - consumer;
  if (new_cqe < n) {
    return Status(Errc::kInvalidArgument, "CQ resize below the CQEs it holds");
  }
  const uint32_t capacity = std::bit_ceil(new_cqe);
  Slots slots = allocate(capacity);
  if (!slots) return Status(Errc::kNoMemory, "CQ slots");
  Stamps stamps;
  if (stamps_ != nullptr) {
    stamps = allocate_stamps(capacity);
    if (!stamps) return Status(Errc::kNoMemory, "CQ timestamps");
  }
  // Indices keep running; each pending CQE (and its stamp) moves to its slot
  // in the new mask.
  for (uint32_t i = 0; i < n; ++i) {
    slots[(consumer + i) & (capacity - 1)] = slots_[(consumer + i) & idx_.mask()];
    if (stamps) stamps[(consumer + i) & (capacity - 1)] = stamps_[(consumer + i) & idx_.mask()];
  }
  slots_ = std::move(slots);
  if (stamps) stamps_ = std::move(stamps);
  idx_.set_capacity(capacity);
  return Status::ok();
}

Status CompletionQueue::enable_timestamps() {
  if (stamps_ != nullptr) return Status::ok();
  std::lock_guard<SpinLock> guard(consumer_lock_);
  Stamps stamps = allocate_stamps(capacity());
  if (!stamps) return Status(Errc::kNoMemory, "CQ timestamps");
  // CQEs already pending (none when called before any QP uses the CQ) read 0.
  stamps_ = std::move(stamps);
  return Status::ok();
}

uint32_t CompletionQueue::pending() const { return idx_.size(); }

}  // namespace droce::nic
