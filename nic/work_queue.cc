// Work queues (SQ / RQ / SRQ rings) and the SRQ limit; see work_queue.h.
// IBTA vol. 1 chapters 10-11 (work requests, SRQ limit).
#include "nic/work_queue.h"

#include <bit>
#include <cassert>
#include <cstring>
#include <mutex>
#include <algorithm>
#include <cerrno>
#include <new>
#include <utility>

#include "nic/wqe.h"

namespace droce::nic {
namespace {

constexpr uint64_t kCacheLine = 64;

// Zeroed slot memory for capacity slots of stride bytes, aligned to a cache
// line; nullptr when out of memory.
uint8_t* allocate_slots(uint32_t capacity, uint32_t stride) {
  const uint64_t bytes = uint64_t{capacity} * stride;
  // aligned_alloc wants a size that is a multiple of the alignment.
  const uint64_t alloc = (bytes + kCacheLine - 1) & ~(kCacheLine - 1);
  auto* mem = static_cast<uint8_t*>(std::aligned_alloc(kCacheLine, alloc));
  if (mem != nullptr) std::memset(mem, 0, alloc);
  return mem;
}

// Smallest power of two >= need, or 0 when that exceeds WorkQueue::kMaxStride.
uint32_t stride_for(uint64_t need) {
  if (need < WorkQueue::kMinStride) need = WorkQueue::kMinStride;
  if (need > WorkQueue::kMaxStride) return 0;
  return static_cast<uint32_t>(std::bit_ceil(need));
}

}  // namespace

Result<std::unique_ptr<WorkQueue>> WorkQueue::create(uint32_t depth, uint32_t stride) {
  if (depth == 0 || depth > kMaxDepth) {
    return Status(Errc::kInvalidArgument, "work queue depth must be in [1, 2^24]");
  }
  if (!std::has_single_bit(stride) || stride < kMinStride || stride > kMaxStride) {
    return Status(Errc::kInvalidArgument, "WQE stride must be a power of two in [16, 1 MiB]");
  }
  const uint32_t capacity = std::bit_ceil(depth);
  std::unique_ptr<uint8_t[], Free> mem(allocate_slots(capacity, stride));
  if (!mem) return Status(Errc::kNoMemory, "work queue slots");
  std::unique_ptr<WorkQueue> wq(new (std::nothrow) WorkQueue(std::move(mem), capacity, stride));
  if (!wq) return Status(Errc::kNoMemory, "work queue");
  return wq;
}

WorkQueue::WorkQueue(std::unique_ptr<uint8_t[], Free> mem, uint32_t capacity, uint32_t stride)
    : mem_(std::move(mem)),
      stride_shift_(static_cast<uint32_t>(std::countr_zero(stride))),
      idx_(capacity) {}

uint32_t WorkQueue::send_stride(uint32_t max_sge, uint32_t max_inline) {
  const uint64_t sges = uint64_t{max_sge} * sizeof(Sge);
  return stride_for(sizeof(SendWqe) + (sges > max_inline ? sges : max_inline));
}

uint32_t WorkQueue::recv_stride(uint32_t max_sge) {
  return stride_for(sizeof(RecvWqe) + uint64_t{max_sge} * sizeof(Sge));
}

uint8_t* WorkQueue::reserve() {
  // The ring loads completed with acquire before a slot is reused: the
  // engine's reads of the slots it retired happen before we overwrite them.
  uint32_t index;
  return idx_.reserve(&index) ? slot(index) : nullptr;
}

uint32_t WorkQueue::publish() {
  const uint32_t n = idx_.publish(std::memory_order_release);
  if (n != 0) posted_.store(posted_.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
  return n;
}

uint32_t WorkQueue::free_slots() { return idx_.free_slots(); }

void WorkQueue::retire(uint32_t new_completed) {
  const uint32_t old = idx_.tail(std::memory_order_relaxed);
  const uint32_t n = new_completed - old;
  assert(n <= idx_.head(std::memory_order_relaxed) - old && "retire past published");
  if (n == 0) return;
  idx_.set_tail(new_completed);
  retired_.store(retired_.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
}

uint32_t WorkQueue::discard_all() {
  const uint32_t published = idx_.head(std::memory_order_relaxed);
  const uint32_t n = published - idx_.tail(std::memory_order_relaxed);
  idx_.restart_at(published);  // no poster holds the lock, so nothing is staged
  discarded_.store(discarded_.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
  return n;
}

Status WorkQueue::resize(uint32_t depth) {
  if (depth == 0 || depth > kMaxDepth) {
    return Status(Errc::kInvalidArgument, "work queue depth must be in [1, 2^24]");
  }
  const uint32_t completed = idx_.tail(std::memory_order_relaxed);
  const uint32_t published = idx_.head(std::memory_order_relaxed);
  const uint32_t posted = published - completed;
  if (depth < posted) {
    return Status(Errc::kInvalidArgument, "work queue resize below the WQEs it holds");
  }
  const uint32_t capacity = std::bit_ceil(depth);
  std::unique_ptr<uint8_t[], Free> mem(allocate_slots(capacity, stride()));
  if (!mem) return Status(Errc::kNoMemory, "work queue slots");
  // Indices keep running; each posted WQE moves to its slot under the new mask.
  for (uint32_t i = completed; i != published; ++i) {
    std::memcpy(mem.get() + (uint64_t{i & (capacity - 1)} << stride_shift_), slot(i), stride());
  }
  mem_ = std::move(mem);
  idx_.set_capacity(capacity);  // the producer lock is held: nothing is staged
  return Status::ok();
}

uint32_t WorkQueue::outstanding() const { return idx_.size(); }

Result<std::unique_ptr<SharedReceiveQueue>> SharedReceiveQueue::create(uint32_t depth,
                                                                       uint32_t max_sge) {
  const uint32_t stride = WorkQueue::recv_stride(max_sge);
  if (stride == 0) return Status(Errc::kInvalidArgument, "SRQ max_sge too large");
  auto wq = WorkQueue::create(depth, stride);
  if (!wq) return wq.status();
  std::unique_ptr<SharedReceiveQueue> srq(new (std::nothrow)
                                              SharedReceiveQueue(std::move(wq).value()));
  if (!srq) return Status(Errc::kNoMemory, "SRQ");
  return srq;
}

const uint8_t* SharedReceiveQueue::front() const {
  const uint32_t completed = wq_->completed();
  return completed == wq_->published() ? nullptr : wq_->slot(completed);
}

bool SharedReceiveQueue::consume() {
  const uint32_t completed = wq_->completed() + 1;
  wq_->retire(completed);
  // IBTA: the event fires when the posted WQEs fall below the limit.
  if (limit_ != 0 && wq_->published() - completed < limit_) {
    limit_ = 0;
    return true;
  }
  return false;
}

Status SharedReceiveQueue::arm_limit(uint32_t limit) {
  if (limit > capacity()) return Status(Errc::kInvalidArgument, "SRQ limit above its capacity");
  limit_ = limit;
  return Status::ok();
}

Status SharedReceiveQueue::resize(uint32_t depth) {
  if (limit_ != 0 && depth < limit_) {
    return Status(Errc::kInvalidArgument, "SRQ resize below its armed limit");
  }
  std::lock_guard<SpinLock> lock(wq_->producer_lock());
  return wq_->resize(depth);
}

int post_recv_wqe(WorkQueue& wq, uint64_t wr_id, const Sge* sges, uint32_t num_sge,
                  bool (*may_post)(const void*), const void* arg) {
  std::lock_guard<SpinLock> lock(wq.producer_lock());
  if (may_post != nullptr && !may_post(arg)) return EINVAL;
  uint8_t* slot = wq.reserve();
  if (slot == nullptr) return ENOMEM;
  auto* w = reinterpret_cast<RecvWqe*>(slot);
  w->wr_id = wr_id;
  w->num_sge = num_sge;
  uint64_t total = 0;
  for (uint32_t i = 0; i < num_sge; ++i) {
    w->sges()[i] = sges[i];
    total += sges[i].length;
  }
  w->length = uint32_t(std::min<uint64_t>(total, UINT32_MAX));
  wq.publish();
  return 0;
}

}  // namespace droce::nic
