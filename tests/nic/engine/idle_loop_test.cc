// The engine thread's idle backoff (spin, yield, sleep; engine.cc
// engine_loop) toward a request/response peer: B's engine thread alone
// serves A's requests (no application polls on B, as ib_read_lat's server),
// and A sends its next request 20 us after the last one completed. Once B
// has slept and woken to a request, it must spin and yield again before the
// next sleep, so the next request, a round trip later, finds it awake. It
// used to go straight back to sleep after each wake-up, and every request
// then waited for the 50 us sleep timer. Read from B's sleep counters, not
// from a clock.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <thread>

#include "tests/nic/engine/engine_fixture.h"

namespace droce::nic::test {
namespace {

class IdleLoopTest : public EngineTest {};

TEST_F(IdleLoopTest, EngineThreadThatWokeToARequestStaysAwakeForTheNext) {
  make_threaded_side(&pair_->b(), &b_, 64);
  Qp* qa = make_qp(a_, QpType::kRc);
  Qp* qb = make_qp(b_, QpType::kRc);
  ASSERT_TRUE(qa && qb);
  connect(a_, qa, b_, qb);
  connect(b_, qb, a_, qa);
  const uint32_t access = kAccessLocalWrite | kAccessRemoteRead;
  Buffer src = make_buffer(b_, 64, access, 0x3C);
  Buffer dst = make_buffer(a_, 64, access, 0);

  // A's engine inline until its READ completes (bounded).
  auto read_once = [&](uint64_t wr_id) {
    SendWqe w = wqe(WrOpcode::kRdmaRead, wr_id);
    w.remote_addr = src.addr();
    w.rkey = src.key;
    w.num_sge = 1;
    Sge s{dst.addr(), 64, dst.key};
    if (qa->post_send(w, &s, nullptr) != 0) return false;
    const Nanos end = monotonic_now() + 20 * kNanosPerSec;
    Cqe c{};
    while (monotonic_now() < end) {
      {
        auto lock = a_.dev->lock_engine();
        a_.dev->poll(monotonic_now());
      }
      if (a_.scq->poll(&c, 1) == 1) return c.status == WcStatus::kSuccess;
    }
    return false;
  };

  // B idle long enough to reach its sleep (spin and yield take well under
  // a second), then the first READ wakes it.
  const Nanos idle_until = monotonic_now() + 300 * kNanosPerMs;
  while (b_.dev->stats().engine.sleeps == 0 && monotonic_now() < idle_until) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  ASSERT_GT(b_.dev->stats().engine.sleeps, 0u) << "B's engine thread never slept while idle";
  ASSERT_TRUE(read_once(0));
  const uint64_t sleeps_before = b_.dev->stats().engine.sleeps;
  constexpr int kReads = 100;
  for (int i = 1; i <= kReads; ++i) {
    const Nanos next = monotonic_now() + 20 * kNanosPerUs;
    while (monotonic_now() < next) {
    }
    ASSERT_TRUE(read_once(uint64_t(i))) << "READ " << i;
  }
  const uint64_t sleeps = b_.dev->stats().engine.sleeps - sleeps_before;
  EXPECT_EQ(dst.bytes, src.bytes);
  // Awake, B sleeps again only after thousands of empty polls (far more
  // than 20 us): a few sleeps where A lost its CPU for that long, not one
  // a READ.
  EXPECT_LT(sleeps, uint64_t(kReads / 4)) << "B slept between READs " << sleeps << " times";
}

}  // namespace
}  // namespace droce::nic::test
