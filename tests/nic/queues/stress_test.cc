// Two-thread stress tests for nic/work_queue.h and nic/cq.h: order, content,
// no loss, no duplicates, no slot reuse before retire, no lost CQ wakeup.
// Every loop is bounded by a deadline; a test that hits it fails.
#include <gtest/gtest.h>
#include <poll.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <mutex>
#include <thread>
#include <vector>

#include "nic/cq.h"
#include "nic/work_queue.h"
#include "nic/wqe.h"

namespace droce::nic {
namespace {

using Clock = std::chrono::steady_clock;
constexpr auto kTestBudget = std::chrono::seconds(100);

// Set by whichever thread sees the deadline pass; all loops then stop.
struct Deadline {
  Clock::time_point end = Clock::now() + kTestBudget;
  std::atomic<bool> hit{false};
  bool check() {
    if (Clock::now() > end) hit.store(true);
    return hit.load();
  }
};

void stamp_wqe(uint8_t* slot, uint64_t id) {
  auto* w = reinterpret_cast<SendWqe*>(slot);
  w->wr_id = id;
  w->length = static_cast<uint32_t>(id * 7);
  w->remote_addr = ~id;
  w->num_sge = 4;
  for (uint32_t k = 0; k < 4; ++k) w->sges()[k] = Sge{id + k, static_cast<uint32_t>(id ^ k), k};
}
bool check_wqe(const uint8_t* slot, uint64_t id) {
  const auto* w = reinterpret_cast<const SendWqe*>(slot);
  if (w->wr_id != id || w->length != static_cast<uint32_t>(id * 7) || w->remote_addr != ~id ||
      w->num_sge != 4) {
    return false;
  }
  for (uint32_t k = 0; k < 4; ++k) {
    const Sge& s = w->sges()[k];
    if (s.addr != id + k || s.length != static_cast<uint32_t>(id ^ k) || s.lkey != k) return false;
  }
  return true;
}

// Posts ids [first, first + n) in batches of up to 16 per doorbell.
void produce(WorkQueue& wq, uint64_t first, uint64_t n, Deadline& deadline) {
  uint64_t i = 0;
  for (uint32_t iter = 0; i < n; ++iter) {
    if ((iter & 1023) == 0 && deadline.check()) return;
    uint32_t batch = 0;
    {
      std::lock_guard<SpinLock> lock(wq.producer_lock());
      for (uint8_t* s; batch < 16 && i < n && (s = wq.reserve()) != nullptr; ++batch, ++i) {
        stamp_wqe(s, first + i);
      }
      wq.publish();
    }
    if (batch == 0) std::this_thread::yield();  // full: let the engine retire
  }
}

TEST(WorkQueueStress, OneProducerOneEngineFiveMillionStampedWqes) {
  constexpr uint64_t kN = 5'000'000;
  auto r = WorkQueue::create(256, WorkQueue::send_stride(4, 0));
  ASSERT_TRUE(r.is_ok());
  WorkQueue& wq = *r.value();
  Deadline deadline;
  std::thread producer([&] { produce(wq, 0, kN, deadline); });

  // The engine processes every published WQE at once but retires with a lag
  // of 0..7 WQEs, like an SQ awaiting ACKs, and re-checks those slots when it
  // retires them: the producer must not have reused them.
  uint32_t cursor = 0, done = 0;
  uint64_t bad = 0, iter = 0;
  while (cursor < kN && bad == 0) {
    if ((++iter & 1023) == 0 && deadline.check()) break;
    const uint32_t published = wq.published();
    if (published == cursor && cursor - done == 0) {
      std::this_thread::yield();
      continue;
    }
    for (; cursor != published; ++cursor) bad += check_wqe(wq.slot(cursor), cursor) ? 0 : 1;
    const uint32_t lag = static_cast<uint32_t>(iter % 8);
    const uint32_t held = cursor - done;
    const uint32_t new_done = cursor == kN ? cursor : cursor - (held < lag ? held : lag);
    for (uint32_t k = done; k != new_done; ++k) bad += check_wqe(wq.slot(k), k) ? 0 : 1;
    wq.retire(new_done);
    done = new_done;
  }
  if (bad != 0) deadline.hit.store(true);  // stop the producer too
  producer.join();
  ASSERT_FALSE(deadline.hit.load()) << "deadline hit or bad WQE; processed " << cursor;
  EXPECT_EQ(bad, 0u);
  EXPECT_EQ(cursor, kN);
  EXPECT_EQ(wq.posted(), kN);
  EXPECT_EQ(wq.retired(), kN);
  EXPECT_EQ(wq.outstanding(), 0u);
}

TEST(WorkQueueStress, TwoPostingThreadsShareTheProducerLock) {
  constexpr uint64_t kPerThread = 500'000;
  auto r = WorkQueue::create(64, WorkQueue::send_stride(4, 0));
  ASSERT_TRUE(r.is_ok());
  WorkQueue& wq = *r.value();
  Deadline deadline;
  // Thread t posts ids t<<32 | seq; each thread's WQEs must arrive in order.
  std::thread p0([&] { produce(wq, uint64_t{0} << 32, kPerThread, deadline); });
  std::thread p1([&] { produce(wq, uint64_t{1} << 32, kPerThread, deadline); });
  uint64_t next[2] = {0, 0}, bad = 0, iter = 0;
  uint32_t cursor = 0;
  while (next[0] + next[1] < 2 * kPerThread && bad == 0) {
    if ((++iter & 1023) == 0 && deadline.check()) break;
    const uint32_t published = wq.published();
    if (published == cursor) {
      std::this_thread::yield();
      continue;
    }
    for (; cursor != published; ++cursor) {
      const uint64_t id = reinterpret_cast<const SendWqe*>(wq.slot(cursor))->wr_id;
      const uint64_t t = id >> 32;
      if (t > 1 || !check_wqe(wq.slot(cursor), (t << 32) | next[t])) {
        ++bad;
        break;
      }
      ++next[t];
    }
    wq.retire(cursor);
  }
  if (bad != 0) deadline.hit.store(true);
  p0.join();
  p1.join();
  ASSERT_FALSE(deadline.hit.load()) << "deadline hit or bad WQE";
  EXPECT_EQ(next[0], kPerThread);
  EXPECT_EQ(next[1], kPerThread);
  EXPECT_EQ(wq.posted(), 2 * kPerThread);
}

Cqe stamp_cqe(uint64_t i) {
  Cqe c{};
  c.wr_id = i;
  c.status = i % 5 == 0 ? WcStatus::kWrFlushErr : WcStatus::kSuccess;
  c.byte_len = static_cast<uint32_t>(i * 13);
  c.qp_num = static_cast<uint32_t>(i & 0xFFFFFF);
  return c;
}
bool check_cqe(const Cqe& c, uint64_t i) {
  const Cqe want = stamp_cqe(i);
  return c.wr_id == want.wr_id && c.status == want.status && c.byte_len == want.byte_len &&
         c.qp_num == want.qp_num;
}

// The engine thread: pushes [0, n), waiting (never overflowing) when full.
void push_all(CompletionQueue& cq, uint64_t n, Deadline& deadline) {
  for (uint64_t i = 0; i < n;) {
    if (cq.free_slots() == 0) {
      if (deadline.check()) return;
      std::this_thread::yield();
      continue;
    }
    if (!cq.push(stamp_cqe(i), i % 2 == 0)) return;  // cannot happen: checked for room
    ++i;
  }
}

TEST(CompletionQueueStress, EnginePushesAppPollsNoneLostOrDuplicated) {
  constexpr uint64_t kN = 2'000'000;
  auto r = CompletionQueue::create(512);
  ASSERT_TRUE(r.is_ok());
  CompletionQueue& cq = *r.value();
  Deadline deadline;
  std::thread engine([&] { push_all(cq, kN, deadline); });
  uint64_t expected = 0, bad = 0, iter = 0;
  Cqe out[32];
  while (expected < kN && bad == 0) {
    if ((++iter & 1023) == 0 && deadline.check()) break;
    const int n = cq.poll(out, 1 + static_cast<int>(iter % 32));
    for (int k = 0; k < n; ++k, ++expected) bad += check_cqe(out[k], expected) ? 0 : 1;
    if (n == 0) std::this_thread::yield();
  }
  if (bad != 0) deadline.hit.store(true);
  engine.join();
  ASSERT_FALSE(deadline.hit.load()) << "deadline hit or bad CQE at " << expected;
  EXPECT_EQ(expected, kN);
  EXPECT_FALSE(cq.overflowed());
  EXPECT_EQ(cq.pushed(), kN);
  EXPECT_EQ(cq.polled(), kN);
  EXPECT_EQ(cq.poll(out, 32), 0);
}

TEST(CompletionQueueStress, TwoPollingThreadsSplitTheCqesExactly) {
  constexpr uint64_t kN = 1'000'000;
  auto r = CompletionQueue::create(1024);
  ASSERT_TRUE(r.is_ok());
  CompletionQueue& cq = *r.value();
  Deadline deadline;
  std::atomic<uint64_t> polled{0};
  std::vector<uint64_t> seen[2];
  std::atomic<uint64_t> bad{0};
  auto poller = [&](int t) {
    seen[t].reserve(kN);
    Cqe out[16];
    for (uint32_t iter = 0; polled.load() < kN; ++iter) {
      if ((iter & 1023) == 0 && deadline.check()) return;
      const int n = cq.poll(out, 16);
      for (int k = 0; k < n; ++k) {
        if (!check_cqe(out[k], out[k].wr_id)) bad.fetch_add(1);
        seen[t].push_back(out[k].wr_id);
      }
      polled.fetch_add(static_cast<uint64_t>(n));
      if (n == 0) std::this_thread::yield();
    }
  };
  std::thread engine([&] { push_all(cq, kN, deadline); });
  std::thread a(poller, 0), b(poller, 1);
  engine.join();
  a.join();
  b.join();
  ASSERT_FALSE(deadline.hit.load());
  EXPECT_EQ(bad.load(), 0u);
  ASSERT_EQ(seen[0].size() + seen[1].size(), kN);
  std::vector<bool> got(kN, false);
  for (const auto& v : seen) {
    for (size_t k = 0; k < v.size(); ++k) {
      ASSERT_LT(v[k], kN);
      ASSERT_FALSE(got[v[k]]) << "duplicate " << v[k];
      got[v[k]] = true;
      if (k > 0) {
        ASSERT_LT(v[k - 1], v[k]) << "each poller sees CQEs in order";
      }
    }
  }
}

TEST(CompletionQueueStress, ArmPollWaitLoopNeverMissesAWakeup) {
  // The consumer sleeps on the eventfd only after arm() + a poll that found
  // nothing; if a push slipped between them without firing, it would sleep
  // until the bound below and the test fails.
  constexpr uint64_t kN = 200'000;
  constexpr int kLostWakeupBoundMs = 10'000;
  auto r = CompletionQueue::create(4096);
  ASSERT_TRUE(r.is_ok());
  CompletionQueue& cq = *r.value();
  Deadline deadline;
  std::thread engine([&] {
    uint32_t lcg = 12345;
    for (uint64_t i = 0; i < kN && !deadline.check();) {
      lcg = lcg * 1664525 + 1013904223;
      for (uint32_t k = 0; k < 1 + (lcg >> 29) && i < kN; ++k) {
        while (cq.free_slots() == 0 && !deadline.check()) std::this_thread::yield();
        ASSERT_TRUE(cq.push(stamp_cqe(i), false));
        ++i;
      }
      for (uint32_t y = 0; y < ((lcg >> 20) & 3); ++y) std::this_thread::yield();
    }
  });
  uint64_t got = 0, bad = 0, sleeps = 0, lost = 0;
  Cqe out[64];
  auto drain = [&] {
    uint64_t total = 0;
    for (int n; (n = cq.poll(out, 64)) > 0; total += n) {
      for (int k = 0; k < n; ++k, ++got) bad += check_cqe(out[k], got) ? 0 : 1;
    }
    return total;
  };
  while (got < kN && bad == 0 && !deadline.check()) {
    if (drain() > 0) continue;
    cq.arm(false);
    if (drain() > 0) continue;
    pollfd p{cq.event_fd(), POLLIN, 0};
    ++sleeps;
    if (::poll(&p, 1, kLostWakeupBoundMs) != 1) {
      lost = 1;
      break;
    }
    uint64_t events;
    ASSERT_EQ(::read(cq.event_fd(), &events, sizeof(events)), ssize_t{sizeof(events)});
  }
  deadline.hit.store(deadline.hit.load() || lost != 0 || bad != 0);
  engine.join();
  EXPECT_EQ(lost, 0u) << "slept with CQEs pending after " << got;
  EXPECT_EQ(bad, 0u);
  EXPECT_EQ(got, kN);
  std::printf("arm/poll/wait: %llu sleeps, %llu events for %llu CQEs\n",
              static_cast<unsigned long long>(sleeps),
              static_cast<unsigned long long>(cq.events_fired()),
              static_cast<unsigned long long>(kN));
}

}  // namespace
}  // namespace droce::nic
