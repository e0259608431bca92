// Tests for nic/base/spsc_ring.h: create checks, full/empty, wrap-around of
// slots and of the 32-bit indices, batched reserve/publish, byte-slot rings,
// and bounded two-thread stress tests that check order, integrity, no loss.
#include "nic/base/spsc_ring.h"

#include <gtest/gtest.h>

#include <chrono>
#include <cstdint>
#include <cstring>
#include <set>
#include <thread>

namespace droce {

// Puts both indices of an empty ring at `index`, to test 32-bit wrap-around
// without pushing 2^32 items.
class SpscRingTestPeer {
 public:
  template <typename Ring>
  static void set_indices(Ring& ring, uint32_t index) {
    ring.idx_.restart_at(index);
  }
};

namespace {

std::unique_ptr<SpscRing<uint64_t>> make_ring(uint32_t capacity) {
  auto r = SpscRing<uint64_t>::create(capacity);
  EXPECT_TRUE(r.is_ok()) << r.status().message();
  return r.is_ok() ? std::move(r).value() : nullptr;
}

TEST(SpscRing, CreateRejectsCapacitiesThatAreNotPowersOfTwo) {
  for (uint32_t bad : {0u, 3u, 5u, 6u, 12u, 1000u, (1u << 31) + 1, 0xFFFFFFFFu}) {
    auto r = SpscRing<uint64_t>::create(bad);
    ASSERT_FALSE(r.is_ok()) << bad;
    EXPECT_EQ(r.status().code(), Errc::kInvalidArgument);
  }
  for (uint32_t good : {1u, 2u, 4u, 1024u, 65536u}) {
    auto r = SpscRing<uint64_t>::create(good);
    ASSERT_TRUE(r.is_ok()) << good;
    EXPECT_EQ(r.value()->capacity(), good);
    EXPECT_TRUE(r.value()->empty());
    EXPECT_EQ(r.value()->size(), 0u);
  }
}

TEST(SpscRing, FullAndEmpty) {
  auto r = make_ring(8);
  ASSERT_TRUE(r);
  uint64_t out = 0;
  EXPECT_FALSE(r->try_pop(out));
  EXPECT_EQ(r->front(), nullptr);
  for (uint64_t i = 0; i < 8; ++i) {
    EXPECT_EQ(r->free_slots(), 8 - i);
    ASSERT_TRUE(r->try_push(100 + i)) << i;
    EXPECT_EQ(r->size(), i + 1);
  }
  EXPECT_TRUE(r->full());
  EXPECT_EQ(r->free_slots(), 0u);
  EXPECT_FALSE(r->try_push(999));
  EXPECT_EQ(r->reserve(), nullptr);
  EXPECT_EQ(r->available(), 8u);
  for (uint64_t i = 0; i < 8; ++i) {
    ASSERT_TRUE(r->try_pop(out));
    EXPECT_EQ(out, 100 + i);
  }
  EXPECT_TRUE(r->empty());
  EXPECT_FALSE(r->try_pop(out));
  EXPECT_EQ(out, 107u);  // untouched by the failed pop
  // A full ring accepts again after one pop, and only one.
  for (uint64_t i = 0; i < 8; ++i) ASSERT_TRUE(r->try_push(i));
  ASSERT_TRUE(r->try_pop(out));
  EXPECT_EQ(out, 0u);
  EXPECT_TRUE(r->try_push(8));
  EXPECT_FALSE(r->try_push(9));
  for (uint64_t i = 1; i <= 8; ++i) {
    ASSERT_TRUE(r->try_pop(out));
    EXPECT_EQ(out, i);
  }
}

TEST(SpscRing, CapacityOne) {
  auto r = make_ring(1);
  ASSERT_TRUE(r);
  uint64_t out = 0;
  for (uint64_t i = 0; i < 10; ++i) {
    ASSERT_TRUE(r->try_push(i));
    ASSERT_FALSE(r->try_push(i + 100));
    ASSERT_TRUE(r->try_pop(out));
    ASSERT_EQ(out, i);
    ASSERT_FALSE(r->try_pop(out));
  }
}

TEST(SpscRing, SlotWrapAroundKeepsOrder) {
  auto r = make_ring(4);
  ASSERT_TRUE(r);
  uint64_t next_in = 0, next_out = 0;
  // Varying fill levels so the ring position moves through every slot with
  // every occupancy, many times over.
  for (int round = 0; round < 1000; ++round) {
    const int pushes = 1 + round % 4;
    for (int i = 0; i < pushes; ++i) {
      if (!r->try_push(next_in)) break;
      ++next_in;
    }
    const int pops = 1 + (round * 7) % 4;
    for (int i = 0; i < pops; ++i) {
      uint64_t out;
      if (!r->try_pop(out)) break;
      ASSERT_EQ(out, next_out);
      ++next_out;
    }
    ASSERT_EQ(r->size(), next_in - next_out);
    ASSERT_LE(r->size(), 4u);
  }
  EXPECT_GT(next_out, 1000u);
}

TEST(SpscRing, IndexWrapAroundAt2To32) {
  auto r = make_ring(8);
  ASSERT_TRUE(r);
  SpscRingTestPeer::set_indices(*r, 0xFFFFFFFAu);
  EXPECT_TRUE(r->empty());
  EXPECT_EQ(r->free_slots(), 8u);
  uint64_t next_in = 0, next_out = 0;
  for (int round = 0; round < 64; ++round) {
    while (r->try_push(next_in)) ++next_in;
    EXPECT_TRUE(r->full());
    EXPECT_EQ(r->size(), 8u);
    for (int i = 0; i < 3; ++i) {
      uint64_t out;
      ASSERT_TRUE(r->try_pop(out));
      ASSERT_EQ(out, next_out++);
    }
    EXPECT_EQ(r->size(), 5u);
  }
  uint64_t out;
  while (r->try_pop(out)) ASSERT_EQ(out, next_out++);
  EXPECT_EQ(next_out, next_in);
  EXPECT_TRUE(r->empty());
}

TEST(SpscRing, ReservedSlotsInvisibleUntilPublished) {
  auto r = make_ring(4);
  ASSERT_TRUE(r);
  uint64_t* a = r->reserve();
  uint64_t* b = r->reserve();
  ASSERT_NE(a, nullptr);
  ASSERT_NE(b, nullptr);
  EXPECT_NE(a, b);
  *a = 1;
  *b = 2;
  EXPECT_EQ(r->staged(), 2u);
  EXPECT_EQ(r->front(), nullptr);
  EXPECT_EQ(r->available(), 0u);
  EXPECT_EQ(r->size(), 0u);
  EXPECT_EQ(r->free_slots(), 2u);
  r->publish();
  EXPECT_EQ(r->staged(), 0u);
  EXPECT_EQ(r->available(), 2u);
  ASSERT_NE(r->front(), nullptr);
  EXPECT_EQ(*r->peek(0), 1u);
  EXPECT_EQ(*r->peek(1), 2u);
  EXPECT_EQ(r->peek(2), nullptr);
  // Reserve up to full, then cancel: the consumer never sees them.
  ASSERT_NE(r->reserve(), nullptr);
  ASSERT_NE(r->reserve(), nullptr);
  EXPECT_EQ(r->reserve(), nullptr);
  r->cancel();
  EXPECT_EQ(r->staged(), 0u);
  r->publish();  // nothing staged: no-op
  EXPECT_EQ(r->available(), 2u);
  // Zero-copy consume in place, then pop both at once.
  *r->front() += 10;
  EXPECT_EQ(*r->peek(0), 11u);
  r->pop(2);
  EXPECT_TRUE(r->empty());
  EXPECT_EQ(r->front(), nullptr);
  // Cancelled slots are reused: the next reserve is where the cancelled went.
  ASSERT_TRUE(r->try_push(7));
  uint64_t out;
  ASSERT_TRUE(r->try_pop(out));
  EXPECT_EQ(out, 7u);
}

TEST(SpscRing, LargeSlots) {
  struct Wqe {
    uint64_t wr_id;
    uint8_t body[120];
  };
  auto rr = SpscRing<Wqe>::create(16);
  ASSERT_TRUE(rr.is_ok());
  auto& r = *rr.value();
  for (uint64_t i = 0; i < 16; ++i) {
    Wqe* w = r.reserve();
    ASSERT_NE(w, nullptr);
    w->wr_id = i;
    for (auto& x : w->body) x = uint8_t(i);
  }
  EXPECT_EQ(r.reserve(), nullptr);
  r.publish();
  for (uint64_t i = 0; i < 16; ++i) {
    const Wqe* w = r.peek(uint32_t(i));
    ASSERT_NE(w, nullptr);
    EXPECT_EQ(w->wr_id, i);
    EXPECT_EQ(w->body[0], uint8_t(i));
    EXPECT_EQ(w->body[119], uint8_t(i));
  }
  r.pop(16);
  EXPECT_TRUE(r.empty());
}

// Two threads, 10 million items, mixing single and batched operations on
// both sides. Each item carries its sequence number twice (plain and
// inverted) plus a filler derived from it, so a torn or stale slot read, a
// loss, a duplicate or a reordering all fail. Bounded by count and by a
// wall-clock deadline (a safety net against hangs, not a performance check).
TEST(SpscRing, TwoThreadStressOrderAndNoLoss) {
  struct Item {
    uint64_t seq;
    uint64_t inv;
    uint64_t fill[6];
  };
  constexpr uint64_t kItems = 10'000'000;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(90);
  auto rr = SpscRing<Item>::create(1024);
  ASSERT_TRUE(rr.is_ok());
  SpscRing<Item>& r = *rr.value();
  std::atomic<bool> timed_out{false};

  std::thread producer([&] {
    uint64_t seq = 0;
    uint32_t spins = 0;
    while (seq < kItems) {
      // Alternate: batches of up to 37 reserved slots, or single pushes.
      const uint64_t batch = (seq / 1000) % 2 == 0 ? 37 : 1;
      uint64_t n = 0;
      for (; n < batch && seq + n < kItems; ++n) {
        Item* it = r.reserve();
        if (it == nullptr) break;
        const uint64_t s = seq + n;
        it->seq = s;
        it->inv = ~s;
        for (int k = 0; k < 6; ++k) it->fill[k] = s * 31 + k;
      }
      if (n > 0) {
        r.publish();
        seq += n;
        spins = 0;
      } else if (++spins % 64 == 0) {
        if (std::chrono::steady_clock::now() > deadline || timed_out.load()) {
          timed_out = true;
          return;
        }
        std::this_thread::yield();
      }
    }
  });

  uint64_t expect = 0;
  uint64_t bad = 0;
  uint32_t spins = 0;
  while (expect < kItems && bad == 0) {
    const uint32_t avail = r.available();
    if (avail == 0) {
      if (++spins % 64 == 0) {
        if (std::chrono::steady_clock::now() > deadline || timed_out.load()) {
          timed_out = true;
          break;
        }
        std::this_thread::yield();
      }
      continue;
    }
    spins = 0;
    if (expect % 2 == 0) {
      // Batch: look at all available in place, then release them at once.
      for (uint32_t i = 0; i < avail; ++i) {
        const Item* it = r.peek(i);
        const uint64_t s = expect + i;
        if (it == nullptr || it->seq != s || it->inv != ~s || it->fill[0] != s * 31 ||
            it->fill[5] != s * 31 + 5) {
          ++bad;
          break;
        }
      }
      if (bad) break;
      r.pop(avail);
      expect += avail;
    } else {
      Item it;
      if (!r.try_pop(it)) {
        ++bad;
        break;
      }
      if (it.seq != expect || it.inv != ~expect || it.fill[3] != expect * 31 + 3) {
        ++bad;
        break;
      }
      ++expect;
    }
  }
  if (bad) timed_out = true;  // stop the producer
  producer.join();
  EXPECT_EQ(bad, 0u) << "first bad item at seq " << expect;
  EXPECT_FALSE(timed_out.load() && bad == 0) << "deadline hit at seq " << expect;
  EXPECT_EQ(expect, kItems);
  EXPECT_TRUE(r.empty());
  Item extra;
  EXPECT_FALSE(r.try_pop(extra));
}

// ---- SpscSlotRing --------------------------------------------------------------

TEST(SpscSlotRing, CreateChecksCapacityAndSlotSize) {
  for (uint32_t bad : {0u, 3u, 24u, (1u << 31) + 1}) {
    auto r = SpscSlotRing::create(bad, 64);
    ASSERT_FALSE(r.is_ok()) << bad;
    EXPECT_EQ(r.status().code(), Errc::kInvalidArgument);
  }
  for (uint32_t bad : {0u, 1u, 4u, 48u, 100u, 1u << 21}) {
    auto r = SpscSlotRing::create(16, bad);
    ASSERT_FALSE(r.is_ok()) << bad;
    EXPECT_EQ(r.status().code(), Errc::kInvalidArgument);
  }
  // 2^31 slots of 1 MiB is far beyond any real ring: refused, not attempted.
  EXPECT_FALSE(SpscSlotRing::create(1u << 31, 1u << 20).is_ok());
  auto r = SpscSlotRing::create(8, 256);
  ASSERT_TRUE(r.is_ok());
  EXPECT_EQ(r.value()->capacity(), 8u);
  EXPECT_EQ(r.value()->slot_bytes(), 256u);
}

TEST(SpscSlotRing, SlotsAreDistinctAlignedZeroedAndDisjoint) {
  for (uint32_t slot_bytes : {8u, 16u, 64u, 128u, 4096u}) {
    auto rr = SpscSlotRing::create(16, slot_bytes);
    ASSERT_TRUE(rr.is_ok());
    SpscSlotRing& r = *rr.value();
    std::set<uintptr_t> seen;
    const uint32_t align = slot_bytes < 64 ? slot_bytes : 64;
    for (uint32_t i = 0; i < 16; ++i) {
      uint8_t* s = r.reserve();
      ASSERT_NE(s, nullptr);
      EXPECT_EQ(reinterpret_cast<uintptr_t>(s) % align, 0u) << slot_bytes;
      for (uint32_t b = 0; b < slot_bytes; ++b) ASSERT_EQ(s[b], 0) << "slot not zeroed";
      std::memset(s, int(i + 1), slot_bytes);  // would clobber a neighbour if overlapping
      seen.insert(reinterpret_cast<uintptr_t>(s));
    }
    EXPECT_EQ(seen.size(), 16u);
    EXPECT_EQ(r.reserve(), nullptr);
    r.publish();
    for (uint32_t i = 0; i < 16; ++i) {
      const uint8_t* s = r.peek(i);
      ASSERT_NE(s, nullptr);
      EXPECT_EQ(s[0], uint8_t(i + 1));
      EXPECT_EQ(s[slot_bytes - 1], uint8_t(i + 1));
    }
    r.pop(16);
    EXPECT_TRUE(r.empty());
  }
}

TEST(SpscSlotRing, WrapAroundAndIndexWrap) {
  auto rr = SpscSlotRing::create(4, 32);
  ASSERT_TRUE(rr.is_ok());
  SpscSlotRing& r = *rr.value();
  SpscRingTestPeer::set_indices(r, 0xFFFFFFFEu);
  uint64_t next_in = 0, next_out = 0;
  for (int round = 0; round < 500; ++round) {
    for (int i = 0; i < 1 + round % 5; ++i) {
      uint8_t* s = r.reserve();
      if (s == nullptr) break;
      std::memcpy(s, &next_in, 8);
      ++next_in;
    }
    if (round % 3 == 0)
      r.cancel();
    else
      r.publish();
    if (round % 3 == 0) next_in = next_out + r.size();  // cancelled ones never happened
    for (int i = 0; i < 1 + round % 3; ++i) {
      uint8_t* s = r.front();
      if (s == nullptr) break;
      uint64_t v;
      std::memcpy(&v, s, 8);
      ASSERT_EQ(v, next_out) << "round " << round;
      r.pop();
      ++next_out;
    }
    ASSERT_LE(r.size(), 4u);
  }
  EXPECT_GT(next_out, 300u);
}

// WQE-like variable content in 256-byte slots across two threads.
TEST(SpscSlotRing, TwoThreadStressOrderAndNoLoss) {
  constexpr uint64_t kItems = 2'000'000;
  constexpr uint32_t kSlot = 256;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(90);
  auto rr = SpscSlotRing::create(256, kSlot);
  ASSERT_TRUE(rr.is_ok());
  SpscSlotRing& r = *rr.value();
  std::atomic<bool> stop{false};

  std::thread producer([&] {
    uint64_t seq = 0;
    uint32_t spins = 0;
    while (seq < kItems && !stop.load(std::memory_order_relaxed)) {
      uint64_t n = 0;
      for (; n < 8 && seq + n < kItems; ++n) {
        uint8_t* s = r.reserve();
        if (s == nullptr) break;
        const uint64_t v = seq + n;
        std::memcpy(s, &v, 8);
        std::memset(s + 8, int(v & 0xFF), kSlot - 16);
        const uint64_t inv = ~v;
        std::memcpy(s + kSlot - 8, &inv, 8);
      }
      if (n > 0) {
        r.publish();
        seq += n;
        spins = 0;
      } else if (++spins % 64 == 0) {
        if (std::chrono::steady_clock::now() > deadline) return;
        std::this_thread::yield();
      }
    }
  });

  uint64_t expect = 0;
  bool bad = false, late = false;
  uint32_t spins = 0;
  while (expect < kItems && !bad) {
    const uint8_t* s = r.front();
    if (s == nullptr) {
      if (++spins % 64 == 0) {
        if (std::chrono::steady_clock::now() > deadline) {
          late = true;
          break;
        }
        std::this_thread::yield();
      }
      continue;
    }
    spins = 0;
    uint64_t v, inv;
    std::memcpy(&v, s, 8);
    std::memcpy(&inv, s + kSlot - 8, 8);
    bad =
        v != expect || inv != ~expect || s[8] != uint8_t(expect) || s[kSlot - 9] != uint8_t(expect);
    if (bad) break;
    r.pop();
    ++expect;
  }
  stop = true;
  producer.join();
  EXPECT_FALSE(bad) << "bad slot at seq " << expect;
  EXPECT_FALSE(late) << "deadline hit at seq " << expect;
  EXPECT_EQ(expect, kItems);
  EXPECT_TRUE(r.empty());
}

}  // namespace
}  // namespace droce
