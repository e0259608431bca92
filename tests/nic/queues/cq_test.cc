// Tests for nic/cq.h: create checks, order and wrap-around, overflow, the arm
// rules (next / solicited-only / errors / wider arm / pending at arm time),
// the eventfd seen through poll(2), and resize.
#include "nic/cq.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <unistd.h>

#include <vector>

namespace droce::nic {

// Puts both indices of an empty CQ at `index`, to test 32-bit wrap-around.
class CompletionQueueTestPeer {
 public:
  static void set_indices(CompletionQueue& cq, uint32_t index) {
    cq.idx_.restart_at(index);
  }
};

namespace {

std::unique_ptr<CompletionQueue> make_cq(uint32_t cqe) {
  auto r = CompletionQueue::create(cqe);
  EXPECT_TRUE(r.is_ok()) << r.status().message();
  return r.is_ok() ? std::move(r).value() : nullptr;
}

Cqe make_cqe(uint64_t wr_id, WcStatus status = WcStatus::kSuccess) {
  Cqe c{};
  c.wr_id = wr_id;
  c.status = status;
  c.opcode = WcOpcode::kRecv;
  c.byte_len = static_cast<uint32_t>(wr_id * 3);
  c.qp_num = static_cast<uint32_t>(wr_id ^ 0xABCDEF);
  return c;
}

bool readable(int fd) {
  pollfd p{fd, POLLIN, 0};
  return ::poll(&p, 1, 0) == 1 && (p.revents & POLLIN) != 0;
}

// The eventfd's count since the last read, 0 when nothing fired.
uint64_t read_events(int fd) {
  uint64_t n = 0;
  return ::read(fd, &n, sizeof(n)) == sizeof(n) ? n : 0;
}

// Polls everything and checks it is exactly wr_ids first..first+count-1.
void expect_poll_all(CompletionQueue& cq, uint64_t first, uint32_t count) {
  std::vector<Cqe> out(count + 4);
  ASSERT_EQ(cq.poll(out.data(), static_cast<int>(out.size())), static_cast<int>(count));
  for (uint32_t i = 0; i < count; ++i) {
    const Cqe want = make_cqe(first + i);
    EXPECT_EQ(out[i].wr_id, want.wr_id);
    EXPECT_EQ(out[i].byte_len, want.byte_len);
    EXPECT_EQ(out[i].qp_num, want.qp_num);
  }
  EXPECT_EQ(cq.pending(), 0u);
}

TEST(CompletionQueue, CreateValidatesAndRoundsUp) {
  for (uint32_t bad : {0u, CompletionQueue::kMaxCqe + 1}) {
    auto r = CompletionQueue::create(bad);
    ASSERT_FALSE(r.is_ok());
    EXPECT_EQ(r.status().code(), Errc::kInvalidArgument);
  }
  for (auto [cqe, cap] : std::vector<std::pair<uint32_t, uint32_t>>{
           {1, 1}, {2, 2}, {3, 4}, {100, 128}, {256, 256}, {257, 512}}) {
    auto cq = make_cq(cqe);
    ASSERT_TRUE(cq);
    EXPECT_EQ(cq->capacity(), cap);
    EXPECT_EQ(cq->pending(), 0u);
    EXPECT_EQ(cq->armed(), CqArm::kNone);
    EXPECT_FALSE(cq->overflowed());
  }
}

TEST(CompletionQueue, EventFdIsNonBlockingAndQuietAtStart) {
  auto cq = make_cq(8);
  ASSERT_TRUE(cq);
  const int fd = cq->event_fd();
  ASSERT_GE(fd, 0);
  EXPECT_NE(::fcntl(fd, F_GETFL) & O_NONBLOCK, 0);
  EXPECT_NE(::fcntl(fd, F_GETFD) & FD_CLOEXEC, 0);
  EXPECT_FALSE(readable(fd));
  EXPECT_EQ(read_events(fd), 0u) << "read does not block";
}

TEST(CompletionQueue, PollReturnsCqesInOrderUpToMax) {
  auto cq = make_cq(16);
  ASSERT_TRUE(cq);
  Cqe out[16];
  EXPECT_EQ(cq->poll(out, 16), 0);
  for (uint64_t i = 0; i < 10; ++i) ASSERT_TRUE(cq->push(make_cqe(i), false));
  EXPECT_EQ(cq->pending(), 10u);
  EXPECT_EQ(cq->poll(out, 0), 0);
  EXPECT_EQ(cq->poll(out, -3), 0);
  ASSERT_EQ(cq->poll(out, 3), 3);
  EXPECT_EQ(out[0].wr_id, 0u);
  EXPECT_EQ(out[2].wr_id, 2u);
  EXPECT_EQ(cq->pending(), 7u);
  expect_poll_all(*cq, 3, 7);
  EXPECT_EQ(cq->pushed(), 10u);
  EXPECT_EQ(cq->polled(), 10u);
}

TEST(CompletionQueue, WrapAroundOfSlotsAndOf32BitIndices) {
  for (uint32_t start : {0u, 0xFFFFFFF0u}) {
    auto cq = make_cq(8);
    ASSERT_TRUE(cq);
    CompletionQueueTestPeer::set_indices(*cq, start);
    uint64_t next = 0;
    for (uint32_t round = 0; round < 40; ++round) {
      const uint32_t batch = round % 8 + 1;
      EXPECT_EQ(cq->free_slots(), 8u);
      for (uint32_t k = 0; k < batch; ++k) ASSERT_TRUE(cq->push(make_cqe(next + k), false));
      expect_poll_all(*cq, next, batch);
      next += batch;
    }
    EXPECT_FALSE(cq->overflowed());
  }
}

TEST(CompletionQueue, OverflowExactlyCapacityFitsThenPushFailsAndFlagSticks) {
  auto cq = make_cq(8);
  ASSERT_TRUE(cq);
  cq->arm(false);
  for (uint64_t i = 0; i < 8; ++i) ASSERT_TRUE(cq->push(make_cqe(i), false)) << i;
  EXPECT_EQ(read_events(cq->event_fd()), 1u);  // the first push fired
  cq->arm(false);
  EXPECT_EQ(cq->free_slots(), 0u);
  EXPECT_FALSE(cq->overflowed());
  EXPECT_FALSE(cq->push(make_cqe(99), false));
  EXPECT_TRUE(cq->overflowed());
  EXPECT_EQ(cq->overflows(), 1u);
  EXPECT_EQ(cq->pushed(), 8u);
  EXPECT_FALSE(readable(cq->event_fd())) << "a lost CQE is no completion event";
  EXPECT_EQ(cq->armed(), CqArm::kNext);
  EXPECT_FALSE(cq->push(make_cqe(100), true));
  EXPECT_EQ(cq->overflows(), 2u);
  // The CQEs that fit are intact.
  Cqe out[8];
  ASSERT_EQ(cq->poll(out, 1), 1);
  EXPECT_EQ(out[0].wr_id, 0u);
  ASSERT_TRUE(cq->push(make_cqe(8), false)) << "room again after a poll";
  EXPECT_TRUE(cq->overflowed()) << "sticky";
  expect_poll_all(*cq, 1, 8);
}

TEST(CompletionQueue, ArmNextFiresOnceOnTheNextCompletion) {
  auto cq = make_cq(16);
  ASSERT_TRUE(cq);
  ASSERT_TRUE(cq->push(make_cqe(0), false));
  EXPECT_FALSE(readable(cq->event_fd())) << "not armed";
  Cqe out[16];
  cq->poll(out, 16);
  EXPECT_FALSE(cq->arm(false));
  EXPECT_EQ(cq->armed(), CqArm::kNext);
  ASSERT_TRUE(cq->push(make_cqe(1), false));
  EXPECT_TRUE(readable(cq->event_fd()));
  EXPECT_EQ(cq->armed(), CqArm::kNone) << "disarmed by the event";
  EXPECT_EQ(cq->events_fired(), 1u);
  ASSERT_TRUE(cq->push(make_cqe(2), true));
  ASSERT_TRUE(cq->push(make_cqe(3, WcStatus::kWrFlushErr), false));
  EXPECT_EQ(cq->events_fired(), 1u) << "once until re-armed";
  EXPECT_EQ(read_events(cq->event_fd()), 1u);
  EXPECT_FALSE(readable(cq->event_fd()));
  // Re-arm after the event.
  EXPECT_TRUE(cq->arm(false)) << "3 CQEs were pending";
  EXPECT_FALSE(readable(cq->event_fd())) << "pending CQEs do not fire";
  ASSERT_TRUE(cq->push(make_cqe(4), false));
  EXPECT_EQ(read_events(cq->event_fd()), 1u);
  EXPECT_EQ(cq->events_fired(), 2u);
}

TEST(CompletionQueue, SolicitedOnlyFiresForSolicitedOrUnsuccessfulCompletions) {
  const struct {
    WcStatus status;
    bool solicited;
    bool fires;
  } cases[] = {
      {WcStatus::kSuccess, false, false},    {WcStatus::kSuccess, true, true},
      {WcStatus::kWrFlushErr, false, true},  {WcStatus::kRemAccessErr, false, true},
      {WcStatus::kRetryExcErr, false, true}, {WcStatus::kLocLenErr, true, true},
  };
  for (const auto& c : cases) {
    auto cq = make_cq(4);
    ASSERT_TRUE(cq);
    cq->arm(true);
    EXPECT_EQ(cq->armed(), CqArm::kSolicited);
    ASSERT_TRUE(cq->push(make_cqe(1, c.status), c.solicited));
    EXPECT_EQ(readable(cq->event_fd()), c.fires)
        << "status " << int(c.status) << " solicited " << c.solicited;
    EXPECT_EQ(cq->armed(), c.fires ? CqArm::kNone : CqArm::kSolicited);
    if (!c.fires) {  // still armed: the next solicited one fires
      ASSERT_TRUE(cq->push(make_cqe(2), true));
      EXPECT_TRUE(readable(cq->event_fd()));
    }
    EXPECT_EQ(cq->events_fired(), 1u);
  }
}

TEST(CompletionQueue, ArmingTwiceKeepsTheWiderRequest) {
  for (bool next_first : {false, true}) {
    auto cq = make_cq(4);
    ASSERT_TRUE(cq);
    cq->arm(!next_first);
    cq->arm(next_first);
    EXPECT_EQ(cq->armed(), CqArm::kNext);
    ASSERT_TRUE(cq->push(make_cqe(1), false));  // unsolicited success
    EXPECT_TRUE(readable(cq->event_fd())) << next_first;
  }
  auto cq = make_cq(4);
  ASSERT_TRUE(cq);
  cq->arm(true);
  cq->arm(true);
  EXPECT_EQ(cq->armed(), CqArm::kSolicited);
}

TEST(CompletionQueue, ArmWithPendingCqesReportsThemAndFiresOnTheNextOne) {
  // droce follows "notify on the NEXT completion": CQEs already queued when
  // arm() runs do not fire; arm() says they are there.
  auto cq = make_cq(8);
  ASSERT_TRUE(cq);
  EXPECT_FALSE(cq->arm(false)) << "empty";
  ASSERT_TRUE(cq->push(make_cqe(0), false));
  EXPECT_EQ(read_events(cq->event_fd()), 1u);
  ASSERT_TRUE(cq->push(make_cqe(1), false));
  ASSERT_TRUE(cq->push(make_cqe(2), false));
  EXPECT_TRUE(cq->arm(false));
  EXPECT_FALSE(readable(cq->event_fd()));
  EXPECT_EQ(cq->armed(), CqArm::kNext);
  ASSERT_TRUE(cq->push(make_cqe(3), false));
  EXPECT_TRUE(readable(cq->event_fd()));
  expect_poll_all(*cq, 0, 4);
}

TEST(CompletionQueue, EventFdCountsEventsUntilRead) {
  auto cq = make_cq(8);
  ASSERT_TRUE(cq);
  for (uint64_t i = 0; i < 3; ++i) {
    cq->arm(false);
    ASSERT_TRUE(cq->push(make_cqe(i), false));
  }
  EXPECT_EQ(cq->events_fired(), 3u);
  EXPECT_EQ(read_events(cq->event_fd()), 3u);
  EXPECT_FALSE(readable(cq->event_fd()));
}

TEST(CompletionQueue, ResizeKeepsOrderContentArmAndOverflowFlag) {
  auto cq = make_cq(8);
  ASSERT_TRUE(cq);
  CompletionQueueTestPeer::set_indices(*cq, 0xFFFFFFFCu);  // the live CQEs straddle the wrap
  for (uint64_t i = 0; i < 8; ++i) ASSERT_TRUE(cq->push(make_cqe(i), false));
  ASSERT_FALSE(cq->push(make_cqe(99), false));
  Cqe out[2];
  ASSERT_EQ(cq->poll(out, 2), 2);  // 2..7 remain
  cq->arm(true);
  ASSERT_TRUE(cq->resize(20).is_ok());
  EXPECT_EQ(cq->capacity(), 32u);
  EXPECT_EQ(cq->pending(), 6u);
  EXPECT_TRUE(cq->overflowed());
  EXPECT_EQ(cq->armed(), CqArm::kSolicited);
  EXPECT_EQ(cq->free_slots(), 26u);
  for (uint64_t i = 8; i < 34; ++i) ASSERT_TRUE(cq->push(make_cqe(i), false)) << i;
  EXPECT_FALSE(cq->push(make_cqe(99), false)) << "full at exactly the new capacity";
  EXPECT_FALSE(readable(cq->event_fd()));
  expect_poll_all(*cq, 2, 32);
}

TEST(CompletionQueue, ResizeDownToThePendingCountAndNotBelow) {
  auto cq = make_cq(64);
  ASSERT_TRUE(cq);
  for (uint64_t i = 0; i < 5; ++i) ASSERT_TRUE(cq->push(make_cqe(i), false));
  for (uint32_t bad : {0u, 1u, 4u, CompletionQueue::kMaxCqe + 1}) {
    const Status s = cq->resize(bad);
    EXPECT_EQ(s.code(), Errc::kInvalidArgument) << bad;
    EXPECT_EQ(cq->capacity(), 64u) << "a refused resize changes nothing";
    EXPECT_EQ(cq->pending(), 5u);
  }
  ASSERT_TRUE(cq->resize(5).is_ok());
  EXPECT_EQ(cq->capacity(), 8u);
  ASSERT_TRUE(cq->push(make_cqe(5), false));
  ASSERT_TRUE(cq->push(make_cqe(6), false));
  ASSERT_TRUE(cq->push(make_cqe(7), false));
  EXPECT_FALSE(cq->push(make_cqe(8), false));
  expect_poll_all(*cq, 0, 8);
  ASSERT_TRUE(cq->resize(1).is_ok()) << "empty: any size";
  EXPECT_EQ(cq->capacity(), 1u);
  ASSERT_TRUE(cq->push(make_cqe(9), false));
  EXPECT_FALSE(cq->push(make_cqe(10), false));
  expect_poll_all(*cq, 9, 1);
}

}  // namespace
}  // namespace droce::nic
