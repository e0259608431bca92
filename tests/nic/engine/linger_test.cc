// Device::app_took_completions: an application thread that leaves poll_cq
// with completions of its own requests only, while RDMA WRITEs come in, keeps
// running the engine until the peer's next WRITE lands (or Options::linger_ns
// passes), so a program that then waits by polling memory (ib_write_lat)
// finds the WRITE there without a wake-up of the engine thread. B is that
// application: its device has no engine thread, so nothing but B's own calls
// lands a frame, and whether the WRITE is there when the call returns says
// whether it lingered. A runs its own engine thread (a peer program that
// does not poll). Outcomes are read from the counters, never from a clock.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <thread>

#include "tests/nic/engine/engine_fixture.h"

namespace droce::nic::test {
namespace {

class LingerTest : public EngineTest {
 protected:
  void set_up(Nanos linger_ns) {
    make_threaded_side(&pair_->a(), &a_, 64);
    Device::Options opts;
    opts.engine_thread = false;
    opts.linger_ns = linger_ns;
    make_device(&pair_->b(), &b_, opts, 64);
    qa_ = make_qp(a_, QpType::kRc);
    qb_ = make_qp(b_, QpType::kRc);
    ASSERT_TRUE(qa_ && qb_);
    connect(a_, qa_, b_, qb_);
    connect(b_, qb_, a_, qa_);
    const uint32_t access = kAccessLocalWrite | kAccessRemoteWrite;
    buf_a_ = make_buffer(a_, 64, access, 0x11);
    buf_b_ = make_buffer(b_, 64, access, 0x00);
  }

  // A (its engine thread) writes `fill` into all of B's buffer.
  void a_writes(uint8_t fill, uint64_t wr_id) {
    std::fill(buf_a_.bytes.begin(), buf_a_.bytes.end(), fill);
    SendWqe w = wqe(WrOpcode::kRdmaWrite, wr_id, 0);
    w.remote_addr = buf_b_.addr();
    w.rkey = buf_b_.key;
    w.num_sge = 1;
    Sge s{buf_a_.addr(), uint32_t(buf_a_.bytes.size()), buf_a_.key};
    ASSERT_EQ(qa_->post_send(w, &s, nullptr), 0);
  }

  // B's application drives its engine (as its empty poll_cq would) until
  // `done` (bounded).
  bool b_progresses_until(const std::function<bool()>& done) {
    const Nanos end = monotonic_now() + 20 * kNanosPerSec;
    while (!done()) {
      if (monotonic_now() > end) return false;
      b_.dev->progress();
    }
    return true;
  }

  // A first WRITE from A lands while B's application polls: from here on
  // WRITEs come in, as in ib_write_lat.
  void writes_come_in() {
    a_writes(0x5A, 1);
    ASSERT_TRUE(b_progresses_until([&] { return buf_b_.bytes.back() == 0x5A; }));
  }

  // B writes into A and takes the completion of its own WRITE, driving its
  // engine as poll_cq would.
  void b_write_completes() {
    SendWqe w = wqe(WrOpcode::kRdmaWrite, 7);
    w.remote_addr = buf_a_.addr();
    w.rkey = buf_a_.key;
    w.num_sge = 1;
    Sge s{buf_b_.addr(), 8, buf_b_.key};
    ASSERT_EQ(qb_->post_send(w, &s, nullptr), 0);
    Cqe c{};
    ASSERT_TRUE(b_progresses_until([&] { return b_.scq->poll(&c, 1) == 1; }));
    ASSERT_EQ(c.status, WcStatus::kSuccess);
  }

  Qp* qa_ = nullptr;
  Qp* qb_ = nullptr;
  Buffer buf_a_, buf_b_;
};

// The ib_write_lat step: B took its own WRITE's completion; A's WRITE comes
// 20 ms later. The call returns with it landed in B's memory.
TEST_F(LingerTest, ThreadThatTookItsOwnCompletionLandsThePeersNextWrite) {
  set_up(30 * kNanosPerSec);
  writes_come_in();
  b_write_completes();
  std::thread peer([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    a_writes(0xC3, 2);
  });
  b_.dev->app_took_completions(true);
  const uint8_t first = buf_b_.bytes.front();
  const uint8_t last = buf_b_.bytes.back();
  peer.join();
  EXPECT_EQ(first, 0xC3) << "returned before the peer's WRITE landed";
  EXPECT_EQ(last, 0xC3);
  const EngineCounters c = b_.dev->stats().engine;
  EXPECT_EQ(c.lingers_caught, 1u);
  EXPECT_EQ(c.lingers_missed, 0u);
}

// A receive that completes while the thread lingers (a SEND from the peer,
// on another CQ of the device: one thread serving several peers) is news:
// the linger stops for it at once, without a backoff.
TEST_F(LingerTest, AReceiveCutsTheLingerShort) {
  set_up(30 * kNanosPerSec);
  writes_come_in();
  b_write_completes();
  Sge r{buf_b_.addr(), 64, buf_b_.key};
  ASSERT_EQ(qb_->post_recv(9, &r, 1), 0);
  std::thread peer([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    SendWqe w = wqe(WrOpcode::kSend, 4, 0);
    w.num_sge = 1;
    Sge s{buf_a_.addr(), 8, buf_a_.key};
    EXPECT_EQ(qa_->post_send(w, &s, nullptr), 0);
  });
  b_.dev->app_took_completions(true);
  peer.join();
  Cqe c{};
  EXPECT_EQ(b_.rcq->poll(&c, 1), 1) << "returned before the receive completed";
  EXPECT_EQ(c.wr_id, 9u);
  const EngineCounters n = b_.dev->stats().engine;
  EXPECT_EQ(n.lingers_cut, 1u);
  EXPECT_EQ(n.lingers_caught, 0u);
  EXPECT_EQ(n.lingers_missed, 0u);
}

// A program that took a receive (or a failure) has news to act on first:
// no linger, even with WRITEs coming in and a long linger_ns.
TEST_F(LingerTest, NewsFromThePeerIsReturnedAtOnce) {
  set_up(200 * kNanosPerMs);
  writes_come_in();
  b_write_completes();
  b_.dev->app_took_completions(false);
  const EngineCounters c = b_.dev->stats().engine;
  EXPECT_EQ(c.lingers_caught, 0u);
  EXPECT_EQ(c.lingers_missed, 0u);
}

// No WRITE has come in (a SEND / RECV program): no linger.
TEST_F(LingerTest, NoLingerWithoutIncomingWrites) {
  set_up(200 * kNanosPerMs);
  b_write_completes();
  b_.dev->app_took_completions(true);
  const EngineCounters c = b_.dev->stats().engine;
  EXPECT_EQ(c.lingers_caught, 0u);
  EXPECT_EQ(c.lingers_missed, 0u);
}

// Lingers that see nothing back off once they miss four times in a row:
// each further miss skips the next 1, 2, 4 .. calls. With no WRITE coming,
// fourteen calls linger at calls 1 - 4, 6, 9 and 14 (seven misses), and the
// next eight skip. A caught WRITE ends the backoff, and misses that are not
// four in a row start none.
TEST_F(LingerTest, MissesInARowBackOffAndACatchEndsIt) {
  set_up(2 * kNanosPerMs);
  writes_come_in();
  b_write_completes();
  for (int i = 0; i < 14; ++i) b_.dev->app_took_completions(true);
  EngineCounters c = b_.dev->stats().engine;
  EXPECT_EQ(c.lingers_missed, 7u);
  EXPECT_EQ(c.lingers_caught, 0u);
  for (int i = 0; i < 8; ++i) b_.dev->app_took_completions(true);
  c = b_.dev->stats().engine;
  EXPECT_EQ(c.lingers_missed, 7u) << "the backoff did not skip";
  // The WRITE already on the wire for the next call: it lingers and
  // catches it at once.
  const uint64_t sent = a_.dev->stats().port.tx_packets;
  a_writes(0x77, 3);
  const Nanos end = monotonic_now() + 20 * kNanosPerSec;
  while (a_.dev->stats().port.tx_packets == sent && monotonic_now() < end) {
    std::this_thread::sleep_for(std::chrono::microseconds(100));
  }
  ASSERT_GT(a_.dev->stats().port.tx_packets, sent) << "A's engine never sent the WRITE";
  b_.dev->app_took_completions(true);
  c = b_.dev->stats().engine;
  EXPECT_EQ(c.lingers_missed, 7u);
  EXPECT_EQ(c.lingers_caught, 1u);
  EXPECT_EQ(buf_b_.bytes.back(), 0x77);
  // Backoff over: three more calls all linger (three misses in a row).
  for (int i = 0; i < 3; ++i) b_.dev->app_took_completions(true);
  c = b_.dev->stats().engine;
  EXPECT_EQ(c.lingers_missed, 10u);
}

}  // namespace
}  // namespace droce::nic::test
