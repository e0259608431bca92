// SpscRing<T>: single-producer single-consumer ring of fixed-size slots, the
// memory model of DESIGN.md section 2 (WQE rings, CQE rings, doorbells):
// the producer fills slots, then publishes its index with release ordering.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <new>
#include <type_traits>

#include "nic/base/status.h"

namespace droce {

template <typename T>
class SpscRingTestPeer;

// Threading contract
// - Exactly one producer thread calls the producer methods (reserve,
//   publish, cancel, try_push, free_slots) and exactly one consumer thread
//   calls the consumer methods (front, peek, available, pop, try_pop) at any
//   one time. Moving either role to another thread needs an external
//   happens-before edge (a lock, a thread join); a CQ polled from several
//   application threads therefore needs a lock on the consumer side.
// - head_ (producer index) is written only by the producer, with release
//   after the slots are written; the consumer reads it with acquire, so
//   every published slot's contents are visible to it.
// - tail_ (consumer index) is written only by the consumer, with release
//   after it has finished reading the slots; the producer reads it with
//   acquire before reusing them.
// - size(), empty(), full() may be called from any thread; the answer is a
//   snapshot that may be stale by the time it is used.
// - Indices run freely in 32 bits and are masked on use; capacity is a power
//   of two of at most 2^31, so head - tail is always the fill level.
// Storage is allocated once by create(); no method allocates, blocks or
// takes a lock.
template <typename T>
class SpscRing {
  static_assert(std::is_trivially_copyable_v<T>, "ring slots are copied as plain memory");
  static_assert(std::is_default_constructible_v<T>);

 public:
  static constexpr uint32_t kMaxCapacity = 1u << 31;

  // capacity must be a power of two in [1, kMaxCapacity].
  static Result<std::unique_ptr<SpscRing>> create(uint32_t capacity) {
    if (capacity == 0 || capacity > kMaxCapacity || (capacity & (capacity - 1)) != 0) {
      return Status(Errc::kInvalidArgument, "ring capacity must be a power of two");
    }
    std::unique_ptr<T[]> slots(new (std::nothrow) T[capacity]());
    if (!slots) return Status(Errc::kNoMemory, "ring slots");
    std::unique_ptr<SpscRing> ring(new (std::nothrow) SpscRing(std::move(slots), capacity));
    if (!ring) return Status(Errc::kNoMemory, "ring");
    return ring;
  }

  SpscRing(const SpscRing&) = delete;
  SpscRing& operator=(const SpscRing&) = delete;

  uint32_t capacity() const { return mask_ + 1; }

  // ---- producer ----------------------------------------------------------

  // The next free slot, to be filled and then made visible by publish(); or
  // nullptr when the ring is full. Several slots may be reserved before one
  // publish() (one doorbell for a batch of WQEs). Slots are reserved in ring
  // order and published together.
  T* reserve() {
    const uint32_t pos = prod_.head + prod_.staged;
    if (pos - prod_.cached_tail >= capacity()) {
      prod_.cached_tail = tail_.load(std::memory_order_acquire);
      if (pos - prod_.cached_tail >= capacity()) return nullptr;
    }
    ++prod_.staged;
    return &slots_[pos & mask_];
  }

  // Makes every reserved slot visible to the consumer (the doorbell).
  void publish() {
    if (prod_.staged == 0) return;
    prod_.head += prod_.staged;
    prod_.staged = 0;
    head_.store(prod_.head, std::memory_order_release);
  }

  // Forgets slots reserved since the last publish(); the consumer never sees them.
  void cancel() { prod_.staged = 0; }

  // Slots reserved and not yet published.
  uint32_t staged() const { return prod_.staged; }

  // Copies one item in and publishes it; false when full (nothing changes).
  bool try_push(const T& item) {
    T* slot = reserve();
    if (slot == nullptr) return false;
    *slot = item;
    publish();
    return true;
  }

  // Free slots as the producer sees them (reserved slots count as used).
  uint32_t free_slots() {
    prod_.cached_tail = tail_.load(std::memory_order_acquire);
    return capacity() - (prod_.head + prod_.staged - prod_.cached_tail);
  }

  // ---- consumer ----------------------------------------------------------

  // Published items not yet popped (refreshes the consumer's view).
  uint32_t available() {
    cons_.cached_head = head_.load(std::memory_order_acquire);
    return cons_.cached_head - cons_.tail;
  }

  // The oldest published item, or nullptr when empty. The slot stays owned
  // by the consumer (and may be read or modified in place) until pop().
  T* front() { return peek(0); }

  // The i-th oldest published item (0 = front), or nullptr if fewer than
  // i + 1 are published.
  T* peek(uint32_t i) {
    if (cons_.cached_head - cons_.tail <= i) {
      cons_.cached_head = head_.load(std::memory_order_acquire);
      if (cons_.cached_head - cons_.tail <= i) return nullptr;
    }
    return &slots_[(cons_.tail + i) & mask_];
  }

  // Returns the n oldest slots to the producer. n must not exceed what
  // front()/peek()/available() has shown to be published.
  void pop(uint32_t n = 1) {
    cons_.tail += n;
    tail_.store(cons_.tail, std::memory_order_release);
  }

  // Copies out and pops the oldest item; false when empty.
  bool try_pop(T& out) {
    T* slot = front();
    if (slot == nullptr) return false;
    out = *slot;
    pop();
    return true;
  }

  // ---- any thread (snapshots) ---------------------------------------------

  uint32_t size() const {
    // Read tail first: both only grow, so head - tail never underflows; it
    // can overshoot if the other side moved between the loads, so clamp.
    const uint32_t tail = tail_.load(std::memory_order_acquire);
    const uint32_t head = head_.load(std::memory_order_acquire);
    const uint32_t n = head - tail;
    return n < capacity() ? n : capacity();
  }
  bool empty() const { return size() == 0; }
  bool full() const { return size() == capacity(); }

 private:
  friend class SpscRingTestPeer<T>;
  static constexpr size_t kCacheLine = 64;

  SpscRing(std::unique_ptr<T[]> slots, uint32_t capacity)
      : slots_(std::move(slots)), mask_(capacity - 1) {}

  // Read-only after create.
  const std::unique_ptr<T[]> slots_;
  const uint32_t mask_;

  // Shared indices, one cache line each.
  alignas(kCacheLine) std::atomic<uint32_t> head_{0};  // written by producer (release)
  alignas(kCacheLine) std::atomic<uint32_t> tail_{0};  // written by consumer (release)

  // Producer-private state.
  struct alignas(kCacheLine) Producer {
    uint32_t head = 0;         // == head_ (last published)
    uint32_t staged = 0;       // reserved, not yet published
    uint32_t cached_tail = 0;  // last tail_ seen
  } prod_;

  // Consumer-private state.
  struct alignas(kCacheLine) Consumer {
    uint32_t tail = 0;         // == tail_
    uint32_t cached_head = 0;  // last head_ seen
  } cons_;
};

}  // namespace droce
