// Tests for the completion timestamps of nic/cq.h (ibv_create_cq_ex with
// IBV_WC_EX_WITH_COMPLETION_TIMESTAMP): each CQE's stamp is the engine's
// clock (monotonic_now) when it entered the ring, kept across resize and
// wrap; a CQ without them reads 0 and keeps the 32-byte CQE.
#include <gtest/gtest.h>

#include <vector>

#include "nic/base/clock.h"
#include "nic/cq.h"

namespace droce::nic {
namespace {

std::unique_ptr<CompletionQueue> make_cq(uint32_t cqe) {
  auto r = CompletionQueue::create(cqe);
  EXPECT_TRUE(r.is_ok()) << r.status().message();
  return r.is_ok() ? std::move(r).value() : nullptr;
}

Cqe cqe(uint64_t wr_id) {
  Cqe c{};
  c.wr_id = wr_id;
  c.byte_len = uint32_t(wr_id);
  return c;
}

// Pushes one CQE and returns the clock interval around the push.
struct Window {
  Nanos before, after;
};
Window push_timed(CompletionQueue& cq, uint64_t wr_id) {
  Window w{monotonic_now(), 0};
  EXPECT_TRUE(cq.push(cqe(wr_id), false));
  w.after = monotonic_now();
  return w;
}

TEST(CqTimestamp, OffByDefaultAndTheCqeDoesNotGrow) {
  static_assert(sizeof(Cqe) == 32);
  auto cq = make_cq(4);
  EXPECT_FALSE(cq->timestamps());
  ASSERT_TRUE(cq->push(cqe(1), false));
  Cqe out{};
  uint64_t ts = 12345;
  ASSERT_EQ(cq->poll_timestamped(&out, &ts, 1), 1);
  EXPECT_EQ(out.wr_id, 1u);
  EXPECT_EQ(ts, 0u);
}

TEST(CqTimestamp, EachCqeCarriesTheClockOfItsPush) {
  auto cq = make_cq(8);
  ASSERT_TRUE(cq->enable_timestamps().is_ok());
  ASSERT_TRUE(cq->enable_timestamps().is_ok()) << "idempotent";
  EXPECT_TRUE(cq->timestamps());
  std::vector<Window> w;
  for (uint64_t i = 0; i < 20; ++i) {
    // 20 through an 8-slot ring: stamps wrap with their CQEs.
    w.push_back(push_timed(*cq, i));
    if (i % 3 == 2) {
      Cqe out[8];
      uint64_t ts[8];
      const int n = cq->poll_timestamped(out, ts, 8);
      ASSERT_EQ(n, 3);
      for (int k = 0; k < n; ++k) {
        const uint64_t id = out[k].wr_id;
        ASSERT_EQ(id, i - 2 + uint64_t(k));
        EXPECT_GE(ts[k], w[id].before) << id;
        EXPECT_LE(ts[k], w[id].after) << id;
        if (k > 0) {
          EXPECT_GE(ts[k], ts[k - 1]);
        }
      }
    }
  }
  // Plain poll still works on a stamped CQ (ibv_poll_cq on a cq_ex).
  Cqe out[8];
  EXPECT_EQ(cq->poll(out, 8), 2);
  EXPECT_EQ(out[0].wr_id, 18u);
  EXPECT_EQ(out[1].wr_id, 19u);
}

TEST(CqTimestamp, ResizeKeepsEachStampWithItsCqe) {
  auto cq = make_cq(4);
  ASSERT_TRUE(cq->enable_timestamps().is_ok());
  std::vector<Window> w;
  for (uint64_t i = 0; i < 3; ++i) w.push_back(push_timed(*cq, i));
  Cqe out[16];
  uint64_t ts[16];
  ASSERT_EQ(cq->poll_timestamped(out, ts, 2), 2);  // the consumer index moves off 0
  for (uint64_t i = 3; i < 6; ++i) w.push_back(push_timed(*cq, i));  // wraps the 4 slots
  ASSERT_TRUE(cq->resize(16).is_ok());
  for (uint64_t i = 6; i < 10; ++i) w.push_back(push_timed(*cq, i));
  ASSERT_TRUE(cq->resize(8).is_ok());
  const int n = cq->poll_timestamped(out, ts, 16);
  ASSERT_EQ(n, 8);
  for (int k = 0; k < n; ++k) {
    const uint64_t id = out[k].wr_id;
    ASSERT_EQ(id, 2u + uint64_t(k));
    EXPECT_GE(ts[k], w[id].before) << id;
    EXPECT_LE(ts[k], w[id].after) << id;
  }
}

}  // namespace
}  // namespace droce::nic
