// Tests for the SRQ resize of nic/work_queue.h (ibv_modify_srq IBV_SRQ_MAX_WR,
// as rdma_rxe): posted WQEs kept in order across grow and shrink (also across
// the 32-bit index wrap), refusals below the WQEs posted or the armed limit,
// the limit event after a resize, and a bounded three-thread run (poster,
// consumer standing for the engine, resizer) that checks every WQE arrives once,
// in order, intact.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <mutex>
#include <thread>
#include <vector>

#include "nic/work_queue.h"
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

constexpr uint32_t kMaxSge = 2;

std::unique_ptr<SharedReceiveQueue> make_srq(uint32_t depth) {
  auto r = SharedReceiveQueue::create(depth, kMaxSge);
  EXPECT_TRUE(r.is_ok()) << r.status().message();
  return r.is_ok() ? std::move(r).value() : nullptr;
}

// WQE wr_id carries two SGEs derived from it, so a moved slot is checked whole.
Sge sge_for(uint64_t wr_id, uint32_t i) {
  return Sge{wr_id * 1000 + i, uint32_t(wr_id % 4096 + i), uint32_t(wr_id ^ 0x5A5A) + i};
}
int post(SharedReceiveQueue& q, uint64_t wr_id) {
  const Sge s[kMaxSge] = {sge_for(wr_id, 0), sge_for(wr_id, 1)};
  return post_recv_wqe(q.wq(), wr_id, s, kMaxSge);
}
// Takes the front WQE and checks it is wr_id with its SGEs.
void take(SharedReceiveQueue& q, uint64_t wr_id) {
  const auto* w = reinterpret_cast<const RecvWqe*>(q.front());
  ASSERT_NE(w, nullptr) << "expected WQE " << wr_id;
  EXPECT_EQ(w->wr_id, wr_id);
  ASSERT_EQ(w->num_sge, kMaxSge);
  for (uint32_t i = 0; i < kMaxSge; ++i) {
    EXPECT_EQ(w->sges()[i].addr, sge_for(wr_id, i).addr) << wr_id;
    EXPECT_EQ(w->sges()[i].length, sge_for(wr_id, i).length) << wr_id;
    EXPECT_EQ(w->sges()[i].lkey, sge_for(wr_id, i).lkey) << wr_id;
  }
  (void)q.consume();
}

TEST(SrqResize, GrowKeepsWrappedPostedWqesInOrder) {
  auto q = make_srq(8);
  ASSERT_EQ(q->capacity(), 8u);
  for (uint64_t i = 0; i < 8; ++i) ASSERT_EQ(post(*q, i), 0);
  for (uint64_t i = 0; i < 5; ++i) take(*q, i);
  for (uint64_t i = 8; i < 13; ++i) ASSERT_EQ(post(*q, i), 0);  // wraps the 8-slot ring
  ASSERT_EQ(post(*q, 99), ENOMEM);
  ASSERT_TRUE(q->resize(20).is_ok());
  EXPECT_EQ(q->capacity(), 32u);
  EXPECT_EQ(q->wq().outstanding(), 8u);
  for (uint64_t i = 13; i < 37; ++i) ASSERT_EQ(post(*q, i), 0) << i;
  EXPECT_EQ(post(*q, 99), ENOMEM) << "32 posted: full";
  for (uint64_t i = 5; i < 37; ++i) take(*q, i);
  EXPECT_EQ(q->front(), nullptr);
  // The grown ring goes on wrapping.
  for (uint64_t round = 0; round < 3; ++round) {
    for (uint64_t i = 0; i < 32; ++i) ASSERT_EQ(post(*q, 100 + i), 0);
    for (uint64_t i = 0; i < 32; ++i) take(*q, 100 + i);
  }
}

TEST(SrqResize, ShrinkToThePostedCountButNotBelow) {
  auto q = make_srq(64);
  for (uint64_t i = 0; i < 30; ++i) ASSERT_EQ(post(*q, i), 0);
  for (uint64_t i = 0; i < 10; ++i) take(*q, i);  // 20 posted, at slots 10..29
  const Status below = q->resize(19);
  EXPECT_EQ(below.code(), Errc::kInvalidArgument);
  EXPECT_EQ(q->capacity(), 64u) << "a refused resize changes nothing";
  EXPECT_EQ(q->wq().outstanding(), 20u);
  ASSERT_TRUE(q->resize(20).is_ok());
  EXPECT_EQ(q->capacity(), 32u);
  for (uint64_t i = 30; i < 42; ++i) ASSERT_EQ(post(*q, i), 0);
  EXPECT_EQ(post(*q, 99), ENOMEM);
  EXPECT_EQ(q->resize(31).code(), Errc::kInvalidArgument);
  for (uint64_t i = 10; i < 40; ++i) take(*q, i);
  EXPECT_EQ(q->resize(1).code(), Errc::kInvalidArgument) << "2 posted";
  ASSERT_TRUE(q->resize(2).is_ok());
  EXPECT_EQ(q->capacity(), 2u);
  take(*q, 40);
  take(*q, 41);
  EXPECT_EQ(q->front(), nullptr);
  ASSERT_TRUE(q->resize(1).is_ok());
  EXPECT_EQ(q->capacity(), 1u);
  ASSERT_EQ(post(*q, 7), 0);
  EXPECT_EQ(post(*q, 8), ENOMEM);
  take(*q, 7);
}

TEST(SrqResize, RefusesZeroAndBeyondTheMaximum) {
  auto q = make_srq(4);
  EXPECT_EQ(q->resize(0).code(), Errc::kInvalidArgument);
  EXPECT_EQ(q->resize(WorkQueue::kMaxDepth + 1).code(), Errc::kInvalidArgument);
  EXPECT_EQ(q->capacity(), 4u);
}

TEST(SrqResize, AcrossThe32BitIndexWrap) {
  auto q = make_srq(8);
  WorkQueueTestPeer::set_indices(q->wq(), 0xFFFFFFFCu);
  for (uint64_t i = 0; i < 8; ++i) ASSERT_EQ(post(*q, i), 0);  // indices wrap past 2^32
  take(*q, 0);
  ASSERT_TRUE(q->resize(100).is_ok());
  EXPECT_EQ(q->capacity(), 128u);
  for (uint64_t i = 8; i < 100; ++i) ASSERT_EQ(post(*q, i), 0);
  ASSERT_TRUE(q->resize(99).is_ok()) << "99 posted";
  for (uint64_t i = 1; i < 100; ++i) take(*q, i);
  EXPECT_EQ(q->front(), nullptr);
}

TEST(SrqResize, LimitBoundsTheSizeAndStillFiresAfterAResize) {
  auto q = make_srq(16);
  ASSERT_TRUE(q->arm_limit(10).is_ok());
  EXPECT_EQ(q->resize(9).code(), Errc::kInvalidArgument) << "below the armed limit (rxe)";
  EXPECT_EQ(q->capacity(), 16u);
  EXPECT_EQ(q->limit(), 10u);
  for (uint64_t i = 0; i < 12; ++i) ASSERT_EQ(post(*q, i), 0);
  ASSERT_TRUE(q->resize(40).is_ok());
  EXPECT_EQ(q->limit(), 10u) << "the limit stays armed";
  for (uint64_t i = 12; i < 20; ++i) ASSERT_EQ(post(*q, i), 0);
  // 20 posted: consuming 10 leaves 10 (not below); the 11th leaves 9.
  int fired = 0;
  for (uint64_t i = 0; i < 11; ++i) {
    const auto* w = reinterpret_cast<const RecvWqe*>(q->front());
    ASSERT_NE(w, nullptr);
    EXPECT_EQ(w->wr_id, i);
    const bool f = q->consume();
    fired += f ? 1 : 0;
    EXPECT_EQ(f, i == 10) << i;
  }
  EXPECT_EQ(fired, 1);
  EXPECT_EQ(q->limit(), 0u);
  // Disarmed: any size goes (down to the 9 posted).
  ASSERT_TRUE(q->resize(9).is_ok());
  EXPECT_EQ(q->capacity(), 16u);
  for (uint64_t i = 11; i < 20; ++i) take(*q, i);
}

// A poster thread, a consumer thread taking under `engine` (the engine lock)
// and the main thread resizing under it, bounded in count and time.
TEST(SrqResize, ConcurrentPostersAndConsumerSeeEveryWqeOnceInOrder) {
  constexpr uint64_t kWqes = 200000;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  auto q = make_srq(16);
  std::mutex engine;
  std::atomic<bool> stop{false};
  std::atomic<uint64_t> bad{0};
  std::atomic<uint64_t> consumed{0};
  // The last WQE waits until the queue has both grown and shrunk while the
  // others were in flight: on a fast run the consumer could otherwise finish
  // before the resizer happened to draw a smaller size that fits.
  std::atomic<bool> resized_both{false};
  std::thread poster([&] {
    for (uint64_t i = 0; i < kWqes && !stop.load();) {
      if (i == kWqes - 1) {
        while (!resized_both.load() && std::chrono::steady_clock::now() < deadline) {
          std::this_thread::yield();
        }
      }
      if (post(*q, i) == 0) {
        ++i;
      } else {
        std::this_thread::yield();  // full
      }
    }
  });
  std::thread consumer([&] {
    uint64_t next = 0;
    while (next < kWqes && !stop.load()) {
      std::lock_guard<std::mutex> lock(engine);
      for (int k = 0; k < 64; ++k) {
        const auto* w = reinterpret_cast<const RecvWqe*>(q->front());
        if (w == nullptr) break;
        bool ok = w->wr_id == next && w->num_sge == kMaxSge;
        for (uint32_t i = 0; ok && i < kMaxSge; ++i) {
          ok = w->sges()[i].addr == sge_for(next, i).addr &&
               w->sges()[i].lkey == sge_for(next, i).lkey;
        }
        if (!ok) bad.fetch_add(1);
        (void)q->consume();
        ++next;
      }
      consumed.store(next);
    }
  });
  uint64_t grows = 0, shrinks = 0, refused = 0;
  uint32_t depth = 16;
  uint64_t seed = 1;
  while (consumed.load() < kWqes && std::chrono::steady_clock::now() < deadline) {
    seed = seed * 6364136223846793005ull + 1442695040888963407ull;
    const uint32_t want = 1 + uint32_t((seed >> 33) % 512);
    {
      std::lock_guard<std::mutex> lock(engine);
      const Status st = q->resize(want);
      if (st.is_ok()) {
        if (q->capacity() > depth) ++grows;
        if (q->capacity() < depth) ++shrinks;
        depth = q->capacity();
        if (grows > 0 && shrinks > 0) resized_both.store(true);
      } else {
        EXPECT_EQ(st.code(), Errc::kInvalidArgument);
        ++refused;
      }
    }
    std::this_thread::yield();
  }
  stop.store(true);
  poster.join();
  consumer.join();
  EXPECT_EQ(consumed.load(), kWqes) << "bounded run did not finish";
  EXPECT_EQ(bad.load(), 0u) << "WQEs out of order or damaged";
  EXPECT_EQ(q->front(), nullptr);
  EXPECT_GT(grows, 0u);
  EXPECT_GT(shrinks, 0u);
  EXPECT_EQ(q->wq().posted(), kWqes);
  EXPECT_EQ(q->wq().retired(), kWqes);
  (void)refused;  // depends on timing: a resize below the posted count is refused
}

}  // namespace
}  // namespace droce::nic
