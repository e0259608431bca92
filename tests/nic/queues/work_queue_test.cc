// Tests for nic/work_queue.h: create checks, stride helpers, wrap-around of
// slots (strides 16..4096) and of the 32-bit indices, full/empty, retire
// semantics, cancel, discard_all, counters, and the SRQ limit event.
#include "nic/work_queue.h"

#include <gtest/gtest.h>

#include <cstring>
#include <mutex>
#include <thread>

#include "nic/wqe.h"

namespace droce::nic {

// Puts every index of an empty queue at `index`, to test 32-bit wrap-around.
class WorkQueueTestPeer {
 public:
  static void set_indices(WorkQueue& wq, uint32_t index) {
    wq.idx_.restart_at(index);
  }
};

namespace {

std::unique_ptr<WorkQueue> make_wq(uint32_t depth, uint32_t stride) {
  auto r = WorkQueue::create(depth, stride);
  EXPECT_TRUE(r.is_ok()) << r.status().message();
  return r.is_ok() ? std::move(r).value() : nullptr;
}

// Fills a whole slot with bytes derived from seq; check_stamp verifies them.
void stamp(uint8_t* slot, uint32_t stride, uint64_t seq) {
  std::memcpy(slot, &seq, sizeof(seq));
  for (uint32_t i = sizeof(seq); i < stride; ++i) slot[i] = static_cast<uint8_t>(seq * 31 + i);
}
bool check_stamp(const uint8_t* slot, uint32_t stride, uint64_t seq) {
  uint64_t got;
  std::memcpy(&got, slot, sizeof(got));
  if (got != seq) return false;
  for (uint32_t i = sizeof(seq); i < stride; ++i) {
    if (slot[i] != static_cast<uint8_t>(seq * 31 + i)) return false;
  }
  return true;
}

TEST(WorkQueue, CreateValidatesDepthAndStride) {
  for (uint32_t bad : {0u, WorkQueue::kMaxDepth + 1, 0xFFFFFFFFu}) {
    auto r = WorkQueue::create(bad, 64);
    ASSERT_FALSE(r.is_ok()) << bad;
    EXPECT_EQ(r.status().code(), Errc::kInvalidArgument);
  }
  for (uint32_t bad : {0u, 8u, 15u, 24u, 100u, 96u, WorkQueue::kMaxStride * 2}) {
    auto r = WorkQueue::create(4, bad);
    ASSERT_FALSE(r.is_ok()) << bad;
    EXPECT_EQ(r.status().code(), Errc::kInvalidArgument);
  }
  const struct {
    uint32_t depth, capacity;
  } cases[] = {{1, 1}, {2, 2}, {3, 4}, {5, 8}, {8, 8}, {1000, 1024}, {16384, 16384}};
  for (const auto& c : cases) {
    auto wq = make_wq(c.depth, 128);
    ASSERT_TRUE(wq);
    EXPECT_EQ(wq->capacity(), c.capacity) << c.depth;
    EXPECT_EQ(wq->stride(), 128u);
    EXPECT_EQ(wq->outstanding(), 0u);
    EXPECT_EQ(wq->free_slots(), c.capacity);
  }
}

TEST(WorkQueue, StrideHelpersFitTheWqeLayouts) {
  // Header 64 B + max(max_sge * 16, max_inline), rounded up to a power of two.
  EXPECT_EQ(WorkQueue::send_stride(0, 0), 64u);
  EXPECT_EQ(WorkQueue::send_stride(1, 0), 128u);  // 80
  EXPECT_EQ(WorkQueue::send_stride(4, 0), 128u);  // 128 exactly
  EXPECT_EQ(WorkQueue::send_stride(5, 0), 256u);  // 144
  EXPECT_EQ(WorkQueue::send_stride(0, 64), 128u);
  EXPECT_EQ(WorkQueue::send_stride(0, 65), 256u);
  EXPECT_EQ(WorkQueue::send_stride(2, 200), 512u);    // inline wins: 264
  EXPECT_EQ(WorkQueue::send_stride(32, 100), 1024u);  // SGEs win: 576
  EXPECT_EQ(WorkQueue::send_stride(252, 0), 4096u);
  EXPECT_EQ(WorkQueue::send_stride(253, 0), 8192u);
  EXPECT_EQ(WorkQueue::send_stride(0, WorkQueue::kMaxStride - 64), WorkQueue::kMaxStride);
  EXPECT_EQ(WorkQueue::send_stride(0, WorkQueue::kMaxStride - 63), 0u);
  EXPECT_EQ(WorkQueue::send_stride(0xFFFFFFFFu, 0), 0u);  // no 32-bit overflow
  // Header 16 B + max_sge * 16.
  EXPECT_EQ(WorkQueue::recv_stride(0), 16u);
  EXPECT_EQ(WorkQueue::recv_stride(1), 32u);
  EXPECT_EQ(WorkQueue::recv_stride(3), 64u);
  EXPECT_EQ(WorkQueue::recv_stride(4), 128u);
  EXPECT_EQ(WorkQueue::recv_stride(0xFFFFFFFFu), 0u);
  // Every helper result is accepted by create().
  for (uint32_t sge = 0; sge <= 64; ++sge) {
    EXPECT_TRUE(WorkQueue::create(2, WorkQueue::send_stride(sge, 0)).is_ok()) << sge;
    EXPECT_TRUE(WorkQueue::create(2, WorkQueue::recv_stride(sge)).is_ok()) << sge;
    EXPECT_GE(WorkQueue::send_stride(sge, 0), sizeof(SendWqe) + sge * sizeof(Sge));
    EXPECT_GE(WorkQueue::recv_stride(sge), sizeof(RecvWqe) + sge * sizeof(Sge));
  }
}

TEST(WorkQueue, SlotsAreDistinctAlignedAndRepeatEveryCapacity) {
  for (uint32_t stride = 16; stride <= 4096; stride *= 2) {
    auto wq = make_wq(8, stride);
    ASSERT_TRUE(wq);
    const uintptr_t base = reinterpret_cast<uintptr_t>(wq->slot(0));
    EXPECT_EQ(base % 64, 0u) << stride;
    for (uint32_t i = 0; i < 8; ++i) {
      EXPECT_EQ(reinterpret_cast<uintptr_t>(wq->slot(i)), base + uint64_t{i} * stride);
      EXPECT_EQ(wq->slot(i + 8), wq->slot(i));
      EXPECT_EQ(wq->slot(i + 0x80000000u), wq->slot(i));
      for (uint32_t b = 0; b < stride; ++b) ASSERT_EQ(wq->slot(i)[b], 0) << "slots start zeroed";
    }
  }
}

// Posts `total` stamped WQEs in batches of 1..capacity, the engine checking
// each and retiring it; the reserved pointer is always the engine's slot.
void run_wrap(WorkQueue& wq, uint32_t total) {
  const uint32_t start = wq.published();
  uint32_t posted = 0, cursor = start, batch = 1;
  while (posted < total) {
    {
      std::lock_guard<SpinLock> lock(wq.producer_lock());
      for (uint32_t k = 0; k < batch && posted < total; ++k, ++posted) {
        uint8_t* s = wq.reserve();
        ASSERT_NE(s, nullptr) << posted;
        ASSERT_EQ(s, wq.slot(start + posted));
        stamp(s, wq.stride(), posted);
      }
      wq.publish();
    }
    const uint32_t published = wq.published();
    ASSERT_EQ(published - start, posted);
    for (; cursor != published; ++cursor) {
      ASSERT_TRUE(check_stamp(wq.slot(cursor), wq.stride(), cursor - start)) << cursor;
    }
    wq.retire(cursor);
    ASSERT_EQ(wq.outstanding(), 0u);
    batch = batch % wq.capacity() + 1;
  }
}

TEST(WorkQueue, WrapAroundAtEveryStride) {
  for (uint32_t stride = 16; stride <= 4096; stride *= 2) {
    auto wq = make_wq(6, stride);  // capacity 8
    ASSERT_TRUE(wq);
    run_wrap(*wq, 8 * 13 + 5);
    EXPECT_EQ(wq->posted(), 8u * 13 + 5) << stride;
    EXPECT_EQ(wq->retired(), 8u * 13 + 5);
    EXPECT_EQ(wq->discarded(), 0u);
  }
}

TEST(WorkQueue, WrapAroundOfThe32BitIndices) {
  for (uint32_t stride : {64u, 4096u}) {
    auto wq = make_wq(8, stride);
    ASSERT_TRUE(wq);
    WorkQueueTestPeer::set_indices(*wq, 0xFFFFFFF0u);
    run_wrap(*wq, 100);
    EXPECT_EQ(wq->published(), 0xFFFFFFF0u + 100);  // wrapped past zero
    EXPECT_EQ(wq->completed(), wq->published());
  }
}

TEST(WorkQueue, FullAndEmpty) {
  auto wq = make_wq(4, 64);
  ASSERT_TRUE(wq);
  std::lock_guard<SpinLock> lock(wq->producer_lock());
  for (uint32_t i = 0; i < 4; ++i) {
    EXPECT_EQ(wq->free_slots(), 4 - i);
    ASSERT_NE(wq->reserve(), nullptr) << i;
    EXPECT_EQ(wq->staged(), i + 1);
  }
  EXPECT_EQ(wq->reserve(), nullptr) << "staged slots count as used";
  EXPECT_EQ(wq->published(), 0u) << "nothing visible before the doorbell";
  EXPECT_EQ(wq->publish(), 4u);
  EXPECT_EQ(wq->publish(), 0u);
  EXPECT_EQ(wq->published(), 4u);
  EXPECT_EQ(wq->outstanding(), 4u);
  EXPECT_EQ(wq->reserve(), nullptr);
  EXPECT_EQ(wq->free_slots(), 0u);
  wq->retire(1);
  EXPECT_EQ(wq->free_slots(), 1u);
  EXPECT_EQ(wq->reserve(), wq->slot(0)) << "exactly the retired slot comes back";
  EXPECT_EQ(wq->reserve(), nullptr);
}

TEST(WorkQueue, SlotsAreNotReusedBeforeRetire) {
  // SQ use: the engine has sent every WQE (cursor == published) but awaits
  // their ACKs, so it must still be able to re-read them for a retransmit.
  auto wq = make_wq(4, 256);
  ASSERT_TRUE(wq);
  {
    std::lock_guard<SpinLock> lock(wq->producer_lock());
    for (uint64_t i = 0; i < 4; ++i) stamp(wq->reserve(), 256, 1000 + i);
    wq->publish();
  }
  const uint32_t sent_cursor = wq->published();
  for (int attempt = 0; attempt < 10; ++attempt) {
    std::lock_guard<SpinLock> lock(wq->producer_lock());
    ASSERT_EQ(wq->reserve(), nullptr);
  }
  for (uint32_t i = 0; i < sent_cursor; ++i) {
    EXPECT_TRUE(check_stamp(wq->slot(i), 256, 1000 + i)) << "retransmit reads WQE " << i;
  }
  wq->retire(2);  // WQEs 0 and 1 acknowledged
  std::lock_guard<SpinLock> lock(wq->producer_lock());
  uint8_t* a = wq->reserve();
  uint8_t* b = wq->reserve();
  EXPECT_EQ(a, wq->slot(0));
  EXPECT_EQ(b, wq->slot(1));
  EXPECT_EQ(wq->reserve(), nullptr);
  stamp(a, 256, 7);
  stamp(b, 256, 8);
  wq->publish();
  EXPECT_TRUE(check_stamp(wq->slot(2), 256, 1002)) << "unretired WQEs untouched";
  EXPECT_TRUE(check_stamp(wq->slot(3), 256, 1003));
  EXPECT_EQ(wq->outstanding(), 4u);
}

TEST(WorkQueue, CancelForgetsStagedSlots) {
  auto wq = make_wq(8, 64);
  ASSERT_TRUE(wq);
  std::lock_guard<SpinLock> lock(wq->producer_lock());
  uint8_t* first = wq->reserve();
  wq->reserve();
  wq->reserve();
  EXPECT_EQ(wq->staged(), 3u);
  wq->cancel();
  EXPECT_EQ(wq->staged(), 0u);
  EXPECT_EQ(wq->publish(), 0u);
  EXPECT_EQ(wq->published(), 0u);
  EXPECT_EQ(wq->posted(), 0u);
  EXPECT_EQ(wq->reserve(), first);
  EXPECT_EQ(wq->publish(), 1u);
  EXPECT_EQ(wq->posted(), 1u);
}

TEST(WorkQueue, DiscardAllDropsEveryPostedWqe) {
  auto wq = make_wq(8, 64);
  ASSERT_TRUE(wq);
  std::lock_guard<SpinLock> lock(wq->producer_lock());
  for (int i = 0; i < 5; ++i) wq->reserve();
  wq->publish();
  wq->retire(2);
  EXPECT_EQ(wq->discard_all(), 3u);
  EXPECT_EQ(wq->outstanding(), 0u);
  EXPECT_EQ(wq->completed(), wq->published());
  EXPECT_EQ(wq->posted(), 5u);
  EXPECT_EQ(wq->retired(), 2u);
  EXPECT_EQ(wq->discarded(), 3u);
  EXPECT_EQ(wq->discard_all(), 0u) << "idempotent";
  EXPECT_EQ(wq->free_slots(), 8u);
  for (int i = 0; i < 8; ++i) ASSERT_NE(wq->reserve(), nullptr) << i;
  EXPECT_EQ(wq->reserve(), nullptr);
}

TEST(SpinLock, ExcludesOtherHolders) {
  SpinLock lock;
  EXPECT_TRUE(lock.try_lock());
  bool other = true;
  std::thread([&] { other = lock.try_lock(); }).join();
  EXPECT_FALSE(other);
  lock.unlock();
  std::thread([&] { other = lock.try_lock(); }).join();
  EXPECT_TRUE(other);
  lock.unlock();
}

// ---- SRQ ----

std::unique_ptr<SharedReceiveQueue> make_srq(uint32_t depth, uint32_t max_sge = 1) {
  auto r = SharedReceiveQueue::create(depth, max_sge);
  EXPECT_TRUE(r.is_ok()) << r.status().message();
  return r.is_ok() ? std::move(r).value() : nullptr;
}

void post_recvs(SharedReceiveQueue& srq, uint32_t n, uint64_t first_wr_id = 0) {
  std::lock_guard<SpinLock> lock(srq.wq().producer_lock());
  for (uint32_t i = 0; i < n; ++i) {
    uint8_t* s = srq.wq().reserve();
    ASSERT_NE(s, nullptr);
    auto* wqe = reinterpret_cast<RecvWqe*>(s);
    wqe->wr_id = first_wr_id + i;
    wqe->num_sge = 1;
    wqe->sges()[0] = Sge{0x1000 + i, 64, 7};
  }
  srq.wq().publish();
}

// Consumes n WQEs; returns how many consumes reported the limit event.
int consume(SharedReceiveQueue& srq, uint32_t n) {
  int fired = 0;
  for (uint32_t i = 0; i < n; ++i) {
    EXPECT_NE(srq.front(), nullptr);
    if (srq.front() == nullptr) break;
    fired += srq.consume() ? 1 : 0;
  }
  return fired;
}

TEST(SharedReceiveQueue, CreateUsesTheRecvStride) {
  auto srq = make_srq(10, 3);
  ASSERT_TRUE(srq);
  EXPECT_EQ(srq->capacity(), 16u);
  EXPECT_EQ(srq->wq().stride(), 64u);
  EXPECT_EQ(srq->limit(), 0u);
  EXPECT_FALSE(SharedReceiveQueue::create(0, 1).is_ok());
  EXPECT_FALSE(SharedReceiveQueue::create(4, 0xFFFFFFFFu).is_ok());
}

TEST(SharedReceiveQueue, ConsumeTakesWqesInOrderAndFreesTheirSlots) {
  auto srq = make_srq(4);
  ASSERT_TRUE(srq);
  EXPECT_EQ(srq->front(), nullptr);
  post_recvs(*srq, 4, 100);
  {
    std::lock_guard<SpinLock> lock(srq->wq().producer_lock());
    EXPECT_EQ(srq->wq().reserve(), nullptr);
  }
  for (uint64_t i = 0; i < 4; ++i) {
    const auto* wqe = reinterpret_cast<const RecvWqe*>(srq->front());
    ASSERT_NE(wqe, nullptr);
    EXPECT_EQ(wqe->wr_id, 100 + i);
    EXPECT_EQ(wqe->sges()[0].addr, 0x1000 + i);
    EXPECT_FALSE(srq->consume());
    EXPECT_EQ(srq->wq().retired(), i + 1) << "consumed slots are retired at once";
    std::lock_guard<SpinLock> lock(srq->wq().producer_lock());
    EXPECT_EQ(srq->wq().free_slots(), i + 1);
  }
  EXPECT_EQ(srq->front(), nullptr);
}

TEST(SharedReceiveQueue, LimitFiresOnceWhenTheCountFallsBelowIt) {
  auto srq = make_srq(16);
  ASSERT_TRUE(srq);
  post_recvs(*srq, 10);
  ASSERT_TRUE(srq->arm_limit(4).is_ok());
  EXPECT_EQ(consume(*srq, 6), 0) << "10 -> 4 WQEs: not below the limit";
  EXPECT_EQ(srq->limit(), 4u);
  EXPECT_TRUE(srq->consume()) << "4 -> 3 WQEs: below the limit";
  EXPECT_EQ(srq->limit(), 0u) << "disarmed";
  EXPECT_EQ(consume(*srq, 3), 0) << "fires once";
  post_recvs(*srq, 5);
  EXPECT_EQ(consume(*srq, 5), 0) << "stays disarmed";
}

TEST(SharedReceiveQueue, LimitArmedAboveTheCountFiresAtTheNextConsumeNotAtArm) {
  auto srq = make_srq(16);
  ASSERT_TRUE(srq);
  post_recvs(*srq, 3);
  ASSERT_TRUE(srq->arm_limit(5).is_ok());  // 3 < 5 already: arming itself reports nothing
  EXPECT_EQ(srq->limit(), 5u);
  post_recvs(*srq, 1);  // posting never fires (4 WQEs)
  EXPECT_EQ(srq->limit(), 5u);
  EXPECT_TRUE(srq->consume()) << "4 -> 3 < 5";
  EXPECT_EQ(srq->limit(), 0u);
}

TEST(SharedReceiveQueue, LimitAtTheCountFiresOnTheFirstConsume) {
  auto srq = make_srq(8);
  ASSERT_TRUE(srq);
  post_recvs(*srq, 5);
  ASSERT_TRUE(srq->arm_limit(5).is_ok());
  EXPECT_TRUE(srq->consume());
}

TEST(SharedReceiveQueue, RearmAfterTheEventFiresAgain) {
  auto srq = make_srq(16);
  ASSERT_TRUE(srq);
  post_recvs(*srq, 8);
  ASSERT_TRUE(srq->arm_limit(6).is_ok());
  EXPECT_EQ(consume(*srq, 3), 1);  // 8 -> 5: fired at 5
  post_recvs(*srq, 6);             // 11
  ASSERT_TRUE(srq->arm_limit(2).is_ok());
  EXPECT_EQ(consume(*srq, 9), 0);  // 11 -> 2
  EXPECT_EQ(consume(*srq, 1), 1);  // 2 -> 1
  EXPECT_EQ(consume(*srq, 1), 0);
}

TEST(SharedReceiveQueue, ZeroDisarmsAndLimitsAboveCapacityAreRefused) {
  auto srq = make_srq(8);
  ASSERT_TRUE(srq);
  post_recvs(*srq, 5);
  ASSERT_TRUE(srq->arm_limit(3).is_ok());
  ASSERT_TRUE(srq->arm_limit(0).is_ok());
  EXPECT_EQ(consume(*srq, 5), 0);
  const Status s = srq->arm_limit(9);
  EXPECT_EQ(s.code(), Errc::kInvalidArgument);
  EXPECT_EQ(srq->limit(), 0u) << "a refused modify changes nothing";
  EXPECT_TRUE(srq->arm_limit(8).is_ok());
  EXPECT_EQ(srq->limit(), 8u);
}

}  // namespace
}  // namespace droce::nic
