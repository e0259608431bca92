// Single-producer single-consumer rings of fixed-size slots, the memory model
// of DESIGN.md section 2 (WQE rings, CQE rings, doorbells): the producer fills
// slots, then publishes its index with release; the consumer reads it with
// acquire. SpscRing<T> has typed slots (CQEs); SpscSlotRing has byte slots
// whose size is chosen at create time (WQEs sized from max_sge/max_inline).
#pragma once

#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <new>
#include <type_traits>
#include <utility>

#include "nic/base/status.h"

namespace droce {

class SpscRingTestPeer;

// Threading contract (both ring kinds)
// - Exactly one producer thread calls the producer methods (reserve,
//   publish, cancel, staged, try_push, free_slots) and exactly one consumer
//   thread calls the consumer methods (available, front, peek, pop,
//   try_pop) at any one time. Moving either role to another thread needs an
//   external happens-before edge (a lock, a thread join); a CQ polled from
//   several application threads therefore needs a lock on the consumer side.
// - The producer index is written only by the producer, with release, after
//   the slots it covers are written; the consumer loads it with acquire, so
//   every published slot's contents are visible to it.
// - The consumer index is written only by the consumer, with release, after
//   it has finished with the slots it gives back; the producer loads it with
//   acquire before reusing them.
// - size(), empty(), full() may be called from any thread; the answer is a
//   snapshot that may be stale by the time it is used.
// - Indices run freely in 32 bits and are masked on use; capacity is a power
//   of two of at most 2^31, so producer - consumer index is the fill level.
// Storage is allocated once by create(); no method allocates, blocks or
// takes a lock.

namespace detail {

inline constexpr size_t kCacheLine = 64;

constexpr bool is_pow2(uint64_t v) { return v != 0 && (v & (v - 1)) == 0; }

}  // namespace detail

// The index machinery of every ring in droce: SpscRing and SpscSlotRing
// below, the work queues (nic/work_queue.h) and the CQ (nic/cq.h). A
// producer index (head) and a consumer index (tail), free-running in 32 bits
// and masked on use, each on its own cache line, each with a private copy of
// the other side's last value so that the common case touches no shared
// line. reserve() hands out free-running indices; slot number = index &
// mask().
//
// Besides the contract above, two kinds of user:
// - the cached consumer (available, peek, pop): one consumer thread;
// - the raw consumer (head, tail, set_tail): the work queues' engine keeps
//   its own cursors between tail and head, and the CQ's consumers serialize
//   on a lock of their own, so neither uses the consumer-private cache.
// restart_at and set_capacity change both sides: the caller excludes the
// producer and the consumer (RESET of a work queue, resize).
class RingIndices {
 public:
  static constexpr uint32_t kMaxCapacity = 1u << 31;

  explicit RingIndices(uint32_t capacity) : mask_(capacity - 1) {}

  uint32_t capacity() const { return mask_ + 1; }
  uint32_t mask() const { return mask_; }

  // Producer: the free-running index of the next free slot, or false when
  // full (acquire on the consumer index before reusing a slot it gave back).
  bool reserve(uint32_t* index) {
    const uint32_t pos = prod_.head + prod_.staged;
    if (pos - prod_.cached_tail >= capacity()) {
      prod_.cached_tail = tail_.load(std::memory_order_acquire);
      if (pos - prod_.cached_tail >= capacity()) return false;
    }
    ++prod_.staged;
    *index = pos;
    return true;
  }
  // Makes the staged slots visible (release, or seq_cst where a user needs
  // the store ordered against a later load, as the CQ's arm does). Returns
  // how many it published.
  uint32_t publish(std::memory_order order = std::memory_order_release) {
    const uint32_t n = prod_.staged;
    if (n == 0) return 0;
    prod_.head += n;
    prod_.staged = 0;
    head_.store(prod_.head, order);
    return n;
  }
  void cancel() { prod_.staged = 0; }
  uint32_t staged() const { return prod_.staged; }
  uint32_t free_slots() {
    prod_.cached_tail = tail_.load(std::memory_order_acquire);
    return capacity() - (prod_.head + prod_.staged - prod_.cached_tail);
  }

  // Cached consumer.
  uint32_t available() {
    cons_.cached_head = head_.load(std::memory_order_acquire);
    return cons_.cached_head - cons_.tail;
  }
  bool peek(uint32_t i, uint32_t* slot) {
    if (cons_.cached_head - cons_.tail <= i) {
      cons_.cached_head = head_.load(std::memory_order_acquire);
      if (cons_.cached_head - cons_.tail <= i) return false;
    }
    *slot = (cons_.tail + i) & mask_;
    return true;
  }
  void pop(uint32_t n) {
    cons_.tail += n;
    tail_.store(cons_.tail, std::memory_order_release);
  }

  // Raw consumer: the published index (acquire: the slots before it are
  // visible), the consumer index, and giving slots back (release: the
  // consumer is done with them).
  uint32_t head(std::memory_order order = std::memory_order_acquire) const {
    return head_.load(order);
  }
  uint32_t tail(std::memory_order order = std::memory_order_relaxed) const {
    return tail_.load(order);
  }
  void set_tail(uint32_t tail) { tail_.store(tail, std::memory_order_release); }

  // Both sides excluded: every index at `index`, nothing staged or held.
  void restart_at(uint32_t index) {
    head_.store(index, std::memory_order_release);
    tail_.store(index, std::memory_order_release);
    prod_ = Producer{index, 0, index};
    cons_ = Consumer{index, index};
  }
  // Both sides excluded, nothing staged: a new power-of-two capacity that
  // holds what the ring holds; the indices keep running (the caller moves
  // each held slot i from i & old mask to i & new mask).
  void set_capacity(uint32_t capacity) {
    mask_ = capacity - 1;
    prod_.staged = 0;
    prod_.cached_tail = tail_.load(std::memory_order_relaxed);
  }

  // Any thread.
  uint32_t size() const {
    // Read tail first: both only grow, so head - tail never underflows; it
    // can overshoot if the other side moved between the loads, so clamp.
    const uint32_t tail = tail_.load(std::memory_order_acquire);
    const uint32_t head = head_.load(std::memory_order_acquire);
    const uint32_t n = head - tail;
    return n < capacity() ? n : capacity();
  }

 private:
  friend class droce::SpscRingTestPeer;

  uint32_t mask_;  // capacity - 1; changed only by set_capacity
  // Shared indices, one cache line each.
  alignas(detail::kCacheLine) std::atomic<uint32_t> head_{0};  // written by producer (release)
  alignas(detail::kCacheLine) std::atomic<uint32_t> tail_{0};  // written by consumer (release)
  struct alignas(detail::kCacheLine) Producer {                // producer-private
    uint32_t head = 0;                                         // == head_ (last published)
    uint32_t staged = 0;                                       // reserved, not yet published
    uint32_t cached_tail = 0;                                  // last tail_ seen
  } prod_;
  struct alignas(detail::kCacheLine) Consumer {  // consumer-private
    uint32_t tail = 0;                           // == tail_
    uint32_t cached_head = 0;                    // last head_ seen
  } cons_;
};

namespace detail {

inline bool valid_capacity(uint32_t capacity) {
  return capacity <= RingIndices::kMaxCapacity && is_pow2(capacity);
}

}  // namespace detail

// Ring of T slots (T trivially copyable, e.g. a CQE).
template <typename T>
class SpscRing {
  static_assert(std::is_trivially_copyable_v<T>, "ring slots are copied as plain memory");
  static_assert(std::is_default_constructible_v<T>);

 public:
  static constexpr uint32_t kMaxCapacity = RingIndices::kMaxCapacity;

  // capacity must be a power of two in [1, kMaxCapacity].
  static Result<std::unique_ptr<SpscRing>> create(uint32_t capacity) {
    if (!detail::valid_capacity(capacity)) {
      return Status(Errc::kInvalidArgument, "ring capacity must be a power of two <= 2^31");
    }
    std::unique_ptr<T[]> slots(new (std::nothrow) T[capacity]());
    if (!slots) return Status(Errc::kNoMemory, "ring slots");
    std::unique_ptr<SpscRing> ring(new (std::nothrow) SpscRing(std::move(slots), capacity));
    if (!ring) return Status(Errc::kNoMemory, "ring");
    return ring;
  }

  SpscRing(const SpscRing&) = delete;
  SpscRing& operator=(const SpscRing&) = delete;

  uint32_t capacity() const { return idx_.capacity(); }

  // ---- producer ----
  // The next free slot, to be filled and then made visible by publish(); or
  // nullptr when the ring is full. Several slots may be reserved (in ring
  // order) before one publish(): one doorbell for a batch.
  T* reserve() {
    uint32_t i;
    return idx_.reserve(&i) ? &slots_[i & idx_.mask()] : nullptr;
  }
  // Makes every reserved slot visible to the consumer (the doorbell).
  void publish() { (void)idx_.publish(); }
  // Forgets slots reserved since the last publish(); the consumer never sees them.
  void cancel() { idx_.cancel(); }
  // Slots reserved and not yet published.
  uint32_t staged() const { return idx_.staged(); }
  // Copies one item in and publishes it (and anything reserved before it);
  // false when full, and then nothing changes.
  bool try_push(const T& item) {
    T* slot = reserve();
    if (slot == nullptr) return false;
    *slot = item;
    publish();
    return true;
  }
  // Free slots as the producer sees them (reserved slots count as used).
  uint32_t free_slots() { return idx_.free_slots(); }

  // ---- consumer ----
  // Published items not yet popped.
  uint32_t available() { return idx_.available(); }
  // The oldest published item, or nullptr when empty. The slot belongs to
  // the consumer (may be read or modified in place) until pop().
  T* front() { return peek(0); }
  // The i-th oldest published item (0 = front), or nullptr if fewer than i + 1.
  T* peek(uint32_t i) {
    uint32_t s;
    return idx_.peek(i, &s) ? &slots_[s] : nullptr;
  }
  // Gives the n oldest slots back to the producer. n must not exceed what
  // available()/front()/peek() has shown to be published.
  void pop(uint32_t n = 1) { idx_.pop(n); }
  // Copies out and pops the oldest item; false when empty.
  bool try_pop(T& out) {
    T* slot = front();
    if (slot == nullptr) return false;
    out = *slot;
    pop();
    return true;
  }

  // ---- any thread (snapshots) ----
  uint32_t size() const { return idx_.size(); }
  bool empty() const { return size() == 0; }
  bool full() const { return size() == capacity(); }

 private:
  friend class SpscRingTestPeer;

  SpscRing(std::unique_ptr<T[]> slots, uint32_t capacity)
      : slots_(std::move(slots)), idx_(capacity) {}

  const std::unique_ptr<T[]> slots_;  // read-only pointer after create
  RingIndices idx_;
};

// Ring of byte slots whose size is chosen at create time: a power of two of
// at least 8 bytes; each slot is aligned to min(slot_bytes, 64) and starts
// zeroed. Same operations and threading contract as SpscRing, on uint8_t*.
class SpscSlotRing {
 public:
  static constexpr uint32_t kMaxCapacity = RingIndices::kMaxCapacity;
  static constexpr uint32_t kMinSlotBytes = 8;
  static constexpr uint32_t kMaxSlotBytes = 1u << 20;

  static Result<std::unique_ptr<SpscSlotRing>> create(uint32_t capacity, uint32_t slot_bytes) {
    if (!detail::valid_capacity(capacity)) {
      return Status(Errc::kInvalidArgument, "ring capacity must be a power of two <= 2^31");
    }
    if (!detail::is_pow2(slot_bytes) || slot_bytes < kMinSlotBytes || slot_bytes > kMaxSlotBytes) {
      return Status(Errc::kInvalidArgument, "ring slot size must be a power of two in [8, 1 MiB]");
    }
    const uint64_t bytes = uint64_t{capacity} * slot_bytes;
    if (bytes > (uint64_t{1} << 40)) return Status(Errc::kInvalidArgument, "ring too large");
    // aligned_alloc wants a size that is a multiple of the alignment.
    const uint64_t alloc = (bytes + detail::kCacheLine - 1) & ~uint64_t{detail::kCacheLine - 1};
    std::unique_ptr<uint8_t[], Free> mem(
        static_cast<uint8_t*>(std::aligned_alloc(detail::kCacheLine, alloc)));
    if (!mem) return Status(Errc::kNoMemory, "ring slots");
    std::memset(mem.get(), 0, alloc);
    std::unique_ptr<SpscSlotRing> ring(new (std::nothrow)
                                           SpscSlotRing(std::move(mem), capacity, slot_bytes));
    if (!ring) return Status(Errc::kNoMemory, "ring");
    return ring;
  }

  SpscSlotRing(const SpscSlotRing&) = delete;
  SpscSlotRing& operator=(const SpscSlotRing&) = delete;

  uint32_t capacity() const { return idx_.capacity(); }
  uint32_t slot_bytes() const { return 1u << slot_shift_; }

  // ---- producer ----
  uint8_t* reserve() {
    uint32_t i;
    return idx_.reserve(&i) ? slot(i & idx_.mask()) : nullptr;
  }
  void publish() { (void)idx_.publish(); }
  void cancel() { idx_.cancel(); }
  uint32_t staged() const { return idx_.staged(); }
  uint32_t free_slots() { return idx_.free_slots(); }

  // ---- consumer ----
  uint32_t available() { return idx_.available(); }
  uint8_t* front() { return peek(0); }
  uint8_t* peek(uint32_t i) {
    uint32_t s;
    return idx_.peek(i, &s) ? slot(s) : nullptr;
  }
  void pop(uint32_t n = 1) { idx_.pop(n); }

  // ---- any thread (snapshots) ----
  uint32_t size() const { return idx_.size(); }
  bool empty() const { return size() == 0; }
  bool full() const { return size() == capacity(); }

  // Typed view of a slot (T must fit; its alignment must not exceed the slot's).
  template <typename T>
  static T* as(uint8_t* slot) {
    return reinterpret_cast<T*>(slot);
  }

 private:
  friend class SpscRingTestPeer;
  struct Free {
    void operator()(uint8_t* p) const { std::free(p); }
  };

  SpscSlotRing(std::unique_ptr<uint8_t[], Free> mem, uint32_t capacity, uint32_t slot_bytes)
      : mem_(std::move(mem)), slot_shift_(uint32_t(__builtin_ctz(slot_bytes))), idx_(capacity) {}

  uint8_t* slot(uint32_t s) const { return mem_.get() + (uint64_t{s} << slot_shift_); }

  const std::unique_ptr<uint8_t[], Free> mem_;  // read-only pointer after create
  const uint32_t slot_shift_;                   // log2(slot_bytes)
  RingIndices idx_;
};

}  // namespace droce
